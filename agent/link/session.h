// LinkSession: the agent's side of the Connect protocol as pure state — Hello and Welcome,
// heartbeats, desired-state revisions in (each handed on once, duplicates and stale ones
// dropped), commands in (handed on), the Ack or Nack of each reconcile out (kept until a stream
// carries it) and command updates out. It never
// touches gRPC: MothershipLink opens streams and moves bytes, and tests drive a session over a
// fake Outbox (Envoy's GrpcMuxImpl over GrpcStream).
// Thread-safe: the link thread opens, feeds and closes it; the heartbeat thread and the
// reconciler call in from their own threads. Outbox::Send is called with the session's lock
// held, so sends never interleave.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/health_state.h"
#include "agent/identity.h"
#include "agent/reconcile/report.h"
#include "common/clock.h"
#include "tether/v1/agent_service.pb.h"

namespace tether::agent {

// Where a session's messages go: the gRPC stream, or a fake in tests.
class Outbox {
 public:
  virtual ~Outbox() = default;
  // False when the stream is broken.
  virtual bool Send(const v1::AgentMessage& message) = 0;
};

class LinkSession {
 public:
  struct Callbacks {
    // A revision newer than any seen before arrived (on the link thread, with no lock held);
    // `command_id` names the apply command that stored it, if any.
    std::function<void(int64_t revision, const v1::ClusterSpec& spec,
                       const std::string& command_id)>
        on_desired_state;
    // A command arrived (on the link thread, with no lock held). Every delivery is handed on:
    // deduplicating them by id is the dispatcher's (agent/commands/command_dispatch.h).
    std::function<void(const v1::Command& command)> on_command;
    // A client certificate the agent asked for arrived (on the link thread, no lock held).
    std::function<void(const v1::IssuedCertificate& issued)> on_certificate;
  };

  LinkSession(Identity identity, std::string version, HealthState* health, common::Clock* clock,
              Callbacks callbacks);

  // The revision the agent last acked, as its own records say (sent in Hello).
  void SetAppliedRevision(int64_t revision);

  // A stream opened: sends Hello, then the report of the last reconcile if no stream has
  // carried it yet. False when a send failed.
  bool Open(Outbox* outbox);
  // A message from the mothership. Non-OK means the stream should end (a Welcome for another
  // identity).
  absl::Status OnMessage(const v1::MothershipMessage& message);
  // The stream ended: nothing is sent until the next Open.
  void Close();

  // Sends a heartbeat with the current health; false when no stream is open or it failed.
  bool SendHeartbeat();
  // A reconcile ended: Ack or Nack now, or on the next stream.
  void Reconciled(const ReconcileReport& report);
  // Sends a command's update; false when no stream is open or it failed (the mothership then
  // delivers the command again on the next stream, saying what it stored).
  bool SendCommandUpdate(const v1::CommandUpdate& update);
  // Asks for a new client certificate for the key of `csr`; false when no stream is open.
  bool RequestCertificate(const std::string& csr);

  bool welcomed() const;
  int64_t applied_revision() const;
  const Identity& identity() const { return identity_; }

 private:
  v1::AgentMessage ReportMessage(const ReconcileReport& report) const;
  bool SendLocked(const v1::AgentMessage& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Identity identity_;
  const std::string version_;
  HealthState* health_;
  common::Clock* clock_;
  const Callbacks callbacks_;

  mutable absl::Mutex mu_;
  Outbox* outbox_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;
  int64_t applied_revision_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t newest_received_ ABSL_GUARDED_BY(mu_) = 0;
  // The last reconcile's report, and whether a stream has carried it.
  std::optional<ReconcileReport> report_ ABSL_GUARDED_BY(mu_);
  bool report_sent_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tether::agent
