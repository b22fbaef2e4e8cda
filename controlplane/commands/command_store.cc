// CommandStore over commands, command_targets and command_lines.
#include "controlplane/commands/command_store.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "common/pg/identifiers.h"
#include "common/spec/spec.h"
#include "common/text.h"
#include "controlplane/commands/command_state.h"

namespace tether::controlplane {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp Micros(int64_t micros) {
  return TimeUtil::MicrosecondsToTimestamp(micros);
}

// A command as stored: its proto3 JSON.
std::string CommandJson(const v1::Command& command) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(command, &out);
  return out;
}

v1::Command ParseCommandJson(const pqxx::field& f) {
  v1::Command command;
  google::protobuf::util::JsonParseOptions lenient;
  lenient.ignore_unknown_fields = true;  // written by a newer replica
  (void)google::protobuf::util::JsonStringToMessage(f.as<std::string>(), &command, lenient);
  return command;
}

// Lines as a JSON array for one INSERT; a NUL, which PostgreSQL's text cannot hold, is shown
// as \0.
std::string LinesJson(const std::vector<std::string>& lines) {
  nlohmann::json array = nlohmann::json::array();
  for (const auto& line : lines) {
    array.push_back(absl::StrReplaceAll(line, {{std::string(1, '\0'), "\\0"}}));
  }
  return array.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Summary(const std::string& cluster, const std::string& agent,
                    const v1::Command& c) {
  switch (c.kind_case()) {
    case v1::Command::kMigrate:
      return absl::StrCat("migrate ", cluster,
                          c.migrate().tenant().empty() ? " (every tenant)"
                                                       : absl::StrCat("/", c.migrate().tenant()),
                          " to ",
                          c.migrate().to_version() == 0
                              ? "the latest version"
                              : absl::StrCat("version ", c.migrate().to_version()));
    case v1::Command::kRollback:
      return absl::StrCat("roll back ", cluster, "/", c.rollback().tenant(), " by ",
                          c.rollback().steps(), c.rollback().steps() == 1 ? " migration" : " migrations");
    case v1::Command::kReprovision:
      return absl::StrCat("reprovision ", agent);
    case v1::Command::kDropTenant:
      return absl::StrCat("drop tenant ", cluster, "/", c.drop_tenant().tenant(),
                          c.drop_tenant().force() ? " (force)" : "");
    case v1::Command::kApply:
      return absl::StrCat("apply revision ", c.apply().revision(), " of ", cluster);
    default:
      return "";
  }
}

// Whether the command's row exists; locks it for the rest of the transaction.
struct LockedCommand {
  std::string cluster;
  std::string kind;
  std::string state;
  int64_t line_count = 0;
  bool cancel_requested = false;
  int64_t revision = 0;
};

// Ends `agent_id`'s part of command `id` as `state` with `error`, unless it has ended already:
// whether it did.
bool EndPart(pqxx::transaction_base& tx, int64_t id, const std::string& agent_id,
             const std::string& state, const std::string& error) {
  return !tx.exec_params(
                "UPDATE command_targets SET state = $3, error = $4, finished_at = now(), "
                "started_at = coalesce(started_at, now()) "
                "WHERE command_id = $1 AND agent_id = $2::uuid AND finished_at IS NULL "
                "RETURNING 1",
                id, agent_id, state, error)
              .empty();
}

std::optional<LockedCommand> LockCommand(pqxx::transaction_base& tx, int64_t id) {
  auto rows = tx.exec_params(
      "SELECT cluster, kind, state, line_count, cancel_requested, revision FROM commands "
      "WHERE id = $1 FOR UPDATE",
      id);
  if (rows.empty()) return std::nullopt;
  return LockedCommand{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                       rows[0][2].as<std::string>(), rows[0][3].as<int64_t>(),
                       rows[0][4].as<bool>(), rows[0][5].as<int64_t>()};
}

// Appends lines to a locked command: numbered after its line_count, in one statement.
void AppendLines(pqxx::transaction_base& tx, int64_t id, LockedCommand& command,
                 const std::string& agent, const std::vector<std::string>& lines, absl::Time now) {
  if (lines.empty()) return;
  std::vector<std::string> kept = lines;
  const int64_t room = kMaxLinesPerCommand - command.line_count;
  if (room <= 0) return;
  if (static_cast<int64_t>(kept.size()) > room) {
    kept.resize(room);
    kept.back() = absl::StrCat("(further lines dropped: a command keeps at most ",
                               kMaxLinesPerCommand, ")");
  }
  // WITH ORDINALITY keeps the order the agent sent them in.
  tx.exec_params(
      "INSERT INTO command_lines (command_id, seq, at, agent_name, text) "
      "SELECT $1, $2 + n, $4::timestamptz, $5, t "
      "FROM jsonb_array_elements_text($3::jsonb) WITH ORDINALITY AS u(t, n)",
      id, command.line_count, LinesJson(kept), common::PgTimestamp(now), agent);
  command.line_count += static_cast<int64_t>(kept.size());
  tx.exec_params("UPDATE commands SET line_count = $2 WHERE id = $1", id, command.line_count);
}

}  // namespace

std::string DeterministicBytes(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::io::StringOutputStream stream(&out);
  {
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return out;
}

absl::StatusOr<int64_t> ParseCommandId(const std::string& id) {
  int64_t n = 0;
  if (id.empty() || id.size() > 18 || !std::all_of(id.begin(), id.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(id, &n) || n <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", absl::CHexEscape(common::CutText(id, 40)),
                     "\" is not a command id (ids are numbers: tetherctl get commands)"));
  }
  return n;
}

