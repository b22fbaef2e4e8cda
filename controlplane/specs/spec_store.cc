// SpecStore over spec_revisions and spec_files.
#include "controlplane/specs/spec_store.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/pg/identifiers.h"
#include "common/spec/diff.h"
#include "common/spec/spec.h"
#include "controlplane/commands/command_store.h"

namespace tether::controlplane {
namespace {

using google::protobuf::util::TimeUtil;

absl::Status NoSuchCluster(const std::string& cluster) {
  return absl::NotFoundError(absl::StrCat("cluster \"", cluster,
                                          "\" does not exist; clusters are made by `tetherctl "
                                          "tokens create --cluster ", cluster, "`"));
}

// Every file a spec carries: its migrations and its hooks.
std::vector<v1::SpecFile*> FilesOf(v1::ClusterSpec* spec) {
  std::vector<v1::SpecFile*> files;
  for (auto& f : *spec->mutable_migrations()->mutable_files()) files.push_back(&f);
  for (auto& h : *spec->mutable_hooks()) files.push_back(h.mutable_file());
  return files;
}

}  // namespace

SpecStore::SpecStore(common::PgPool* pool, EventLog* events, ChangeBus* bus, common::Clock* clock)
    : pool_(pool), events_(events), bus_(bus), clock_(clock) {}

absl::StatusOr<v1::SpecRevision> SpecStore::Read(pqxx::transaction_base& tx,
                                                 const std::string& cluster, int64_t revision,
                                                 bool with_files) {
  auto rows = tx.exec_params(
      absl::StrCat("SELECT revision, ", common::EpochMicrosSql("created_at"),
                   ", created_by, changes, spec::text FROM spec_revisions "
                   "WHERE cluster = $1 AND revision = $2"),
      cluster, revision);
  if (rows.empty()) {
    return absl::NotFoundError(absl::StrCat("cluster \"", cluster, "\" has no revision ", revision));
  }
  v1::SpecRevision out;
  out.set_cluster(cluster);
  out.set_revision(rows[0][0].as<int64_t>());
  *out.mutable_created_at() = TimeUtil::MicrosecondsToTimestamp(rows[0][1].as<int64_t>());
  out.set_created_by(rows[0][2].as<std::string>());
  for (absl::string_view line : absl::StrSplit(rows[0][3].as<std::string>(), '\n', absl::SkipEmpty())) {
    out.add_changes(std::string(line));
  }
  google::protobuf::util::JsonParseOptions lenient;
  lenient.ignore_unknown_fields = true;  // written by a newer replica
  auto parsed = google::protobuf::util::JsonStringToMessage(rows[0][4].as<std::string>(),
                                                             out.mutable_spec(), lenient);
  if (!parsed.ok()) {
    return absl::DataLossError(absl::StrCat("revision ", revision, " of cluster ", cluster,
                                            " cannot be read: ", parsed.ToString()));
  }
  if (with_files) {
    // Every file in one round trip, however many the spec carries.
    nlohmann::json shas = nlohmann::json::array();
    for (const v1::SpecFile* f : FilesOf(out.mutable_spec())) shas.push_back(f->sha256());
    std::map<std::string, std::string> contents;
    for (const auto& r : tx.exec_params(
             "SELECT sha256, contents FROM spec_files "
             "WHERE sha256 IN (SELECT jsonb_array_elements_text($1::jsonb))",
             shas.dump())) {
      contents[r[0].as<std::string>()] = r[1].as<std::string>();
    }
    for (v1::SpecFile* f : FilesOf(out.mutable_spec())) {
      auto it = contents.find(f->sha256());
      if (it == contents.end()) {
        return absl::DataLossError(absl::StrCat("file ", f->name(), " of revision ", revision,
                                                " is missing"));
      }
      f->set_contents(it->second);
    }
  }
  return out;
}

absl::StatusOr<ApplyResult> SpecStore::Apply(const v1::ClusterSpec& spec, const std::string& who,
                                             bool dry_run, bool replace_unapplied,
                                             const std::string& idempotency_key) {
  if (auto st = common::ValidateNewSpec(spec); !st.ok()) return st;
  if (idempotency_key.size() > kMaxIdempotencyKeyBytes || !common::IsUtf8(idempotency_key)) {
    return absl::InvalidArgumentError(absl::StrCat("idempotency key must be UTF-8 of at most ",
                                                   kMaxIdempotencyKeyBytes, " bytes"));
  }
  const std::string request_hash =
      common::FileSha256(absl::StrCat(DeterministicBytes(spec), replace_unapplied ? "+r" : ""));
  const absl::Time now = clock_->Now();
  auto result = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<ApplyResult> {
    pqxx::work tx(c);
    auto cluster = tx.exec_params(
        "SELECT last_revision FROM clusters WHERE name = $1 FOR UPDATE", spec.cluster());
    if (cluster.empty()) return NoSuchCluster(spec.cluster());
    // Under the cluster's lock: a retry racing its first call sees what that call stored.
    if (auto keyed = dry_run ? std::nullopt : CommandStore::FindByKey(tx, idempotency_key)) {
      if (keyed->request_hash != request_hash) {
        return absl::AlreadyExistsError(absl::StrCat(
            "idempotency key was used for another request (command ", keyed->id, ")"));
      }
      auto first = Read(tx, spec.cluster(), keyed->revision, /*with_files=*/false);
      if (!first.ok()) return first.status();
      ApplyResult again;
      again.revision = keyed->revision;
      again.previous_revision = keyed->revision - 1;
      again.changes.assign(first->changes().begin(), first->changes().end());
      again.stored = true;
      again.command_id = absl::StrCat(keyed->id);
      again.retried = true;
      return again;
    }
    ApplyResult out;
    out.previous_revision = cluster[0][0].as<int64_t>();
    out.revision = out.previous_revision;
    std::optional<v1::ClusterSpec> previous;
    if (out.previous_revision > 0) {
      auto latest = Read(tx, spec.cluster(), out.previous_revision, /*with_files=*/false);
      if (!latest.ok()) return latest.status();
      previous = latest->spec();
      int64_t unapplied_above = -1;
      if (replace_unapplied) {
        // As far as the agents have reported: the highest version any tenant is at.
        unapplied_above = tx.exec_params1(
            "SELECT coalesce(max(t.version), 0) FROM agent_tenants t "
            "JOIN agents a ON a.id = t.agent_id WHERE a.cluster = $1",
            spec.cluster())[0].as<int64_t>();
      }
      if (auto st = common::CheckSuccessor(*previous, spec, unapplied_above); !st.ok()) return st;
    }
    out.changes = common::DiffSpecs(previous ? &*previous : nullptr, spec);
    if (!out.changes.empty() && spec.prune()) {
      // Prune drops every orphan the agents keep, not only the tenants this revision removes:
      // say so before it happens.
      std::set<std::string> wanted;
      for (const auto& t : spec.tenants()) wanted.insert(t.name());
      for (const auto& r : tx.exec_params(
               "SELECT DISTINCT t.tenant FROM agent_tenants t JOIN agents a ON a.id = t.agent_id "
               "WHERE a.cluster = $1 AND t.state = 'TENANT_STATE_ORPHANED' ORDER BY 1",
               spec.cluster())) {
        const std::string tenant = r[0].as<std::string>();
        const std::string line = absl::StrCat("- tenant ", tenant, " (dropped: prune is true)");
        if (wanted.count(tenant) == 0 &&
            std::find(out.changes.begin(), out.changes.end(), line) == out.changes.end()) {
          out.changes.push_back(absl::StrCat(line, ", an orphan of an earlier revision"));
        }
      }
    }
    if (out.changes.empty() || dry_run) return out;

    v1::ClusterSpec stored = spec;
    nlohmann::json files = nlohmann::json::array();
    for (v1::SpecFile* f : FilesOf(&stored)) {
      files.push_back({{"sha256", f->sha256()}, {"contents", f->contents()}});
      f->clear_contents();
    }
    tx.exec_params(
        "INSERT INTO spec_files (sha256, contents) "
        "SELECT f.sha256, f.contents FROM jsonb_to_recordset($1::jsonb) AS f(sha256 text, "
        "contents text) ON CONFLICT (sha256) DO NOTHING",
        files.dump());
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(stored, &json);
    out.revision = out.previous_revision + 1;
    tx.exec_params(
        "INSERT INTO spec_revisions (cluster, revision, spec, created_at, created_by, changes) "
        "VALUES ($1, $2, $3::jsonb, $4::timestamptz, $5, $6)",
        spec.cluster(), out.revision, json, common::PgTimestamp(now), who,
        absl::StrJoin(out.changes, "\n"));
    tx.exec_params("UPDATE clusters SET last_revision = $2 WHERE name = $1", spec.cluster(),
                   out.revision);
    // The event says what changed in a line; `history` and `get spec` keep every change.
    constexpr size_t kChangesInEvent = 20;
    std::vector<std::string> shown(
        out.changes.begin(), out.changes.begin() + std::min(out.changes.size(), kChangesInEvent));
    if (out.changes.size() > kChangesInEvent) {
      shown.push_back(absl::StrCat("and ", out.changes.size() - kChangesInEvent, " more"));
    }
    out.command_id = absl::StrCat(CommandStore::InsertApply(
        tx, spec.cluster(), out.revision, idempotency_key, request_hash, who, now));
    EventLog::Append(tx, spec.cluster(), "", "spec.applied",
                     absl::StrCat("revision ", out.revision, " by ", who.empty() ? "?" : who, ": ",
                                  absl::StrJoin(shown, "; ")));
    tx.commit();
    out.stored = true;
    return out;
  });
  if (!result.ok() || !result->stored || result->retried) return result;
  events_->Notify();
  spdlog::info("spec applied cluster={} revision={} changes={}", spec.cluster(), result->revision,
               result->changes.size());
  bus_->Publish({Change::Kind::kRevision, spec.cluster(), "", result->revision});
  return result;
}

