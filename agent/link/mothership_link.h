// MothershipLink: the agent's connection to the mothership, in three layers as in an xDS
// client: (1) here, registration and a Connect stream that reconnects with capped exponential
// backoff and jitter, moving bytes only; (2) the protocol state in LinkSession (link/session.h)
// — Hello/Welcome, heartbeats, revisions, acks; (3) dispatch of what arrives to the callbacks
// of LinkOptions.
// Run() owns the stream on the calling thread plus one heartbeat thread per stream; Cancel(),
// Reconciled(), SendCommandUpdate(), connected() and identity() are safe from any thread.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/health_state.h"
#include "agent/identity.h"
#include "agent/link/client_certificate.h"
#include "agent/link/session.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/random.h"
#include "tether/v1/agent_service.grpc.pb.h"

namespace tether::agent {

struct LinkOptions {
  std::string name;
  std::string cluster;
  std::string bootstrap_token;
  std::string data_dir;
  std::string version;
  v1::AgentMode mode = v1::AGENT_MODE_LITE;
  absl::Duration heartbeat_interval = absl::Seconds(5);
  common::BackoffPolicy backoff;
  // Called on the Run() thread whenever the agent's identity is established (loaded from disk
  // or freshly registered), before the stream opens.
  std::function<void(const Identity&)> on_identity;
  // A new desired-state revision arrived (on the Run() thread).
  std::function<void(int64_t revision, const v1::ClusterSpec& spec,
                     const std::string& command_id)>
      on_desired_state;
  // A command arrived (on the Run() thread); every delivery, duplicates included.
  std::function<void(const v1::Command& command)> on_command;
  // A stream ended (on the Run() thread, with no lock held): what it carried last may be lost.
  std::function<void()> on_stream_closed;
  // TLS with agent certificates (the mothership serves TLS): the agent's key and certificate,
  // and how to open a channel that presents them. Registration sends a CSR and keeps the
  // certificate it is given; streams go over a channel made with the newest one; a renewal is
  // asked for over the stream at two thirds of its life. Null: plain text, no certificates.
  std::shared_ptr<ClientCertificate> certificate;
  std::function<std::shared_ptr<grpc::Channel>(const std::string& certificate_pem,
                                               const std::string& key_pem)>
      channel_with_certificate;
};

class MothershipLink {
 public:
  MothershipLink(LinkOptions options, std::shared_ptr<grpc::Channel> channel,
                 HealthState* health, common::Clock* clock, common::Random* random);

  // Registers when there is no stored identity, then keeps a Connect stream open until `stop`
  // is notified (call Cancel() too, to interrupt a stream that is waiting on the network).
  // Returns OK when stopped; kUnauthenticated / kPermissionDenied / kInvalidArgument when the
  // mothership refuses the registration; kFailedPrecondition with neither an identity nor a
  // bootstrap token.
  absl::Status Run(const absl::Notification* stop);
  void Cancel();

  // The reconciler finished a revision: acked or nacked now, or on the next stream.
  void Reconciled(const ReconcileReport& report);
  // Sends a command's update on the current stream; false when there is none.
  bool SendCommandUpdate(const v1::CommandUpdate& update);
  // Sends the agent's health (and role) now, not at the next heartbeat; false without a stream.
  bool SendHealthNow();
  // The revision the agent's own records say it applied last (Hello carries it).
  void SetAppliedRevision(int64_t revision);

  bool connected() const;
  // The wait the mothership asked for when it ended the last stream (a replica admitting new
  // streams at a bounded rate); the link waits that long on top of its own backoff.
  absl::Duration last_retry_hint() const;
  std::optional<Identity> identity() const;

 private:
  absl::StatusOr<Identity> Register(const absl::Notification* stop);
  // One stream, from Hello until it ends; returns how it ended.
  grpc::Status RunStream(LinkSession* session, common::Backoff* backoff);
  // With agent certificates: whether the stored one can open a stream (one that expired, or
  // none, means registering again), and the stub switched to a channel presenting it.
  bool UseCurrentCertificate();
  // Asks for a new certificate over the stream once the current one is two thirds through its
  // life (once per certificate: `asked_for` is the generation last asked about); from the
  // heartbeat thread.
  void MaybeRenewCertificate(LinkSession* session, int64_t* asked_for);

  const LinkOptions options_;
  std::unique_ptr<v1::AgentService::Stub> stub_;  // the Run() thread's own
  int64_t stub_certificate_ = 0;  // the certificate generation stub_ presents (0: none)
  HealthState* health_;
  common::Clock* clock_;
  common::Random* random_;

  mutable absl::Mutex mu_;
  grpc::ClientContext* stream_context_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // When to come back, as the mothership said when it ended the last stream (0: it did not).
  absl::Duration retry_hint_ ABSL_GUARDED_BY(mu_) = absl::ZeroDuration();
  static constexpr absl::Duration kMaxRetryHint = absl::Minutes(10);
  bool connected_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<Identity> identity_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<LinkSession> session_ ABSL_GUARDED_BY(mu_);  // of the current identity
  int64_t applied_revision_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<ReconcileReport> unsent_report_ ABSL_GUARDED_BY(mu_);  // before any session
};

}  // namespace tether::agent