const char* CommandStateWord(v1::CommandState state) {
  switch (state) {
    case v1::COMMAND_STATE_QUEUED: return "queued";
    case v1::COMMAND_STATE_RUNNING: return "running";
    case v1::COMMAND_STATE_SUCCEEDED: return "succeeded";
    case v1::COMMAND_STATE_FAILED: return "failed";
    case v1::COMMAND_STATE_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

v1::CommandState ParseCommandState(const std::string& word) {
  for (v1::CommandState s : {v1::COMMAND_STATE_QUEUED, v1::COMMAND_STATE_RUNNING,
                             v1::COMMAND_STATE_SUCCEEDED, v1::COMMAND_STATE_FAILED,
                             v1::COMMAND_STATE_CANCELLED}) {
    if (word == CommandStateWord(s)) return s;
  }
  return v1::COMMAND_STATE_UNSPECIFIED;
}

CommandStore::CommandStore(common::PgPool* pool, EventLog* events, ChangeBus* bus,
                           common::Clock* clock, MothershipMetrics* metrics)
    : pool_(pool), events_(events), bus_(bus), clock_(clock), metrics_(metrics) {}

void CommandStore::Published(int64_t id, const std::string& cluster, bool deliver,
                             const std::string& only_agent_id) {
  if (deliver) bus_->Publish({Change::Kind::kCommand, cluster, only_agent_id, id});
  bus_->Publish({Change::Kind::kCommandProgress, cluster, "", id});
}

std::string CommandStore::ActingAgentsSql(int cluster_param) {
  const std::string c = absl::StrCat("$", cluster_param);
  return absl::StrCat(
      "SELECT a.id, a.name, a.mode FROM agents a WHERE a.cluster = ", c,
      " AND (a.mode <> 'pro' OR a.id = ("
      "SELECT p.id FROM agents p LEFT JOIN cluster_leaders l "
      "ON l.cluster = p.cluster AND l.agent_id = p.id "
      "WHERE p.cluster = ", c, " AND p.mode = 'pro' "
      "ORDER BY (l.agent_id IS NOT NULL) DESC, p.last_seen_at DESC NULLS LAST, p.name LIMIT 1))");
}

std::optional<CommandStore::KeyedCommand> CommandStore::FindByKey(pqxx::transaction_base& tx,
                                                                  const std::string& key) {
  if (key.empty()) return std::nullopt;
  auto rows = tx.exec_params(
      "SELECT id, request_hash, revision FROM commands WHERE idempotency_key = $1", key);
  if (rows.empty()) return std::nullopt;
  return KeyedCommand{rows[0][0].as<int64_t>(), rows[0][1].as<std::string>(),
                      rows[0][2].as<int64_t>()};
}

int64_t CommandStore::InsertApply(pqxx::transaction_base& tx, const std::string& cluster,
                                  int64_t revision, const std::string& idempotency_key,
                                  const std::string& request_hash, const std::string& who,
                                  absl::Time now) {
  v1::Command command;
  command.mutable_apply()->set_revision(revision);
  command.set_revision(revision);
  auto targets = tx.exec_params(
      absl::StrCat("SELECT count(*) FROM (", ActingAgentsSql(1), ") acting"), cluster);
  const bool none = targets[0][0].as<int64_t>() == 0;
  const int64_t id =
      tx.exec_params1(
            "INSERT INTO commands (cluster, kind, command, summary, revision, idempotency_key, "
            "request_hash, created_by, created_at, state, finished_at) "
            "VALUES ($1, 'apply', $2::jsonb, $3, $4, NULLIF($5, ''), $6, $7, $8::timestamptz, $9, "
            "CASE WHEN $10 THEN $8::timestamptz END) RETURNING id",
            cluster, CommandJson(command), Summary(cluster, "", command), revision,
            idempotency_key, request_hash, who, common::PgTimestamp(now),
            none ? "succeeded" : "queued", none)[0]
          .as<int64_t>();
  tx.exec_params(
      absl::StrCat("INSERT INTO command_targets (command_id, agent_id, agent_name, state) "
                   "SELECT $1, id, name, 'queued' FROM (", ActingAgentsSql(2), ") acting"),
      id, cluster);
  return id;
}

absl::StatusOr<v1::CommandStatus> CommandStore::Queue(const CommandRequest& request) {
  // Checks that need no database.
  if (request.idempotency_key.size() > kMaxIdempotencyKeyBytes ||
      !common::IsUtf8(request.idempotency_key)) {
    return absl::InvalidArgumentError(absl::StrCat("idempotency key must be UTF-8 of at most ",
                                                   kMaxIdempotencyKeyBytes, " bytes"));
  }
  v1::Command asked = request.command;
  const std::string kind = CommandKind(asked);
  if (kind.empty()) {
    return absl::InvalidArgumentError(
        "command must name one of migrate, rollback, reprovision or drop_tenant");
  }
  if (kind == "apply") {
    return absl::InvalidArgumentError("apply commands are made by ApplySpec (tetherctl apply)");
  }
  if (!request.cluster.empty()) {
    if (auto st = common::ValidateIdentifier("cluster", request.cluster); !st.ok()) return st;
  }
  if (!request.agent.empty()) {
    if (auto st = ValidateAgentName(request.agent); !st.ok()) return st;
  }
  if (request.cluster.empty() && request.agent.empty()) {
    return absl::InvalidArgumentError("a command needs a cluster or an agent");
  }
  if (kind == "reprovision" && request.agent.empty()) {
    return absl::InvalidArgumentError("reprovision needs an agent");
  }
  std::string tenant;
  switch (asked.kind_case()) {
    case v1::Command::kMigrate:
      tenant = asked.migrate().tenant();
      if (asked.migrate().to_version() < 0) {
        return absl::InvalidArgumentError("migrate: --to must not be negative");
      }
      break;
    case v1::Command::kRollback:
      tenant = asked.rollback().tenant();
      if (tenant.empty()) return absl::InvalidArgumentError("rollback needs a tenant (--tenant)");
      if (asked.rollback().steps() < 0 || asked.rollback().steps() > 1000) {
        return absl::InvalidArgumentError("rollback: --steps must be between 1 and 1000");
      }
      if (asked.rollback().steps() == 0) asked.mutable_rollback()->set_steps(1);
      break;
    case v1::Command::kDropTenant:
      tenant = asked.drop_tenant().tenant();
      if (tenant.empty()) return absl::InvalidArgumentError("drop-tenant needs a tenant");
      break;
    default:
      break;
  }
  if (!tenant.empty()) {
    if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  }
  // Only the kind and its arguments are the operator's; the rest is ours.
  asked.clear_id();
  asked.clear_revision();
  asked.clear_cancel();
  asked.clear_attempt();
  asked.clear_lines_stored();
  const std::string request_hash = common::FileSha256(absl::StrCat(
      request.cluster, "\n", request.agent, "\n", absl::BytesToHexString(DeterministicBytes(asked))));
  const absl::Time now = clock_->Now();

  struct Queued {
    int64_t id = 0;
    std::string cluster;
    bool fresh = false;
    std::string only_agent_id;  // the one target of a command for one agent
  };
  auto queued = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<Queued> {
    pqxx::work tx(c);
    if (auto keyed = FindByKey(tx, request.idempotency_key)) {
      if (keyed->request_hash != request_hash) {
        return absl::AlreadyExistsError(absl::StrCat(
            "idempotency key was used for another request (command ", keyed->id, ")"));
      }
      auto cluster = tx.exec_params1("SELECT cluster FROM commands WHERE id = $1", keyed->id);
      return Queued{keyed->id, cluster[0].as<std::string>(), false, ""};
    }
    // The targets: one agent, or every agent of the cluster.
    std::string cluster = request.cluster;
    std::vector<std::pair<std::string, std::string>> targets;  // id, name
    if (!request.agent.empty()) {
      auto rows = tx.exec_params(
          "SELECT id::text, name, cluster, mode FROM agents WHERE name = $1", request.agent);
      if (rows.empty()) {
        return absl::NotFoundError(absl::StrCat("agent \"", request.agent, "\" does not exist"));
      }
      if (!cluster.empty() && rows[0][2].as<std::string>() != cluster) {
        return absl::InvalidArgumentError(absl::StrCat("agent \"", request.agent,
                                                       "\" is in cluster ",
                                                       rows[0][2].as<std::string>(), ", not ",
                                                       cluster));
      }
      cluster = rows[0][2].as<std::string>();
      if (rows[0][3].as<std::string>() == "pro") {
        // The agents of a pro cluster share one PostgreSQL: a command on any of them is run by
        // the one that leads.
        rows = tx.exec_params(
            absl::StrCat("SELECT id::text, name FROM (", ActingAgentsSql(1),
                         ") acting WHERE mode = 'pro'"),
            cluster);
      }
      targets.emplace_back(rows[0][0].as<std::string>(), rows[0][1].as<std::string>());
    }
    auto cluster_row =
        tx.exec_params("SELECT last_revision FROM clusters WHERE name = $1 FOR UPDATE", cluster);
    if (cluster_row.empty()) {
      return absl::NotFoundError(absl::StrCat("cluster \"", cluster, "\" does not exist"));
    }
    const int64_t revision = cluster_row[0][0].as<int64_t>();
    if (request.agent.empty()) {
      for (const auto& r : tx.exec_params(
               absl::StrCat("SELECT id::text, name FROM (", ActingAgentsSql(1),
                            ") acting ORDER BY name"),
               cluster)) {
        targets.emplace_back(r[0].as<std::string>(), r[1].as<std::string>());
      }
    }
    if (targets.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cluster ", cluster, " has no agents to run the command"));
    }
    // Commands on tenants need the spec they are checked against.
    if (kind != "reprovision") {
      if (revision == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cluster ", cluster, " has no spec yet (tetherctl apply -f SPEC)"));
      }
      auto spec_json = tx.exec_params1(
          "SELECT spec::text FROM spec_revisions WHERE cluster = $1 AND revision = $2", cluster,
          revision);
      v1::ClusterSpec spec;
      google::protobuf::util::JsonParseOptions lenient;
      lenient.ignore_unknown_fields = true;
      if (!google::protobuf::util::JsonStringToMessage(spec_json[0].as<std::string>(), &spec,
                                                       lenient)
               .ok()) {
        return absl::DataLossError(absl::StrCat("revision ", revision, " of cluster ", cluster,
                                                " cannot be read"));
      }
      bool in_spec = false;
      for (const auto& t : spec.tenants()) in_spec = in_spec || t.name() == tenant;
      const int64_t latest = common::TargetVersion(spec);
      switch (asked.kind_case()) {
        case v1::Command::kMigrate:
          if (!tenant.empty() && !in_spec) {
            return absl::NotFoundError(absl::StrCat("tenant ", tenant, " is not in cluster ",
                                                    cluster, "'s spec (revision ", revision,
                                                    ")"));
          }
          if (asked.migrate().to_version() > latest) {
            return absl::InvalidArgumentError(
                absl::StrCat("migrate: version ", asked.migrate().to_version(),
                             " is above the spec's latest migration (", latest, ")"));
          }
          break;
        case v1::Command::kRollback: {
          if (!in_spec) {
            return absl::NotFoundError(absl::StrCat("tenant ", tenant, " is not in cluster ",
                                                    cluster, "'s spec (revision ", revision,
                                                    ")"));
          }
          // As far as the agents have reported the tenant's version: every migration the
          // rollback would undo needs its down file. The agent checks again before it starts.
          // Stored specs leave the files' contents out; which files exist is all this needs.
          v1::ClusterSpec named = spec;
          for (auto& f : *named.mutable_migrations()->mutable_files()) f.set_contents("--");
          auto migrations = common::SpecMigrations(named);
          if (!migrations.ok()) return migrations.status();
          for (const auto& r : tx.exec_params(
                   "SELECT t.version FROM agent_tenants t JOIN agents a ON a.id = t.agent_id "
                   "WHERE a.cluster = $1 AND t.tenant = $2",
                   cluster, tenant)) {
            const int64_t at = r[0].as<int64_t>();
            int left = asked.rollback().steps();
            for (auto m = migrations->rbegin(); m != migrations->rend() && left > 0; ++m) {
              if (m->version > at) continue;
              --left;
              if (m->down_sql.empty()) {
                return absl::FailedPreconditionError(absl::StrCat(
                    "migration ", m->version, " (", m->name, ") has no down file; nothing was "
                    "rolled back"));
              }
            }
          }
          break;
        }
        case v1::Command::kDropTenant:
          if (in_spec && !asked.drop_tenant().force()) {
            return absl::FailedPreconditionError(absl::StrCat(
                "tenant ", tenant, " is in cluster ", cluster, "'s spec (revision ", revision,
                "); remove it from the spec first, or drop it anyway with --force"));
          }
          break;
        default:
          break;
      }
    }
    asked.set_revision(revision);
    const std::string summary = Summary(cluster, request.agent, asked);
    const int64_t id =
        tx.exec_params1(
              "INSERT INTO commands (cluster, kind, command, summary, revision, idempotency_key, "
              "request_hash, created_by, created_at, state) "
              "VALUES ($1, $2, $3::jsonb, $4, $5, NULLIF($6, ''), $7, $8, $9::timestamptz, "
              "'queued') "
              "RETURNING id",
              cluster, kind, CommandJson(asked), summary, revision,
              request.idempotency_key, request_hash, request.who, common::PgTimestamp(now))[0]
            .as<int64_t>();
    for (const auto& [agent_id, name] : targets) {
      tx.exec_params(
          "INSERT INTO command_targets (command_id, agent_id, agent_name, state) "
          "VALUES ($1, $2::uuid, $3, 'queued')",
          id, agent_id, name);
    }
    EventLog::Append(tx, cluster, request.agent, "command.queued",
                     absl::StrCat("command ", id, " (", summary, ") by ",
                                  request.who.empty() ? "?" : request.who, " for ",
                                  targets.size(), targets.size() == 1 ? " agent" : " agents"));
    tx.commit();
    return Queued{id, cluster, true, request.agent.empty() ? "" : targets[0].first};
  });
  if (!queued.ok()) return queued.status();
  if (queued->fresh) {
    metrics_->CommandQueued(kind);
    events_->Notify();
    spdlog::info("command queued id={} cluster={} kind={}", queued->id, queued->cluster, kind);
    Published(queued->id, queued->cluster, /*deliver=*/true, queued->only_agent_id);
  }
  return Get(absl::StrCat(queued->id));
}

absl::StatusOr<v1::CommandStatus> CommandStore::Read(pqxx::transaction_base& tx, int64_t id) {
  auto rows = tx.exec_params(
      absl::StrCat("SELECT cluster, kind, command::text, summary, state, error, created_by, ",
                   common::EpochMicrosSql("created_at"), ", ",
                   common::EpochMicrosSql("finished_at"),
                   ", coalesce(idempotency_key, ''), cancel_requested, line_count "
                   "FROM commands WHERE id = $1"),
      id);
  if (rows.empty()) return absl::NotFoundError(absl::StrCat("command ", id, " does not exist"));
  const auto& r = rows[0];
  v1::CommandStatus out;
  out.set_id(absl::StrCat(id));
  out.set_cluster(r[0].as<std::string>());
  out.set_kind(r[1].as<std::string>());
  *out.mutable_command() = ParseCommandJson(r[2]);
  out.mutable_command()->set_id(out.id());
  out.set_summary(r[3].as<std::string>());
  out.set_state(ParseCommandState(r[4].as<std::string>()));
  out.set_error(r[5].as<std::string>());
  out.set_created_by(r[6].as<std::string>());
  *out.mutable_created_at() = Micros(r[7].as<int64_t>());
  if (!r[8].is_null()) *out.mutable_finished_at() = Micros(r[8].as<int64_t>());
  out.set_idempotency_key(r[9].as<std::string>());
  out.set_cancel_requested(r[10].as<bool>());
  out.set_lines(r[11].as<int64_t>());
  for (const auto& t : tx.exec_params(
           absl::StrCat("SELECT agent_id::text, agent_name, state, error, steps_done, "
                        "steps_total, step, ",
                        common::EpochMicrosSql("started_at"), ", ",
                        common::EpochMicrosSql("finished_at"),
                        " FROM command_targets WHERE command_id = $1 ORDER BY agent_name"),
           id)) {
    v1::CommandTarget* target = out.add_targets();
    target->set_agent_id(t[0].as<std::string>());
    target->set_agent(t[1].as<std::string>());
    target->set_state(ParseCommandState(t[2].as<std::string>()));
    target->set_error(t[3].as<std::string>());
    target->set_steps_done(t[4].as<int>());
    target->set_steps_total(t[5].as<int>());
    target->set_step(t[6].as<std::string>());
    if (!t[7].is_null()) *target->mutable_started_at() = Micros(t[7].as<int64_t>());
    if (!t[8].is_null()) *target->mutable_finished_at() = Micros(t[8].as<int64_t>());
  }
  return out;
}

absl::StatusOr<v1::CommandStatus> CommandStore::Get(const std::string& id) {
  auto n = ParseCommandId(id);
  if (!n.ok()) return n.status();
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<v1::CommandStatus> {
    pqxx::read_transaction tx(c);
    return Read(tx, *n);
  });
}