absl::StatusOr<v1::SpecRevision> SpecStore::Get(const std::string& cluster, int64_t revision,
                                                bool with_files) {
  if (auto st = common::ValidateIdentifier("cluster", cluster); !st.ok()) return st;
  if (revision < 0) return absl::InvalidArgumentError("revision must not be negative");
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<v1::SpecRevision> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params("SELECT last_revision FROM clusters WHERE name = $1", cluster);
    if (rows.empty()) return NoSuchCluster(cluster);
    const int64_t latest = rows[0][0].as<int64_t>();
    if (latest == 0) {
      return absl::NotFoundError(absl::StrCat("cluster \"", cluster,
                                              "\" has no spec yet (tetherctl apply -f SPEC)"));
    }
    return Read(tx, cluster, revision == 0 ? latest : revision, with_files);
  });
}

absl::StatusOr<std::vector<v1::SpecRevision>> SpecStore::History(const std::string& cluster,
                                                                 int limit) {
  if (auto st = common::ValidateIdentifier("cluster", cluster); !st.ok()) return st;
  if (limit <= 0) limit = 50;
  limit = std::min(limit, 1000);
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::SpecRevision>> {
    pqxx::read_transaction tx(c);
    if (tx.exec_params("SELECT 1 FROM clusters WHERE name = $1", cluster).empty()) {
      return NoSuchCluster(cluster);
    }
    std::vector<v1::SpecRevision> out;
    for (const auto& r : tx.exec_params(
             absl::StrCat("SELECT revision, ", common::EpochMicrosSql("created_at"),
                          ", created_by, changes FROM spec_revisions WHERE cluster = $1 "
                          "ORDER BY revision DESC LIMIT $2"),
             cluster, limit)) {
      v1::SpecRevision rev;
      rev.set_cluster(cluster);
      rev.set_revision(r[0].as<int64_t>());
      *rev.mutable_created_at() = TimeUtil::MicrosecondsToTimestamp(r[1].as<int64_t>());
      rev.set_created_by(r[2].as<std::string>());
      for (absl::string_view line : absl::StrSplit(r[3].as<std::string>(), '\n', absl::SkipEmpty())) {
        rev.add_changes(std::string(line));
      }
      out.push_back(std::move(rev));
    }
    return out;
  });
}

absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> SpecStore::LatestDesiredState(
    const std::string& cluster, int64_t at_least) {
  absl::MutexLock lock(&mu_);
  auto cached = latest_.find(cluster);
  if (at_least > 0 && cached != latest_.end() &&
      cached->second->desired_state().revision() >= at_least) {
    return cached->second;
  }
  auto loaded = pool_->Run(
      [&](pqxx::connection& c) -> absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> {
        pqxx::read_transaction tx(c);
        auto rows = tx.exec_params("SELECT last_revision FROM clusters WHERE name = $1", cluster);
        if (rows.empty() || rows[0][0].as<int64_t>() == 0) {
          return std::shared_ptr<const v1::MothershipMessage>();
        }
        const int64_t latest = rows[0][0].as<int64_t>();
        if (cached != latest_.end() && cached->second->desired_state().revision() == latest) {
          return cached->second;
        }
        auto revision = Read(tx, cluster, latest, /*with_files=*/true);
        if (!revision.ok()) return revision.status();
        auto msg = std::make_shared<v1::MothershipMessage>();
        msg->mutable_desired_state()->set_revision(latest);
        auto command = tx.exec_params(
            "SELECT id FROM commands WHERE cluster = $1 AND kind = 'apply' AND revision = $2",
            cluster, latest);
        if (!command.empty()) {
          msg->mutable_desired_state()->set_command_id(command[0][0].as<std::string>());
        }
        *msg->mutable_desired_state()->mutable_spec() = std::move(*revision->mutable_spec());
        return std::shared_ptr<const v1::MothershipMessage>(std::move(msg));
      });
  if (loaded.ok() && *loaded != nullptr) latest_[cluster] = *loaded;
  return loaded;
}

}  // namespace tether::controlplane
