// AgentRegistry: registration, authentication and liveness of agents, in the agents table.
// Heartbeats are buffered in memory and written in batches by FlushHeartbeats() (the
// mothership calls it from one background thread), so a stream's reactor never waits on the
// database for a heartbeat. Thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "controlplane/events/event_log.h"
#include "controlplane/metrics.h"
#include "controlplane/fanout/change_bus.h"
#include "controlplane/agents/stream_registry.h"
#include "tether/v1/types.pb.h"

namespace tether::controlplane {

struct RegistrationRequest {
  std::string bootstrap_token;
  std::string name;
  std::string cluster;  // empty: the token's
  v1::AgentMode mode = v1::AGENT_MODE_LITE;
  std::string version;
  std::string registration_id;  // the agent's id for this registration; empty: none
};

struct Registration {
  std::string agent_id;
  std::string credential;  // the only time it exists in clear
  int64_t incarnation = 0;
  std::string cluster;
};

// OK for a name an agent may have (a hostname label: lowercase letters, digits, '-' and '.');
// kInvalidArgument otherwise.
absl::Status ValidateAgentName(const std::string& name);

// The longest version string an agent may register with.
inline constexpr size_t kMaxAgentVersionBytes = 64;

// Who is on the other end of an authenticated stream.
struct AgentIdentity {
  std::string id;
  std::string name;
  std::string cluster;
  int64_t incarnation = 0;
};
// Where a page of ListAgents ends: the last agent's cluster and name, sent to clients as an
// opaque token (base64url) that they hand back for the next page.
struct AgentPageToken {
  std::string cluster, name;  // both empty: from the start

  std::string Encode() const;
  // kInvalidArgument for a token this mothership did not give.
  static absl::StatusOr<AgentPageToken> Decode(const std::string& token);
};

inline constexpr int kDefaultAgentsPage = 200;
// Every field of an agent is bounded (reason 1 KiB, nack error 4 KiB, …; under 6 KiB in all):
// a page of 500 stays inside gRPC's default 4 MiB message.
inline constexpr int kMaxAgentsPage = 500;

// The most agents one filtered List looks at.
inline constexpr int kAgentsScanned = 5000;

struct AgentPage {
  std::vector<v1::Agent> agents;
  bool more = false;     // agents follow this page
  AgentPageToken next;   // the last agent of this page
};


class AgentRegistry {
 public:
  // Publishes re-registrations and deletions on `bus`; asks `streams` whether a name's agent
  // is connected.
  AgentRegistry(common::PgPool* pool, EventLog* events, ChangeBus* bus, StreamRegistry* streams,
                common::Clock* clock, absl::Duration heartbeat_ttl,
                MothershipMetrics* metrics = MothershipMetrics::Unexposed());

  // Registers a new agent or re-registers one under the same name: keeps its id, bumps its
  // incarnation, rotates its credential and closes its old stream. A retry of the registration
  // that made the current incarnation (same registration_id, same token, the agent not yet
  // connected) only re-issues the credential; it is checked like a first registration except
  // that it does not count a second use of the token. Every outcome that writes is an event;
  // a refusal writes nothing. kInvalidArgument for a bad name or cluster; kUnauthenticated /
  // kPermissionDenied for a bootstrap token that is unknown, or expired, revoked, used up, for
  // another cluster or for other names; kFailedPrecondition when the name belongs to another
  // cluster or its agent is connected right now (no takeover by name).
  absl::StatusOr<Registration> Register(const RegistrationRequest& request);

  // kUnauthenticated unless `credential` is the current credential of agent `agent_id`.
  absl::StatusOr<AgentIdentity> Authenticate(const std::string& agent_id,
                                             const std::string& credential);

  // Records that the agent was heard from (Hello or Heartbeat); written by the next flush.
  void RecordSeen(const AgentIdentity& agent, const v1::Health& health,
                  std::optional<int64_t> applied_revision);
  // Writes the sightings not written yet, all in one statement; notes agents that came back
  // from lost in the event log. What cannot be written is tried again by the next flush.
  absl::Status FlushHeartbeats();
  // Marks agents silent for longer than the TTL as lost, once, with an agent.lost event. Run
  // only right after a flush that succeeded: with sightings unwritten (the database was away),
  // a stale last_seen_at says nothing of the agent. An agent heard here within the TTL whose
  // sighting is still unwritten (a flush slowed by busy rows) is not lost either. Nothing, for
  // one TTL after the start: the agents had no mothership to heartbeat to.
  absl::Status SweepLost();

  // One page of at most `limit` agents after `after`, by cluster and name: of `cluster` unless
  // empty, in `status` unless unspecified. A status is judged here, not stored, so a filtered
  // page is read in chunks and stops after kAgentsScanned agents: it may come back short, even
  // empty, with `more` set.
  absl::StatusOr<AgentPage> List(const std::string& cluster, v1::AgentStatus status,
                                 const AgentPageToken& after, int limit);
  // kNotFound for an unknown name.
  absl::StatusOr<v1::Agent> Get(const std::string& name);
  absl::StatusOr<v1::Agent> Delete(const std::string& name);

  absl::Duration heartbeat_ttl() const { return heartbeat_ttl_; }

 private:
  // An agent as listed, with what this replica last heard from it unless the row is newer:
  // shown live while the database was away, or while a flush is under way, not lost. False
  // when the row's own health stands (the caller reads it then).
  bool WithLatestSighting(v1::Agent* agent, absl::Time now);

  // The latest this replica heard from an agent. Kept after it is written, so readers never
  // miss one that is between the buffer and the table.
  struct Sighting {
    AgentIdentity agent;
    absl::Time at;
    v1::Health health;
    std::optional<int64_t> applied_revision;
    uint64_t version = 0;  // bumped by each RecordSeen
    bool written = false;
  };

  common::PgPool* pool_;
  EventLog* events_;
  ChangeBus* bus_;
  StreamRegistry* streams_;
  common::Clock* clock_;
  const absl::Duration heartbeat_ttl_;
  MothershipMetrics* metrics_;
  // When this registry (its mothership) started: agents not heard from since are UNKNOWN, not
  // LOST, for one TTL (LivenessOf), and the sweep marks no one lost before then.
  const absl::Time started_at_;
  absl::Mutex mu_;
  std::map<std::string, Sighting> seen_ ABSL_GUARDED_BY(mu_);  // by agent id
  // The ids in seen_ not written yet, each once, so a flush visits only those (and not every
  // agent heard, four times a second).
  std::vector<std::string> unwritten_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::controlplane