absl::StatusOr<std::vector<v1::CommandStatus>> CommandStore::List(const std::string& cluster,
                                                                  v1::CommandState state,
                                                                  int limit) {
  if (!cluster.empty()) {
    if (auto st = common::ValidateIdentifier("cluster", cluster); !st.ok()) return st;
  }
  if (!v1::CommandState_IsValid(state)) {
    return absl::InvalidArgumentError("state is not a command state");
  }
  if (limit <= 0) limit = 50;
  limit = std::min(limit, 500);
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::CommandStatus>> {
    pqxx::read_transaction tx(c);
    if (!cluster.empty() &&
        tx.exec_params("SELECT 1 FROM clusters WHERE name = $1", cluster).empty()) {
      return absl::NotFoundError(absl::StrCat("cluster \"", cluster, "\" does not exist"));
    }
    std::vector<v1::CommandStatus> out;
    for (const auto& r : tx.exec_params(
             "SELECT id FROM commands WHERE ($1 = '' OR cluster = $1) "
             "AND ($2 = 'unspecified' OR state = $2) ORDER BY id DESC LIMIT $3",
             cluster, CommandStateWord(state), limit)) {
      auto status = Read(tx, r[0].as<int64_t>());
      if (!status.ok()) return status.status();
      out.push_back(*std::move(status));
    }
    return out;
  });
}

