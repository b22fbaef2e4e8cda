// AgentReports over agents and agent_tenants.
#include "controlplane/agents/reports.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "common/pg/identifiers.h"
#include "common/spec/spec.h"
#include "common/text.h"

namespace tether::controlplane {
namespace {

using google::protobuf::util::TimeUtil;

std::string Cut(const std::string& s) { return common::CutText(s, kMaxReportedError); }

// Agent-supplied text the database will store: UTF-8 without NUL (PostgreSQL's text has none).
absl::Status CheckText(const std::string& what, const std::string& s) {
  if (!common::IsUtf8(s)) return absl::InvalidArgumentError(absl::StrCat(what, " is not UTF-8"));
  if (s.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(what, " contains a NUL byte"));
  }
  return absl::OkStatus();
}

std::string Seconds(absl::Duration d) { return absl::StrFormat("%.1fs", absl::ToDoubleSeconds(d)); }

v1::TenantState StateFromName(const std::string& name) {
  v1::TenantState state = v1::TENANT_STATE_UNSPECIFIED;
  (void)v1::TenantState_Parse(name, &state);
  return state;
}

// "" (not reported) or a hex SHA-256.
bool IsSha256Hex(const std::string& s) {
  if (s.empty()) return true;
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

AgentReports::AgentReports(common::PgPool* pool, EventLog* events, common::Clock* clock)
    : pool_(pool), events_(events), clock_(clock) {}

absl::Status AgentReports::RecordAck(const AgentIdentity& agent, const v1::Ack& ack) {
  return Record(agent, ack.revision(), true, "", ack.tenants(), ack.took());
}

absl::Status AgentReports::RecordNack(const AgentIdentity& agent, const v1::Nack& nack) {
  return Record(agent, nack.revision(), false, nack.error(), nack.tenants(), nack.took());
}

absl::Status AgentReports::Record(
    const AgentIdentity& agent, int64_t revision, bool ok, const std::string& raw_error,
    const google::protobuf::RepeatedPtrField<v1::TenantStatus>& tenants,
    const google::protobuf::Duration& took_proto) {
  if (tenants.size() > common::kMaxTenants) {
    return absl::InvalidArgumentError(absl::StrCat("a report of ", tenants.size(),
                                                   " tenants; at most ", common::kMaxTenants));
  }
  nlohmann::json rows = nlohmann::json::array();
  std::set<std::string> names;
  for (const auto& t : tenants) {
    if (auto st = common::ValidateIdentifier("tenant", t.name()); !st.ok()) return st;
    if (common::IsReservedTenantName(t.name())) {
      return absl::InvalidArgumentError(
          absl::StrCat("tenant ", t.name(), " has a reserved name; no agent reports one"));
    }
    if (!names.insert(t.name()).second) {
      return absl::InvalidArgumentError(absl::StrCat("tenant ", t.name(), " is reported twice"));
    }
    if (!v1::TenantState_IsValid(t.state()) || t.state() == v1::TENANT_STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("tenant ", t.name(), " has no valid state"));
    }
    if (t.version() < 0 || t.target_version() < 0) {
      return absl::InvalidArgumentError(absl::StrCat("tenant ", t.name(), " has a negative version"));
    }
    std::vector<std::string> pending;
    for (int64_t v : t.pending_versions()) pending.push_back(absl::StrCat(v));
    if (pending.size() > 10'000) return absl::InvalidArgumentError("too many pending versions");
    if (auto st = CheckText(absl::StrCat("the error of tenant ", t.name()), t.error()); !st.ok()) {
      return st;
    }
    static const std::set<std::string> kMethods = {"", "migrations", "template", "warm_pool",
                                                   "snapshot"};
    if (kMethods.count(t.onboarding()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tenant ", t.name(), " has an unknown onboarding method (migrations, template, "
          "warm_pool, snapshot)"));
    }
    if (!IsSha256Hex(t.fingerprint()) || !IsSha256Hex(t.replay_fingerprint())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tenant ", t.name(), " has a fingerprint that is not 64 lower-case hex digits"));
    }
    // An agent records an onboarding only once proved: a method with both fingerprints, equal.
    if ((t.onboarding().empty() != t.fingerprint().empty()) ||
        t.fingerprint() != t.replay_fingerprint()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tenant ", t.name(), " reports an onboarding that was not proved (a method needs its "
          "fingerprint, equal to the replay's)"));
    }
    rows.push_back({{"tenant", t.name()},
                    {"state", v1::TenantState_Name(t.state())},
                    {"version", t.version()},
                    {"target_version", t.target_version()},
                    {"pending", absl::StrJoin(pending, ",")},
                    {"error", common::CutText(t.error(), kMaxTenantError)},
                    {"held", t.held()},
                    {"onboarding", t.onboarding()},
                    {"fingerprint", t.fingerprint()},
                    {"replay_fingerprint", t.replay_fingerprint()}});
  }
  if (auto st = CheckText("the error", raw_error); !st.ok()) return st;
  const std::string error = Cut(raw_error);
  absl::Duration took = absl::Seconds(took_proto.seconds()) + absl::Nanoseconds(took_proto.nanos());
  if (took < absl::ZeroDuration() || took > absl::Hours(24 * 7)) took = absl::ZeroDuration();
  const absl::Time now = clock_->Now();
  // What happened, appended last (EventLog::Append's rule): {kind, message}, or kind empty.
  std::pair<std::string, std::string> event;
  absl::Status st = pool_->Run([&](pqxx::connection& c) -> absl::Status {
    event = {};
    pqxx::work tx(c);
    auto cluster = tx.exec_params("SELECT last_revision FROM clusters WHERE name = $1",
                                  agent.cluster);
    if (cluster.empty() || revision <= 0 || revision > cluster[0][0].as<int64_t>()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "revision ", revision, " is not a revision of cluster \"", agent.cluster, "\""));
    }
    auto before = tx.exec_params(
        absl::StrCat("SELECT applied_revision, nack_revision, nack_error, ",
                     common::EpochMicrosSql("incarnation_at"),
                     ", converged_at IS NULL FROM agents "
                     "WHERE id = $1::uuid AND incarnation = $2 FOR UPDATE"),
        agent.id, agent.incarnation);
    if (before.empty()) {
      return absl::NotFoundError(absl::StrCat("agent ", agent.name, " incarnation ",
                                              agent.incarnation, " is no longer current"));
    }
    const int64_t applied = before[0][0].as<int64_t>();
    if (ok) {
      // Clears a nack of this revision or an older one: it was reconciled since.
      tx.exec_params(
          "UPDATE agents SET applied_revision = GREATEST(applied_revision, $3), "
          "converged_at = CASE WHEN applied_revision < $3 OR converged_at IS NULL "
          "  THEN $4::timestamptz ELSE converged_at END, "
          "nack_revision = CASE WHEN nack_revision <= $3 THEN 0 ELSE nack_revision END, "
          "nack_error = CASE WHEN nack_revision <= $3 THEN '' ELSE nack_error END, "
          "nack_at = CASE WHEN nack_revision <= $3 THEN NULL ELSE nack_at END "
          "WHERE id = $1::uuid AND incarnation = $2",
          agent.id, agent.incarnation, revision, common::PgTimestamp(now));
      if (revision > applied || before[0][4].as<bool>()) {
        std::string message = absl::StrCat("revision ", revision, " applied in ", Seconds(took),
                                           " (", tenants.size(), " tenants)");
        if (applied == 0 && agent.incarnation > 1 && !before[0][3].is_null()) {
          absl::StrAppend(&message, ", ",
                          Seconds(now - absl::FromUnixMicros(before[0][3].as<int64_t>())),
                          " after incarnation ", agent.incarnation, " registered");
        }
        event = {"agent.converged", std::move(message)};
      }
    } else {
      tx.exec_params(
          "UPDATE agents SET nack_revision = $3, nack_error = $4, nack_at = $5::timestamptz "
          "WHERE id = $1::uuid AND incarnation = $2",
          agent.id, agent.incarnation, revision, error, common::PgTimestamp(now));
      if (before[0][1].as<int64_t>() != revision || before[0][2].as<std::string>() != error) {
        event = {"agent.nack", absl::StrCat("revision ", revision, " failed: ", error)};
      }
    }
    tx.exec_params("DELETE FROM agent_tenants WHERE agent_id = $1::uuid", agent.id);
    if (!rows.empty()) {
      tx.exec_params(
          "INSERT INTO agent_tenants (agent_id, tenant, revision, state, version, "
          "target_version, pending, error, held, onboarding, fingerprint, replay_fingerprint, "
          "updated_at) "
          "SELECT $1::uuid, r.tenant, $2, r.state, r.version, r.target_version, r.pending, "
          "r.error, r.held, r.onboarding, r.fingerprint, r.replay_fingerprint, $4::timestamptz "
          "FROM jsonb_to_recordset($3::jsonb) AS r(tenant text, state text, version bigint, "
          "target_version bigint, pending text, error text, held boolean, onboarding text, "
          "fingerprint text, replay_fingerprint text)",
          agent.id, revision, rows.dump(), common::PgTimestamp(now));
    }
    if (!event.first.empty()) {
      EventLog::Append(tx, agent.cluster, agent.name, event.first, event.second);
    }
    tx.commit();
    return absl::OkStatus();
  });
  if (st.ok() && !event.first.empty()) events_->Notify();
  if (st.ok()) {
    spdlog::info("agent reported name={} revision={} result={} tenants={} took={}", agent.name,
                 revision, ok ? "ack" : "nack", tenants.size(), Seconds(took));
  }
  return st;
}

