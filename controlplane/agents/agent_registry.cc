// AgentRegistry over the agents table.
#include "controlplane/agents/agent_registry.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/time_util.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/logging.h"

#include <algorithm>
#include <regex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/pg/errors.h"
#include "common/pg/identifiers.h"
#include "common/secrets.h"
#include "common/spec/spec.h"
#include "common/text.h"
#include "controlplane/agents/liveness.h"
#include "controlplane/tokens/token_store.h"

namespace tether::controlplane {
namespace {

using google::protobuf::util::TimeUtil;

bool LooksLikeUuid(const std::string& s) {
  static const std::regex kUuid(R"(^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)");
  return std::regex_match(s, kUuid);
}

std::string ModeName(v1::AgentMode mode) { return mode == v1::AGENT_MODE_PRO ? "pro" : "lite"; }

std::string AgentColumns() {
  return absl::StrCat("id::text, name, cluster, mode, version, incarnation, ",
                      common::EpochMicrosSql("registered_at"), ", ",
                      common::EpochMicrosSql("last_seen_at"), ", health::text, applied_revision, ",
                      "(SELECT last_revision FROM clusters WHERE clusters.name = agents.cluster), ",
                      common::EpochMicrosSql("converged_at"), ", nack_revision, nack_error, ",
                      common::EpochMicrosSql("nack_at"));
}

// The health the row holds (column 8), as written from the agent's last sighting.
void HealthFromRow(const pqxx::row& r, v1::Agent* a) {
  google::protobuf::util::JsonParseOptions lenient;
  lenient.ignore_unknown_fields = true;  // health written by a newer replica
  (void)google::protobuf::util::JsonStringToMessage(r[8].as<std::string>(), a->mutable_health(),
                                                     lenient);
}

// `with_health` false: the caller fills the health in (parsing it is most of a row's cost, and
// a sighting in memory usually makes it moot).
v1::Agent AgentFromRow(const pqxx::row& r, absl::Time now, absl::Duration ttl,
                       absl::Time watching_since, bool with_health = true) {
  v1::Agent a;
  a.set_id(r[0].as<std::string>());
  a.set_name(r[1].as<std::string>());
  a.set_cluster(r[2].as<std::string>());
  a.set_mode(r[3].as<std::string>() == "pro" ? v1::AGENT_MODE_PRO : v1::AGENT_MODE_LITE);
  a.set_version(r[4].as<std::string>());
  a.set_incarnation(r[5].as<int64_t>());
  *a.mutable_registered_at() = TimeUtil::MicrosecondsToTimestamp(r[6].as<int64_t>());
  std::optional<absl::Time> last_seen;
  if (!r[7].is_null()) {
    *a.mutable_last_seen_at() = TimeUtil::MicrosecondsToTimestamp(r[7].as<int64_t>());
    last_seen = absl::FromUnixMicros(r[7].as<int64_t>());
  }
  if (with_health) HealthFromRow(r, &a);
  a.set_applied_revision(r[9].as<int64_t>());
  a.set_desired_revision(r[10].as<int64_t>());
  a.set_converged(a.desired_revision() > 0 && a.applied_revision() >= a.desired_revision());
  if (!r[11].is_null()) *a.mutable_converged_at() = TimeUtil::MicrosecondsToTimestamp(r[11].as<int64_t>());
  a.set_nack_revision(r[12].as<int64_t>());
  a.set_nack_error(r[13].as<std::string>());
  if (!r[14].is_null()) *a.mutable_nack_at() = TimeUtil::MicrosecondsToTimestamp(r[14].as<int64_t>());
  a.set_status(LivenessOf(last_seen, now, ttl, watching_since));
  return a;
}

// The registering agent, from the peer its Register came from.
Actor AgentActor(const std::string& agent_id) {
  return Actor{absl::StrCat("agent:", agent_id), CurrentActor().peer};
}

}  // namespace

absl::Status ValidateAgentName(const std::string& name) {
  // A hostname: dot-separated labels, none empty, none starting or ending with '-'.
  static const std::regex kHostname(
      R"(^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$)");
  if (name.size() <= 63 && std::regex_match(name, kHostname)) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid agent name \"", absl::CEscape(common::CutText(name, 80)),
      "\": use 1 to 63 lowercase letters, digits, '-' and '.', as in a hostname"));
}