absl::StatusOr<bool> CommandStore::LeaderChanged(const AgentIdentity& agent, int64_t epoch) {
  std::vector<int64_t> moved;
  auto changed = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<bool> {
    moved.clear();
    PendingEvents events;
    pqxx::work tx(c);
    auto mode = tx.exec_params("SELECT mode FROM agents WHERE id = $1::uuid AND cluster = $2",
                               agent.id, agent.cluster);
    if (mode.empty()) return absl::NotFoundError(absl::StrCat("agent ", agent.name, " is gone"));
    if (mode[0][0].as<std::string>() != "pro") {
      return absl::FailedPreconditionError(absl::StrCat(
          "agent ", agent.name, " says it leads, but it is not in pro mode"));
    }
    // One writer per cluster at a time: the row, or the cluster's row while there is none.
    tx.exec_params("SELECT 1 FROM clusters WHERE name = $1 FOR UPDATE", agent.cluster);
    auto known = tx.exec_params(
        "SELECT agent_name, epoch FROM cluster_leaders WHERE cluster = $1", agent.cluster);
    if (!known.empty() && known[0][1].as<int64_t>() >= epoch) return false;  // old news
    const std::string before = known.empty() ? "" : known[0][0].as<std::string>();
    tx.exec_params(
        "INSERT INTO cluster_leaders (cluster, agent_id, agent_name, epoch, since) "
        "VALUES ($1, $2::uuid, $3, $4, now()) ON CONFLICT (cluster) DO UPDATE SET "
        "agent_id = EXCLUDED.agent_id, agent_name = EXCLUDED.agent_name, "
        "epoch = EXCLUDED.epoch, since = now()",
        agent.cluster, agent.id, agent.name, epoch);
    // The unfinished parts other pro agents of the cluster hold move to the leader, each under
    // its command's row lock as every writer takes it: a queued part changes hands; a running
    // one is queued again and resumed by the leader from the records the agents share.
    for (const auto& r : tx.exec_params(
             "SELECT DISTINCT t.command_id FROM command_targets t "
             "JOIN commands c ON c.id = t.command_id JOIN agents a ON a.id = t.agent_id "
             "WHERE c.cluster = $1 AND t.finished_at IS NULL AND a.mode = 'pro' "
             "AND t.agent_id <> $2::uuid ORDER BY t.command_id",
             agent.cluster, agent.id)) {
      const int64_t id = r[0].as<int64_t>();
      tx.exec_params("SELECT 1 FROM commands WHERE id = $1 FOR UPDATE", id);
      const bool has_part = !tx.exec_params(
                                   "SELECT 1 FROM command_targets WHERE command_id = $1 "
                                   "AND agent_id = $2::uuid",
                                   id, agent.id)
                                 .empty();
      const char* others =
          "FROM agents a WHERE a.id = command_targets.agent_id AND a.mode = 'pro' "
          "AND command_targets.command_id = $1 AND command_targets.agent_id <> $2::uuid "
          "AND command_targets.finished_at IS NULL";
      if (has_part) {
        tx.exec_params(absl::StrCat("UPDATE command_targets SET state = 'cancelled', "
                                    "error = 'moved to the leader ' || $3, finished_at = now() ",
                                    others),
                       id, agent.id, agent.name);
      } else {
        tx.exec_params(absl::StrCat("UPDATE command_targets SET agent_id = $2::uuid, "
                                    "agent_name = $3, incarnation = 0, "
                                    "state = CASE WHEN state = 'running' THEN 'queued' "
                                    "ELSE state END ",
                                    others),
                       id, agent.id, agent.name);
      }
      Settle(tx, id, events);
      moved.push_back(id);
    }
    events.Add(
        agent.cluster, agent.name, "agent.leader",
        absl::StrCat("agent ", agent.name, " leads cluster ", agent.cluster, " in epoch ", epoch,
                     before.empty() ? "" : absl::StrCat(" (after ", before, ")"),
                     moved.empty() ? ""
                                   : absl::StrCat("; ", moved.size(),
                                                  moved.size() == 1 ? " unfinished command moves"
                                                                    : " unfinished commands move",
                                                  " to it")));
    events.AppendTo(tx);
    tx.commit();
    return true;
  });
  if (!changed.ok() || !*changed) return changed;
  spdlog::info("leader changed cluster={} agent={} epoch={} commands_moved={}", agent.cluster,
               agent.name, epoch, moved.size());
  events_->Notify();
  for (int64_t id : moved) Published(id, agent.cluster, /*deliver=*/true, agent.id);
  return true;
}

