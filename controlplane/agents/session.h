// AgentSession: the mothership's side of one agent's Connect stream as pure protocol state —
// the Hello/Welcome handshake, heartbeats, desired-state revisions out and Ack/Nack in, commands
// out (on connect and when queued or cancelled) and their updates in — mapping
// messages in to messages out through a SessionOutbox. It never touches gRPC: the reactor in
// api/agent_service.cc only moves bytes, and tests drive a session over a fake outbox
// (Envoy's GrpcMuxImpl over GrpcStream). It reads and records through AgentSessionBackend.
//
// Threads: OnMessage() is called for one message at a time (the reactor runs it on the
// blocking pool, since recording an Ack writes to the database), except that a heartbeat after
// the Hello may be handled beside another message (the reactor's heartbeat lane, so that an
// Ack waiting for the database does not make the agent look silent); OnRevision() and Close()
// arrive from other threads (the change bus, the stream registry). A mutex guards the
// session's own state and the outbox, and is never held across a call to the backend or the
// stream registry (those may publish on the bus, whose handlers call back in here).
// Detach() cuts the session from its outbox when the stream is gone.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "controlplane/agents/agent_registry.h"
#include "controlplane/agents/stream_registry.h"
#include "controlplane/metrics.h"
#include "tether/v1/agent_service.pb.h"

namespace tether::controlplane {

// Where a session's messages go: the gRPC reactor, or a fake in tests.
class SessionOutbox {
 public:
  virtual ~SessionOutbox() = default;
  // Queues `message` for the agent; never blocks.
  virtual void Send(std::shared_ptr<const v1::MothershipMessage> message) = 0;
  // Ends the stream with `status`; idempotent.
  virtual void Close(const absl::Status& status) = 0;
};

// What a session reads and records; AgentRegistry and SpecStore behind it in the mothership,
// a fake in tests.
class AgentSessionBackend {
 public:
  virtual ~AgentSessionBackend() = default;
  // The agent was heard from (buffered; written in batches).
  virtual void RecordSeen(const AgentIdentity& agent, const v1::Health& health,
                          std::optional<int64_t> applied_revision) = 0;
  // The agent reconciled a revision, or could not. kInvalidArgument for a report that cannot
  // be (a revision the cluster never had); the database's error otherwise.
  virtual absl::Status RecordAck(const AgentIdentity& agent, const v1::Ack& ack) = 0;
  virtual absl::Status RecordNack(const AgentIdentity& agent, const v1::Nack& nack) = 0;
  // The cluster's latest revision as a ready-to-send DesiredState message; null when the
  // cluster has no spec yet. `at_least` > 0: the caller knows that revision exists, and a
  // cached message of it (or newer) will do.
  virtual absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> LatestDesiredState(
      const std::string& cluster, int64_t at_least) = 0;
  virtual absl::Duration heartbeat_ttl() const = 0;
  // The unfinished commands the agent is a target of (only `only_id` when > 0), ready to send;
  // the store fails first what an older incarnation was running.
  virtual absl::StatusOr<std::vector<v1::Command>> DeliverableCommands(const AgentIdentity& agent,
                                                                       int64_t only_id) = 0;
  // A command's state and progress lines from the agent. kInvalidArgument for an update that
  // cannot be; kNotFound for a command the agent is not a target of.
  virtual absl::Status RecordCommandUpdate(const AgentIdentity& agent,
                                           const v1::CommandUpdate& update) = 0;
  // A pro agent says it leads its cluster in `epoch` (its Hello or a heartbeat). The store
  // records a newer epoch, and routes the cluster's unfinished commands to it; an older or the
  // same one changes nothing. kFailedPrecondition for an agent that is not in pro mode.
  virtual absl::Status RecordLeader(const AgentIdentity& agent, int64_t epoch) = 0;
  // A new client certificate for the agent, for the key of `csr` (renewal before the current
  // one expires). kInvalidArgument for a CSR that cannot be signed; kFailedPrecondition when
  // the mothership issues none (it serves without TLS).
  virtual absl::StatusOr<v1::IssuedCertificate> IssueCertificate(const AgentIdentity& agent,
                                                                 const std::string& csr) = 0;
};

class AgentSession final : public AgentStream,
                           public std::enable_shared_from_this<AgentSession> {
 public:
  AgentSession(AgentIdentity identity, AgentSessionBackend* backend, StreamRegistry* streams,
               SessionOutbox* outbox, MothershipMetrics* metrics = MothershipMetrics::Unexposed());
  ~AgentSession() override;

  // One message from the agent. A non-OK status is why the stream must end (a first message
  // that is not Hello, a Hello for another identity, a superseded incarnation).
  absl::Status OnMessage(const v1::AgentMessage& message);
  // The stream is gone: forget the outbox and leave the registry. `why` goes to the log.
  void Detach(const std::string& why = "");

  // AgentStream.
  void Close(const absl::Status& status) override;
  void OnRevision(int64_t revision) override;
  void OnCommand(int64_t id) override;

  const AgentIdentity& identity() const { return identity_; }

 private:
  absl::Status OnHello(const v1::Hello& hello);
  // Sends the cluster's latest revision (`at_least` if known) unless the agent has it or was
  // sent it already. Takes the lock only to decide and send, never across the backend.
  void SendLatest(int64_t at_least) ABSL_LOCKS_EXCLUDED(mu_);
  // Sends the agent's unfinished commands (only `only_id` when > 0), each again: the agent
  // answers a command it knows from its own record.
  void SendCommands(int64_t only_id) ABSL_LOCKS_EXCLUDED(mu_);
  void SendLocked(std::shared_ptr<const v1::MothershipMessage> message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The agent's health from a Hello or a heartbeat: kept, and a leader's epoch recorded once.
  void Seen(const v1::Health& health, std::optional<int64_t> applied_revision);

  const AgentIdentity identity_;
  AgentSessionBackend* backend_;
  // Held by Seen() alone, across recording a leader: a heartbeat may be handled beside
  // another message. Never taken with mu_ held.
  absl::Mutex seen_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // The newest epoch this stream's agent was recorded as leading in.
  int64_t leader_epoch_recorded_ ABSL_GUARDED_BY(seen_mu_) = 0;
  bool not_pro_ ABSL_GUARDED_BY(seen_mu_) = false;  // it claimed to lead, but is not pro
  StreamRegistry* streams_;
  absl::Mutex mu_;
  SessionOutbox* outbox_ ABSL_GUARDED_BY(mu_);
  uint64_t handle_ ABSL_GUARDED_BY(mu_) = 0;  // set once Hello registered the stream
  int64_t agent_revision_ ABSL_GUARDED_BY(mu_) = 0;  // the revision the agent says it applied
  int64_t sent_revision_ ABSL_GUARDED_BY(mu_) = 0;   // the newest revision sent on this stream
  // When sent_revision_ went out, until its ack is counted (for the fan-out histogram).
  std::optional<absl::Time> sent_at_ ABSL_GUARDED_BY(mu_);
  MothershipMetrics* metrics_;
};

}  // namespace tether::controlplane