AgentRegistry::AgentRegistry(common::PgPool* pool, EventLog* events, ChangeBus* bus,
                             StreamRegistry* streams, common::Clock* clock,
                             absl::Duration heartbeat_ttl, MothershipMetrics* metrics)
    : pool_(pool),
      events_(events),
      bus_(bus),
      streams_(streams),
      clock_(clock),
      heartbeat_ttl_(heartbeat_ttl),
      metrics_(metrics),
      started_at_(clock->Now()) {}

absl::StatusOr<Registration> AgentRegistry::Register(const RegistrationRequest& request) {
  if (request.bootstrap_token.empty()) {
    return absl::UnauthenticatedError("missing bootstrap token");
  }
  if (auto st = ValidateAgentName(request.name); !st.ok()) return st;
  // What the agent says of itself is shown to operators: bounded, and text.
  if (request.version.size() > kMaxAgentVersionBytes || !common::IsPrintableUtf8(request.version)) {
    return absl::InvalidArgumentError(absl::StrCat("version must be at most ",
                                                   kMaxAgentVersionBytes,
                                                   " bytes of printable UTF-8"));
  }
  if (request.registration_id.size() > 128 || request.bootstrap_token.size() > 256) {
    return absl::InvalidArgumentError(
        "registration id (128 bytes) or bootstrap token (256 bytes) is too long");
  }
  if (!request.cluster.empty()) {
    if (auto st = common::ValidateIdentifier("cluster", request.cluster); !st.ok()) return st;
  }
  const absl::Time now = clock_->Now();
  const std::string credential = common::NewSecret(kAgentCredentialPrefix);
  const std::string registration_hash =
      request.registration_id.empty() ? "" : common::HashSecret(request.registration_id);
  enum class Kind { kNew, kRetry, kReregistered } kind = Kind::kNew;
  auto registration = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<Registration> {
    pqxx::work tx(c);
    auto token = TokenStore::FindBootstrap(tx, request.bootstrap_token, now);
    if (!token.ok()) return token.status();
    // Checks every registration passes, a retry included.
    if (!request.cluster.empty() && request.cluster != token->cluster()) {
      return absl::PermissionDeniedError(absl::StrCat("bootstrap token ", token->id(),
                                                      " is for cluster \"", token->cluster(),
                                                      "\", not \"", request.cluster, "\""));
    }
    if (token->state() == v1::TOKEN_STATE_REVOKED || token->state() == v1::TOKEN_STATE_EXPIRED) {
      return absl::PermissionDeniedError(TokenStore::Describe(*token));
    }
    if (!TokenStore::AllowsName(*token, request.name)) {
      return absl::PermissionDeniedError(
          absl::StrCat("bootstrap token ", token->id(), " is only for agents named ",
                       absl::StrJoin(token->names(), " or ")));
    }
    Registration out;
    out.credential = credential;
    out.cluster = token->cluster();
    auto existing = tx.exec_params(
        "SELECT id::text, cluster, incarnation, registration_id_hash, registration_token_id "
        "FROM agents WHERE name = $1 FOR UPDATE",
        request.name);
    if (!existing.empty() && existing[0][1].as<std::string>() != token->cluster()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "agent \"", request.name, "\" belongs to cluster \"", existing[0][1].as<std::string>(),
          "\"; delete it first to move it"));
    }
    // A retry of the registration that made the current incarnation (its answer was lost): the
    // same id, with the same token, before the agent ever connected. Its use is counted already.
    if (!existing.empty() && !registration_hash.empty() &&
        existing[0][3].as<std::string>() == registration_hash &&
        existing[0][4].as<std::string>() == token->id()) {
      tx.exec_params("UPDATE agents SET credential_hash = $2 WHERE name = $1", request.name,
                     common::HashSecret(credential));
      out.agent_id = existing[0][0].as<std::string>();
      out.incarnation = existing[0][2].as<int64_t>();
      kind = Kind::kRetry;
      ScopedActor as_agent(AgentActor(out.agent_id));
      EventLog::Append(tx, out.cluster, request.name, "agent.registration_retried",
                       absl::StrCat("registration retried with token ", token->id(),
                                    "; credential re-issued for incarnation ", out.incarnation));
      tx.commit();
      return out;
    }
    if (!existing.empty() && streams_->IsConnected(existing[0][0].as<std::string>())) {
      return absl::FailedPreconditionError(absl::StrCat(
          "agent \"", request.name, "\" is connected (incarnation ", existing[0][2].as<int64_t>(),
          "); to replace it, stop it or run `tetherctl delete agent ", request.name, "`"));
    }
    if (auto st = TokenStore::UseBootstrap(tx, *token, now); !st.ok()) return st;
    if (!existing.empty()) {
      auto row = tx.exec_params1(
          // A new incarnation: nothing the old one reported holds any more.
          "UPDATE agents SET incarnation = incarnation + 1, credential_hash = $2, mode = $3, "
          "version = $4, last_seen_at = NULL, lost_reported = false, "
          "registration_id_hash = $5, registration_token_id = $6, incarnation_at = $7::timestamptz, "
          "health = '{}', applied_revision = 0, converged_at = NULL, nack_revision = 0, "
          "nack_error = '', nack_at = NULL "
          "WHERE name = $1 RETURNING id::text, incarnation",
          request.name, common::HashSecret(credential), ModeName(request.mode), request.version,
          registration_hash, token->id(), common::PgTimestamp(now));
      tx.exec_params("DELETE FROM agent_tenants WHERE agent_id = $1::uuid",
                     row[0].as<std::string>());
      out.agent_id = row[0].as<std::string>();
      out.incarnation = row[1].as<int64_t>();
      kind = Kind::kReregistered;
      ScopedActor as_agent(AgentActor(out.agent_id));
      EventLog::Append(tx, out.cluster, request.name, "agent.reregistered",
                       absl::StrCat("re-registered with token ", token->id(), ", incarnation ",
                                    out.incarnation));
    } else {
      auto row = tx.exec_params1(
          "INSERT INTO agents (id, name, cluster, mode, version, credential_hash, registered_at, "
          "registration_id_hash, registration_token_id, incarnation_at) "
          "VALUES (gen_random_uuid(), $1, $2, $3, $4, $5, $6::timestamptz, $7, $8, $6::timestamptz) "
          "RETURNING id::text, incarnation",
          request.name, token->cluster(), ModeName(request.mode), request.version,
          common::HashSecret(credential), common::PgTimestamp(now), registration_hash,
          token->id());
      out.agent_id = row[0].as<std::string>();
      out.incarnation = row[1].as<int64_t>();
      ScopedActor as_agent(AgentActor(out.agent_id));
      EventLog::Append(tx, out.cluster, request.name, "agent.registered",
                       absl::StrCat("registered with token ", token->id(), " as ", out.agent_id));
    }
    tx.commit();
    return out;
  });
  if (!registration.ok()) return registration.status();
  events_->Notify();
  if (kind == Kind::kReregistered) {
    bus_->Publish({Change::Kind::kIncarnation, registration->cluster, registration->agent_id,
                   registration->incarnation});
  }
  spdlog::info("agent registered name={} id={} cluster={} incarnation={}{}", request.name,
               registration->agent_id, registration->cluster, registration->incarnation,
               kind == Kind::kRetry ? " (retry)" : "");
  return registration;
}