bool CommandStore::Settle(pqxx::transaction_base& tx, int64_t id, PendingEvents& events) {
  // Index probes only while parts are open (an apply to a whole fleet settles once per ack);
  // every part is read once, when the last one has ended.
  auto probe = tx.exec_params1(
      "SELECT EXISTS (SELECT 1 FROM command_targets WHERE command_id = $1 "
      "               AND state IN ('queued', 'running')), "
      "       EXISTS (SELECT 1 FROM command_targets WHERE command_id = $1 AND state <> 'queued'), "
      "       (SELECT agent_name || ': ' || error FROM command_targets "
      "        WHERE command_id = $1 AND state = 'failed' "
      "        ORDER BY finished_at NULLS LAST, agent_name LIMIT 1)",
      id);
  PartsShape shape;
  shape.open = probe[0].as<bool>();
  shape.begun = probe[1].as<bool>();
  const std::string first_error = probe[2].is_null() ? "" : probe[2].as<std::string>();
  shape.failed = !first_error.empty();
  int done = 0, parts = 0;
  if (!shape.open) {
    auto ended = tx.exec_params1(
        "SELECT count(*) FILTER (WHERE state = 'succeeded'), "
        "       count(*) FILTER (WHERE state = 'cancelled'), count(*) "
        "FROM command_targets WHERE command_id = $1",
        id);
    done = ended[0].as<int>();
    shape.cancelled = ended[1].as<int>() > 0;
    parts = ended[2].as<int>();
  }
  const v1::CommandState overall = OverallStateOf(shape);
  auto updated = tx.exec_params(
      "UPDATE commands SET state = $2, error = $3, "
      "finished_at = CASE WHEN $4 THEN coalesce(finished_at, now()) END "
      "WHERE id = $1 AND state <> $2 RETURNING cluster, summary",
      id, CommandStateWord(overall), common::CutText(first_error, 1024), IsTerminal(overall));
  if (updated.empty() || !IsTerminal(overall)) return !updated.empty();
  events.Add(
      updated[0][0].as<std::string>(), "", "command.finished",
      absl::StrCat("command ", id, " (", updated[0][1].as<std::string>(), ") ",
                   CommandStateWord(overall), ": ", done, " of ", parts,
                   parts == 1 ? " agent" : " agents", " succeeded",
                   first_error.empty() ? "" : absl::StrCat("; ", first_error)));
  return true;
}