absl::StatusOr<std::vector<v1::Tenant>> AgentReports::ListTenants(const std::string& cluster,
                                                                  const std::string& tenant) {
  if (!cluster.empty()) {
    if (auto st = common::ValidateIdentifier("cluster", cluster); !st.ok()) return st;
  }
  if (!tenant.empty()) {
    if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  }
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::Tenant>> {
    pqxx::read_transaction tx(c);
    std::vector<v1::Tenant> out;
    for (const auto& r : tx.exec_params(
             absl::StrCat("SELECT a.cluster, a.name, t.revision, t.tenant, t.state, t.version, "
                          "t.target_version, t.pending, t.error, ",
                          common::EpochMicrosSql("t.updated_at"),
                          ", t.held, t.onboarding, t.fingerprint, t.replay_fingerprint",
                          " FROM agent_tenants t JOIN agents a ON a.id = t.agent_id "
                          "WHERE ($1 = '' OR a.cluster = $1) AND ($2 = '' OR t.tenant = $2) "
                          "ORDER BY a.cluster, a.name, t.tenant"),
             cluster, tenant)) {
      v1::Tenant t;
      t.set_cluster(r[0].as<std::string>());
      t.set_agent(r[1].as<std::string>());
      t.set_revision(r[2].as<int64_t>());
      v1::TenantStatus* s = t.mutable_status();
      s->set_name(r[3].as<std::string>());
      s->set_state(StateFromName(r[4].as<std::string>()));
      s->set_version(r[5].as<int64_t>());
      s->set_target_version(r[6].as<int64_t>());
      for (absl::string_view v : absl::StrSplit(r[7].as<std::string>(), ',', absl::SkipEmpty())) {
        int64_t n = 0;
        if (absl::SimpleAtoi(v, &n)) s->add_pending_versions(n);
      }
      s->set_error(r[8].as<std::string>());
      *s->mutable_updated_at() = TimeUtil::MicrosecondsToTimestamp(r[9].as<int64_t>());
      s->set_held(r[10].as<bool>());
      s->set_onboarding(r[11].as<std::string>());
      s->set_fingerprint(r[12].as<std::string>());
      s->set_replay_fingerprint(r[13].as<std::string>());
      out.push_back(std::move(t));
    }
    if (out.empty() && !cluster.empty() &&
        tx.exec_params("SELECT 1 FROM clusters WHERE name = $1", cluster).empty()) {
      return absl::NotFoundError(absl::StrCat("cluster \"", common::CutText(cluster, 64),
                                              "\" does not exist"));
    }
    return out;
  });
}

}  // namespace tether::controlplane