absl::StatusOr<AgentIdentity> AgentRegistry::Authenticate(const std::string& agent_id,
                                                          const std::string& credential) {
  const absl::Status denied = absl::UnauthenticatedError("agent credential is not valid");
  if (!LooksLikeUuid(agent_id) || credential.empty()) return denied;
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<AgentIdentity> {
    pqxx::work tx(c);
    auto rows = tx.exec_params(
        "SELECT id::text, name, cluster, incarnation, credential_hash, registration_id_hash <> '' "
        "FROM agents WHERE id = $1::uuid",
        agent_id);
    if (rows.empty() ||
        !common::ConstantTimeEquals(rows[0][4].as<std::string>(), common::HashSecret(credential))) {
      return denied;
    }
    if (rows[0][5].as<bool>()) {
      // The agent holds the credential its registration gave: no retry of it is needed any more.
      tx.exec_params(
          "UPDATE agents SET registration_id_hash = '' WHERE id = $1::uuid AND incarnation = $2",
          agent_id, rows[0][3].as<int64_t>());
    }
    tx.commit();
    return AgentIdentity{rows[0][0].as<std::string>(), rows[0][1].as<std::string>(),
                         rows[0][2].as<std::string>(), rows[0][3].as<int64_t>()};
  });
}

void AgentRegistry::RecordSeen(const AgentIdentity& agent, const v1::Health& health,
                               std::optional<int64_t> applied_revision) {
  const absl::Time now = clock_->Now();
  metrics_->Sighting();
  absl::MutexLock lock(&mu_);
  auto [it, first] = seen_.try_emplace(agent.id);
  Sighting& s = it->second;
  if (first || s.written) unwritten_.push_back(agent.id);
  if (s.agent.incarnation != agent.incarnation) s.applied_revision.reset();
  s.agent = agent;
  s.at = now;
  s.health = health;
  if (applied_revision.has_value()) s.applied_revision = applied_revision;
  ++s.version;
  s.written = false;
}