absl::StatusOr<v1::CommandStatus> CommandStore::Cancel(const std::string& id,
                                                       const std::string& who) {
  auto n = ParseCommandId(id);
  if (!n.ok()) return n.status();
  std::string cluster;
  std::string only_agent_id;
  bool changed = false;
  auto st = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    auto command = LockCommand(tx, *n);
    if (!command) return absl::NotFoundError(absl::StrCat("command ", *n, " does not exist"));
    auto targets = tx.exec_params(
        "SELECT agent_id::text FROM command_targets WHERE command_id = $1 LIMIT 2", *n);
    if (targets.size() == 1) only_agent_id = targets[0][0].as<std::string>();
    cluster = command->cluster;
    if (command->kind == "apply") {
      return absl::FailedPreconditionError(
          "an apply cannot be cancelled: apply the spec you want instead");
    }
    if (command->cancel_requested) return absl::OkStatus();
    const v1::CommandState state = ParseCommandState(command->state);
    if (IsTerminal(state)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "command ", *n, " has already ", CommandStateWord(state), "; nothing to cancel"));
    }
    tx.exec_params("UPDATE commands SET cancel_requested = true WHERE id = $1", *n);
    // A target whose agent is lost or gone would never answer: cancelled here. The others
    // stop between steps and say so.
    tx.exec_params(
        "UPDATE command_targets t SET state = 'cancelled', finished_at = now(), "
        "error = 'cancelled while its agent was lost or gone' "
        "WHERE t.command_id = $1 AND t.state = 'queued' AND NOT EXISTS ("
        "  SELECT 1 FROM agents a WHERE a.id = t.agent_id AND NOT a.lost_reported)",
        *n);
    PendingEvents events;
    Settle(tx, *n, events);
    events.Add(cluster, "", "command.cancel_requested",
               absl::StrCat("command ", *n, " by ", who.empty() ? "?" : who));
    events.AppendTo(tx);
    tx.commit();
    changed = true;
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  if (changed) {
    events_->Notify();
    Published(*n, cluster, /*deliver=*/true, only_agent_id);
  }
  return Get(id);
}

absl::StatusOr<std::vector<v1::CommandLine>> CommandStore::Lines(const std::string& id,
                                                                 int64_t after_seq, int limit) {
  auto n = ParseCommandId(id);
  if (!n.ok()) return n.status();
  if (limit <= 0) limit = 500;
  limit = std::min(limit, 5000);
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::CommandLine>> {
    pqxx::read_transaction tx(c);
    std::vector<v1::CommandLine> out;
    for (const auto& r : tx.exec_params(
             absl::StrCat("SELECT seq, ", common::EpochMicrosSql("at"),
                          ", agent_name, text FROM command_lines "
                          "WHERE command_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
             *n, std::max<int64_t>(after_seq, 0), limit)) {
      v1::CommandLine line;
      line.set_seq(r[0].as<int64_t>());
      *line.mutable_at() = Micros(r[1].as<int64_t>());
      line.set_agent(r[2].as<std::string>());
      line.set_text(r[3].as<std::string>());
      out.push_back(std::move(line));
    }
    return out;
  });
}