absl::Status AgentRegistry::FlushHeartbeats() {
  struct Unwritten {
    std::string id;
    Sighting sighting;
  };
  std::vector<Unwritten> batch;
  {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> ids;
    ids.swap(unwritten_);
    for (const auto& id : ids) batch.push_back({id, seen_[id]});
  }
  if (batch.empty()) return absl::OkStatus();
  // Whatever ends this flush short leaves the batch for the next one.
  auto keep_unwritten = [&] {
    absl::MutexLock lock(&mu_);
    for (const Unwritten& u : batch) unwritten_.push_back(u.id);
  };
  // Sightings as one JSON array of records: one bound value, one statement, one round trip for
  // the whole batch however many agents it holds.
  auto records = [](const Unwritten* from, const Unwritten* to) {
    nlohmann::json out = nlohmann::json::array();
    for (const Unwritten* u = from; u != to; ++u) {
      std::string health_json;
      if (!google::protobuf::util::MessageToJsonString(u->sighting.health, &health_json).ok()) {
        health_json = "{}";  // a value JSON cannot carry (a duration out of range): not kept
      }
      nlohmann::json r = {{"id", u->id},
                          {"incarnation", u->sighting.agent.incarnation},
                          {"seen_at", common::PgTimestamp(u->sighting.at)},
                          {"health", health_json}};
      if (u->sighting.applied_revision) r["applied"] = *u->sighting.applied_revision;
      out.push_back(std::move(r));
    }
    return out.dump();
  };
  // An applied revision counts only up to the cluster's latest: Hello cannot inflate it. `was`
  // reads the row as it was before this statement: a lost agent seen again is recovered.
  auto write = [](pqxx::transaction_base& tx, const std::string& json) {
    return tx.exec_params(
        "UPDATE agents a SET last_seen_at = s.seen_at, health = s.health::jsonb, "
        "  lost_reported = false, "
        "  applied_revision = GREATEST(a.applied_revision, LEAST(coalesce(s.applied, 0), "
        "    (SELECT last_revision FROM clusters c WHERE c.name = a.cluster))) "
        "FROM jsonb_to_recordset($1::jsonb) AS s(id uuid, incarnation bigint, "
        "  seen_at timestamptz, health text, applied bigint) "
        "JOIN agents was ON was.id = s.id "
        "WHERE a.id = s.id AND a.incarnation = s.incarnation "
        "RETURNING a.name, a.cluster, was.lost_reported",
        json);
  };
  // The whole batch in one statement; only if that fails, each sighting in a subtransaction of
  // its own, so what one agent sent can never keep the others from being seen (they would all
  // turn lost) without costing the common case more round trips.
  auto flush = [&](bool isolate) {
    bool recovered_any = false;
    absl::Status st = pool_->Run([&](pqxx::connection& c) {
      pqxx::work tx(c);
      std::vector<std::pair<std::string, std::string>> recovered;  // cluster, name
      auto note = [&](const pqxx::result& rows) {
        for (const auto& r : rows) {
          if (r[2].as<bool>()) recovered.emplace_back(r[1].as<std::string>(), r[0].as<std::string>());
        }
      };
      if (!isolate) {
        note(write(tx, records(batch.data(), batch.data() + batch.size())));
      } else {
        for (const Unwritten& u : batch) {
          try {
            pqxx::subtransaction one(tx);
            auto rows = write(one, records(&u, &u + 1));
            one.commit();
            note(rows);
          } catch (const pqxx::broken_connection&) {
            throw;
          } catch (const std::exception& e) {
            spdlog::warn("sighting not recorded agent={} reason=\"{}\"", u.sighting.agent.name,
                         common::StatusFromException(e).message());
          }
        }
      }
      for (const auto& [cluster, name] : recovered) {
        EventLog::Append(tx, cluster, name, "agent.recovered", "heartbeats arrive again");
      }
      recovered_any = !recovered.empty();
      tx.commit();
      return absl::OkStatus();
    });
    if (st.ok() && recovered_any) events_->Notify();
    return st;
  };
  const absl::Time began = absl::Now();
  absl::Status st = flush(/*isolate=*/false);
  if (!st.ok() && !absl::IsUnavailable(st)) st = flush(/*isolate=*/true);
  if (!st.ok()) {
    keep_unwritten();  // the next flush tries again
    return st;
  }
  metrics_->SightingsWritten(batch.size(), absl::Now() - began);
  absl::MutexLock lock(&mu_);
  for (Unwritten& u : batch) {
    Sighting& s = seen_[u.id];
    if (s.version == u.sighting.version) {
      s.written = true;
      s.applied_revision.reset();
    } else {
      unwritten_.push_back(std::move(u.id));  // a newer sighting came in meanwhile
    }
  }
  return absl::OkStatus();
}

absl::Status AgentRegistry::SweepLost() {
  const absl::Time now = clock_->Now();
  // For one TTL after this mothership started, an old last_seen_at is the silence of its own
  // absence (agents could not reach it), not the agents': nobody is judged yet.
  if (now - started_at_ <= heartbeat_ttl_) return absl::OkStatus();
  const absl::Time cutoff = now - heartbeat_ttl_;
  // Heard here since the cutoff, and not written yet: the flush that writes it may wait for
  // rows the agents' own reports hold, while the row's last_seen_at says nothing of the agent.
  std::string heard = "{";
  {
    absl::MutexLock lock(&mu_);
    for (const std::string& id : unwritten_) {
      if (seen_[id].at < cutoff) continue;
      if (heard.size() > 1) heard += ',';
      heard += id;  // a uuid from an authenticated stream
    }
  }
  heard += '}';
  bool any = false;
  absl::Status st = pool_->Run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    auto rows = tx.exec_params(
        absl::StrCat("UPDATE agents SET lost_reported = true WHERE NOT lost_reported AND "
                     "last_seen_at < $1::timestamptz AND NOT (id = ANY($2::uuid[])) "
                     "RETURNING name, cluster, ",
                     common::EpochMicrosSql("last_seen_at")),
        common::PgTimestamp(cutoff), heard);
    for (const auto& r : rows) {
      any = true;
      const std::string since = absl::FormatTime(
          "%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMicros(r[2].as<int64_t>()), absl::UTCTimeZone());
      EventLog::Append(tx, r[1].as<std::string>(), r[0].as<std::string>(), "agent.lost",
                       absl::StrCat("no heartbeat since ", since));
      spdlog::warn("agent lost name={} last_seen={}", r[0].as<std::string>(), since);
    }
    tx.commit();
    return absl::OkStatus();
  });
  if (any) events_->Notify();
  return st;
}

std::string AgentPageToken::Encode() const {
  return absl::WebSafeBase64Escape(absl::StrCat(cluster, "/", name));
}

absl::StatusOr<AgentPageToken> AgentPageToken::Decode(const std::string& token) {
  if (token.empty()) return AgentPageToken{};
  std::string raw;
  std::vector<std::string> parts;
  if (token.size() <= 256 && absl::WebSafeBase64Unescape(token, &raw)) {
    parts = absl::StrSplit(raw, absl::MaxSplits('/', 1));
  }
  if (parts.size() != 2 || !ValidateAgentName(parts[1]).ok() ||
      !common::ValidateIdentifier("cluster", parts[0]).ok()) {
    return absl::InvalidArgumentError(
        "page_token is not one this mothership gave (pass the last page's next_page_token)");
  }
  return AgentPageToken{parts[0], parts[1]};
}