absl::StatusOr<std::vector<v1::Command>> CommandStore::Deliverable(const AgentIdentity& agent,
                                                                   int64_t only_id) {
  std::vector<std::pair<int64_t, std::string>> failed;  // id, cluster
  auto out = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::Command>> {
    pqxx::work tx(c);
    PendingEvents events;
    // A run an older incarnation started is gone with its container: fail it.
    failed = EndParts(
        tx, agent.id,
        tx.exec_params(
            "SELECT t.command_id, t.incarnation FROM command_targets t "
            "JOIN commands c ON c.id = t.command_id "
            "WHERE t.agent_id = $1::uuid AND t.finished_at IS NULL AND t.state = 'running' "
            "AND t.incarnation < $2 AND c.kind <> 'apply' ORDER BY t.command_id",
            agent.id, agent.incarnation),
        [&](const pqxx::row& r) {
          return std::make_pair(
              std::string("failed"),
              absl::StrCat("the agent re-registered (incarnation ", agent.incarnation,
                           ") while incarnation ", r[1].as<int64_t>(),
                           " ran this command; its container was replaced, so the run is lost"));
        },
        events);
    std::vector<v1::Command> commands;
    for (const auto& r : tx.exec_params(
             "SELECT c.id, c.command::text, c.revision, c.cancel_requested, t.attempt, t.lines_stored "
             "FROM command_targets t JOIN commands c ON c.id = t.command_id "
             "WHERE t.agent_id = $1::uuid AND t.finished_at IS NULL AND c.kind <> 'apply' "
             "AND ($2 = 0 OR c.id = $2) ORDER BY c.id",
             agent.id, only_id)) {
      v1::Command command = ParseCommandJson(r[1]);
      command.set_id(absl::StrCat(r[0].as<int64_t>()));
      command.set_revision(r[2].as<int64_t>());
      command.set_cancel(r[3].as<bool>());
      command.set_attempt(r[4].as<int64_t>());
      command.set_lines_stored(r[5].as<int64_t>());
      commands.push_back(std::move(command));
    }
    events.AppendTo(tx);
    tx.commit();
    return commands;
  });
  if (!failed.empty()) {
    events_->Notify();
    for (const auto& [id, cluster] : failed) {
      metrics_->CommandPartFinished("failed");
      Published(id, cluster, /*deliver=*/false);
    }
  }
  return out;
}

absl::Status CommandStore::RecordUpdate(const AgentIdentity& agent,
                                        const v1::CommandUpdate& update) {
  auto n = ParseCommandId(update.command_id());
  if (!n.ok()) return n.status();
  if (!v1::CommandState_IsValid(update.state()) ||
      update.state() == v1::COMMAND_STATE_UNSPECIFIED) {
    return absl::InvalidArgumentError("CommandUpdate.state must be a command state");
  }
  if (update.progress_size() > kMaxLinesPerUpdate) {
    return absl::InvalidArgumentError(
        absl::StrCat("a CommandUpdate carries at most ", kMaxLinesPerUpdate, " lines"));
  }
  if (update.attempt() < 0 || update.first_line() < 0 ||
      update.first_line() > kMaxLinesPerCommand ||
      (update.progress_size() > 0 && update.first_line() < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CommandUpdate lines need an attempt ≥ 0 and a first_line from 1 to ",
        kMaxLinesPerCommand));
  }
  std::string cluster;
  bool changed = false;
  std::string finished;  // the part's final state, when this update ended it
  auto st = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    auto command = LockCommand(tx, *n);
    // Read under the command's lock, so lines' times rise with their seq.
    const absl::Time now = clock_->Now();
    auto target = tx.exec_params(
        "SELECT state, attempt, lines_stored FROM command_targets "
        "WHERE command_id = $1 AND agent_id = $2::uuid FOR UPDATE",
        *n, agent.id);
    if (!command) return absl::NotFoundError(absl::StrCat("command ", *n, " does not exist"));
    if (target.empty()) {
      // No part for this agent. Benign when the command is its own cluster's and the agent
      // had reason to report it: an apply reaches every agent of the cluster with its revision,
      // also one that registered after the apply; and a pro agent's part moves to its
      // cluster's leader, so a former leader's late update is only stale. Anything else is an
      // agent speaking for another, and ends its stream.
      bool benign = false;
      if (command->cluster == agent.cluster) {
        auto mine = tx.exec_params("SELECT mode FROM agents WHERE id = $1::uuid", agent.id);
        benign = command->kind == "apply" ||
                 (!mine.empty() && mine[0][0].as<std::string>() == "pro");
      }
      if (benign) {
        return absl::NotFoundError(absl::StrCat("command ", *n, " has no part for this agent"));
      }
      return absl::PermissionDeniedError(absl::StrCat(
          "command ", *n, " is not this agent's: an agent reports only its own commands"));
    }
    cluster = command->cluster;
    const v1::CommandState from = ParseCommandState(target[0][0].as<std::string>());
    int64_t attempt = target[0][1].as<int64_t>();
    int64_t stored = target[0][2].as<int64_t>();
    if (update.attempt() < attempt) return absl::OkStatus();  // an older run's late words
    if (update.attempt() > attempt) {
      attempt = update.attempt();
      stored = 0;
    }
    // Lines numbered above what is stored, once each; a gap says it is one.
    std::vector<std::string> lines;
    const int64_t first = update.first_line();
    if (update.progress_size() > 0 && first > stored + 1) {
      lines.push_back(absl::StrCat("(lines ", stored + 1, "–", first - 1, " of attempt ",
                                   attempt, " were not received)"));
    }
    for (int i = 0; i < update.progress_size(); ++i) {
      if (first + i <= stored) continue;
      lines.push_back(common::CutText(update.progress(i), kMaxLineBytes));
    }
    if (update.progress_size() > 0) stored = std::max(stored, first + update.progress_size() - 1);
    AppendLines(tx, *n, *command, agent.name, lines, now);

    // An apply ends with the agent's Ack or Nack, not with its words.
    v1::CommandState to = update.state();
    if (command->kind == "apply" && IsTerminal(to)) to = v1::COMMAND_STATE_RUNNING;
    if (to == v1::COMMAND_STATE_QUEUED || !CheckTransition(from, to).ok()) to = from;
    const bool terminal_now = IsTerminal(to) && !IsTerminal(from);
    tx.exec_params(
        "UPDATE command_targets SET state = $3, attempt = $4, lines_stored = $5, "
        "steps_done = $6, steps_total = $7, step = $8, "
        "error = CASE WHEN $9 THEN $10 ELSE error END, "
        "started_at = coalesce(started_at, CASE WHEN $3 <> 'queued' THEN $11::timestamptz END), "
        "incarnation = CASE WHEN started_at IS NULL THEN $12 ELSE incarnation END, "
        "finished_at = CASE WHEN $9 THEN $11::timestamptz ELSE finished_at END "
        "WHERE command_id = $1 AND agent_id = $2::uuid",
        *n, agent.id, CommandStateWord(to), attempt, stored,
        std::clamp(update.steps_done(), 0, 1'000'000),
        std::clamp(update.steps_total(), 0, 1'000'000), common::CutText(update.step(), 256),
        terminal_now, common::CutText(update.error(), 1024), common::PgTimestamp(now),
        agent.incarnation);
    PendingEvents events;
    if (to != from) Settle(tx, *n, events);
    events.AppendTo(tx);
    tx.commit();
    changed = true;
    if (terminal_now) finished = CommandStateWord(to);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  if (!finished.empty()) metrics_->CommandPartFinished(finished);
  if (changed) {
    events_->Notify();
    Published(*n, cluster, /*deliver=*/false);
  }
  return absl::OkStatus();
}

absl::Status CommandStore::RecordReport(const AgentIdentity& agent, int64_t revision, bool ok,
                                        const std::string& error) {
  std::vector<std::pair<int64_t, std::string>> settled;
  auto st = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    settled.clear();
    pqxx::work tx(c);
    PendingEvents events;
    // An apply has a part for every agent of the cluster, and each ends with its agent's ack:
    // the command's row is locked only by whoever may end the last open part, not by every ack
    // (at 50,000 agents the acks queued on it, one commit at a time, for minutes).
    for (const auto& r : tx.exec_params(
             "SELECT t.command_id, c.revision, c.cluster FROM command_targets t "
             "JOIN commands c ON c.id = t.command_id "
             "WHERE t.agent_id = $1::uuid AND t.finished_at IS NULL AND c.kind = 'apply' "
             "AND c.revision <= $2 ORDER BY t.command_id",
             agent.id, revision)) {
      const int64_t id = r[0].as<int64_t>();
      const bool superseded = r[1].as<int64_t>() != revision;
      if (!EndPart(tx, id, agent.id, superseded ? "cancelled" : ok ? "succeeded" : "failed",
                   superseded ? absl::StrCat("superseded by revision ", revision,
                                             " before this agent reconciled it")
                   : ok       ? std::string()
                              : common::CutText(error, 1024))) {
        continue;
      }
      settled.emplace_back(id, r[2].as<std::string>());
      // An open part no transaction holds will end with an ack of its own, which settles the
      // command then; meanwhile the command only has to say it runs. A part another transaction
      // holds may be ending this moment: then both settle, in turn under the command's lock,
      // so the last end is never left unsettled.
      const bool others_open = !tx.exec_params("SELECT 1 FROM command_targets "
                                               "WHERE command_id = $1 AND state IN "
                                               "('queued', 'running') "
                                               "LIMIT 1 FOR SHARE SKIP LOCKED",
                                               id)
                                    .empty();
      if (others_open) {
        tx.exec_params("UPDATE commands SET state = 'running' WHERE id = $1 AND state = 'queued'",
                       id);
        continue;
      }
      if (!LockCommand(tx, id)) continue;
      Settle(tx, id, events);
    }
    events.AppendTo(tx);
    tx.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  if (!settled.empty()) events_->Notify();
  for (const auto& [id, cluster] : settled) {
    metrics_->CommandPartFinished(ok ? "succeeded" : "failed");
    Published(id, cluster, /*deliver=*/false);
  }
  return absl::OkStatus();
}

absl::Status CommandStore::AgentDeleted(const std::string& agent_id, const std::string& name) {
  std::vector<std::pair<int64_t, std::string>> settled;
  auto st = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    pqxx::work tx(c);
    PendingEvents events;
    settled = EndParts(tx, agent_id,
                       tx.exec_params("SELECT command_id FROM command_targets "
                                      "WHERE agent_id = $1::uuid AND finished_at IS NULL "
                                      "ORDER BY command_id",
                                      agent_id),
                       [&](const pqxx::row&) {
                         return std::make_pair(std::string("cancelled"),
                                               absl::StrCat("agent ", name, " was deleted"));
                       },
                       events);
    events.AppendTo(tx);
    tx.commit();
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  if (!settled.empty()) events_->Notify();
  for (const auto& [id, cluster] : settled) {
    metrics_->CommandPartFinished("cancelled");
    Published(id, cluster, /*deliver=*/false);
  }
  return absl::OkStatus();
}

std::vector<std::pair<int64_t, std::string>> CommandStore::EndParts(
    pqxx::transaction_base& tx, const std::string& agent_id, const pqxx::result& rows,
    const std::function<std::pair<std::string, std::string>(const pqxx::row&)>& how,
    PendingEvents& events) {
  std::vector<std::pair<int64_t, std::string>> ended;
  for (const auto& r : rows) {
    const int64_t id = r[0].as<int64_t>();
    auto command = LockCommand(tx, id);
    if (!command) continue;
    const auto [state, error] = how(r);
    // Under the lock: a part that ended since `rows` were read is left as it ended.
    if (!EndPart(tx, id, agent_id, state, error)) continue;
    Settle(tx, id, events);
    ended.emplace_back(id, command->cluster);
  }
  return ended;
}

}  // namespace tether::controlplane