absl::StatusOr<AgentPage> AgentRegistry::List(const std::string& cluster,
                                             v1::AgentStatus status,
                                             const AgentPageToken& after, int limit) {
  // A cluster filter is a cluster's name: anything else could only match nothing.
  if (!cluster.empty()) {
    if (auto st = common::ValidateIdentifier("cluster", cluster); !st.ok()) return st;
  }
  const absl::Time now = clock_->Now();
  const bool filtered = status != v1::AGENT_STATUS_UNSPECIFIED;
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<AgentPage> {
    pqxx::read_transaction tx(c);
    AgentPage page;
    AgentPageToken cursor = after;
    int scanned = 0;
    for (;;) {
      // One more than asked for says whether another page follows.
      const int chunk = filtered ? std::min(limit, kAgentsScanned - scanned) : limit;
      auto rows = tx.exec_params(
          absl::StrCat("SELECT ", AgentColumns(),
                       " FROM agents WHERE ($1 = '' OR cluster = $1) AND (cluster, name) > ($2, $3)"
                       " ORDER BY cluster, name LIMIT $4"),
          cluster, cursor.cluster, cursor.name, chunk + 1);
      int taken = 0;
      for (const auto& r : rows) {
        if (taken == chunk || static_cast<int>(page.agents.size()) == limit) {
          page.more = true;
          break;
        }
        ++taken;
        v1::Agent agent = AgentFromRow(r, now, heartbeat_ttl_, started_at_, false);
        if (!WithLatestSighting(&agent, now)) HealthFromRow(r, &agent);
        cursor = AgentPageToken{agent.cluster(), agent.name()};
        if (!filtered || agent.status() == status) page.agents.push_back(std::move(agent));
      }
      scanned += taken;
      // Full, at the end, or — filtered — out of the agents one call may look at.
      if (!page.more || static_cast<int>(page.agents.size()) == limit || !filtered ||
          scanned >= kAgentsScanned) {
        break;
      }
      page.more = false;
    }
    page.next = cursor;
    return page;
  });
}

absl::StatusOr<v1::Agent> AgentRegistry::Get(const std::string& name) {
  if (auto st = ValidateAgentName(name); !st.ok()) return st;
  const absl::Time now = clock_->Now();
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<v1::Agent> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(absl::StrCat("SELECT ", AgentColumns(), " FROM agents WHERE name = $1"),
                               name);
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("no agent named \"", name, "\""));
    v1::Agent agent = AgentFromRow(rows[0], now, heartbeat_ttl_, started_at_, false);
    if (!WithLatestSighting(&agent, now)) HealthFromRow(rows[0], &agent);
    return agent;
  });
}

bool AgentRegistry::WithLatestSighting(v1::Agent* agent, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto it = seen_.find(agent->id());
  if (it == seen_.end() || it->second.agent.incarnation != agent->incarnation()) return false;
  const Sighting& seen = it->second;
  // The row may be newer: the agent has since been heard by another replica. The same time
  // is this very sighting, written.
  if (agent->has_last_seen_at() &&
      TimeUtil::TimestampToMicroseconds(agent->last_seen_at()) > absl::ToUnixMicros(seen.at)) {
    return false;
  }
  *agent->mutable_last_seen_at() = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(seen.at));
  *agent->mutable_health() = seen.health;
  agent->set_status(LivenessOf(seen.at, now, heartbeat_ttl_, started_at_));
  return true;
}

absl::StatusOr<v1::Agent> AgentRegistry::Delete(const std::string& name) {
  if (auto st = ValidateAgentName(name); !st.ok()) return st;
  const absl::Time now = clock_->Now();
  auto deleted = pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<v1::Agent> {
    pqxx::work tx(c);
    auto rows = tx.exec_params(
        absl::StrCat("DELETE FROM agents WHERE name = $1 RETURNING ", AgentColumns()), name);
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("no agent named \"", name, "\""));
    v1::Agent agent = AgentFromRow(rows[0], now, heartbeat_ttl_, started_at_);
    EventLog::Append(tx, agent.cluster(), name, "agent.deleted", "deleted by an operator");
    tx.commit();
    return agent;
  });
  if (!deleted.ok()) return deleted;
  events_->Notify();
  {
    absl::MutexLock lock(&mu_);
    seen_.erase(deleted->id());
  }
  bus_->Publish({Change::Kind::kAgentDeleted, deleted->cluster(), deleted->id(), 0});
  spdlog::info("agent deleted name={} id={}", name, deleted->id());
  return deleted;
}

}  // namespace tether::controlplane
