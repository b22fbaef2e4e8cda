// AgentSession: handshake, heartbeats, revisions, acks.
#include "controlplane/agents/session.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/text.h"

namespace tether::controlplane {
namespace {

// Epochs count leaders of one cluster; anything near int64's end is not one.
constexpr int64_t kMaxEpoch = int64_t{1} << 53;

// What an agent says of its health, bounded before it is kept and shown to operators: strings
// cut to a size, values no real agent sends dropped.
v1::Health Bounded(const v1::Health& in) {
  v1::Health h = in;
  h.set_reason(common::CutText(h.reason(), 1024));
  h.set_postgres_version(common::CutText(h.postgres_version(), 64));
  h.set_provisioner(common::CutText(h.provisioner(), 32));
  if (!v1::ProvisioningState_IsValid(h.state())) h.set_state(v1::PROVISIONING_STATE_UNSPECIFIED);
  if (h.attempt() < 0) h.set_attempt(0);
  const auto& latency = h.select1_latency();
  if (latency.seconds() < 0 || latency.nanos() < 0 || latency.seconds() > 3600) {
    h.clear_select1_latency();
  }
  if (!v1::AgentRole_IsValid(h.role())) h.set_role(v1::AGENT_ROLE_UNSPECIFIED);
  if (h.epoch() < 0 || h.epoch() > kMaxEpoch) h.set_epoch(0);
  return h;
}

}  // namespace

AgentSession::AgentSession(AgentIdentity identity, AgentSessionBackend* backend,
                           StreamRegistry* streams, SessionOutbox* outbox,
                           MothershipMetrics* metrics)
    : identity_(std::move(identity)),
      backend_(backend),
      streams_(streams),
      outbox_(outbox),
      metrics_(metrics) {}

AgentSession::~AgentSession() = default;

void AgentSession::Detach(const std::string& why) {
  uint64_t handle = 0;
  {
    absl::MutexLock lock(&mu_);
    outbox_ = nullptr;
    handle = handle_;
    handle_ = 0;
  }
  if (handle != 0) {
    streams_->Remove(identity_.id, handle);
    spdlog::info("agent stream closed name={} id={} reason=\"{}\"", identity_.name, identity_.id,
                 absl::CHexEscape(why));
  }
}

void AgentSession::Close(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  if (outbox_ != nullptr) outbox_->Close(status);
}

void AgentSession::SendLocked(std::shared_ptr<const v1::MothershipMessage> message) {
  if (outbox_ != nullptr) outbox_->Send(std::move(message));
}

void AgentSession::SendLatest(int64_t at_least) {
  auto latest = backend_->LatestDesiredState(identity_.cluster, at_least);
  if (!latest.ok()) {
    // The agent is told on its next connect, or with the next revision.
    spdlog::warn("cannot read the desired state cluster={} reason=\"{}\"", identity_.cluster,
                 latest.status().message());
    return;
  }
  if (*latest == nullptr) return;  // no spec yet
  const int64_t revision = (*latest)->desired_state().revision();
  absl::MutexLock lock(&mu_);
  // Several threads may get here at once (a Hello, a fan-out): each revision goes out once,
  // and never one older than what went out already.
  if (handle_ == 0 || revision == agent_revision_ || revision <= sent_revision_) return;
  sent_revision_ = revision;
  sent_at_ = absl::Now();
  metrics_->RevisionSent();
  SendLocked(*std::move(latest));
}

void AgentSession::SendCommands(int64_t only_id) {
  auto commands = backend_->DeliverableCommands(identity_, only_id);
  if (!commands.ok()) {
    // Delivered again on the agent's next connect, or the next change of the command.
    spdlog::warn("cannot read commands for agent={} reason=\"{}\"", identity_.name,
                 commands.status().message());
    return;
  }
  absl::MutexLock lock(&mu_);
  if (handle_ == 0) return;
  for (auto& command : *commands) {
    auto message = std::make_shared<v1::MothershipMessage>();
    *message->mutable_command() = std::move(command);
    SendLocked(std::move(message));
  }
}

void AgentSession::OnCommand(int64_t id) {
  {
    absl::MutexLock lock(&mu_);
    if (handle_ == 0) return;
  }
  SendCommands(id);
}

void AgentSession::OnRevision(int64_t revision) {
  {
    absl::MutexLock lock(&mu_);
    if (handle_ == 0 || revision <= sent_revision_) return;
  }
  SendLatest(revision);
}

void AgentSession::Seen(const v1::Health& health, std::optional<int64_t> applied_revision) {
  v1::Health h = Bounded(health);
  absl::MutexLock lock(&seen_mu_);
  if (h.role() == v1::AGENT_ROLE_LEADER && !not_pro_ && h.epoch() > leader_epoch_recorded_) {
    // Before anything else the agent sends: its commands' updates find them routed to it.
    if (absl::Status st = backend_->RecordLeader(identity_, h.epoch()); st.ok()) {
      leader_epoch_recorded_ = h.epoch();
    } else {
      spdlog::warn("cannot record a leader agent={} epoch={} reason=\"{}\"", identity_.name,
                   h.epoch(), st.message());
      not_pro_ = absl::IsFailedPrecondition(st);  // otherwise tried again with the next one
    }
  }
  // A lite agent leads nothing: what it says of a role is not shown as one.
  if (not_pro_) {
    h.clear_role();
    h.clear_epoch();
  }
  backend_->RecordSeen(identity_, h, applied_revision);
}

absl::Status AgentSession::OnHello(const v1::Hello& hello) {
  // Another agent's id: an agent acts only as itself. Its own id with another incarnation: a
  // confused agent (a credential of its previous life), told so.
  if (hello.agent_id() != identity_.id) {
    return absl::PermissionDeniedError(absl::StrCat(
        "Hello is for agent ", absl::CHexEscape(common::CutText(hello.agent_id(), 64)),
        ", but the credential is agent ", identity_.id, "'s: an agent acts only as itself"));
  }
  if (hello.incarnation() != identity_.incarnation) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Hello is for incarnation ", hello.incarnation(), ", but the credential is of incarnation ",
        identity_.incarnation));
  }
  if (hello.applied_revision() < 0) {
    return absl::InvalidArgumentError("Hello's applied_revision must not be negative");
  }
  Seen(hello.status(), hello.applied_revision());
  bool registered;
  {
    absl::MutexLock lock(&mu_);
    registered = handle_ != 0;
  }
  uint64_t handle = 0;
  bool detached = false;
  if (!registered) {
    // Outside our lock: the registry may close the stream this one replaces, taking its lock.
    handle = streams_->Add(identity_.id, identity_.incarnation, identity_.cluster,
                           shared_from_this());
    if (handle == 0) {
      return absl::UnauthenticatedError(absl::StrCat(
          "incarnation ", identity_.incarnation, " was superseded by a newer registration"));
    }
  }
  auto welcome = std::make_shared<v1::MothershipMessage>();
  welcome->mutable_welcome()->set_agent_id(identity_.id);
  welcome->mutable_welcome()->set_incarnation(identity_.incarnation);
  *welcome->mutable_welcome()->mutable_heartbeat_ttl() =
      google::protobuf::util::TimeUtil::MillisecondsToDuration(
          absl::ToInt64Milliseconds(backend_->heartbeat_ttl()));
  {
    // The handle and the Welcome together: until the handle is set, revisions and commands
    // from the bus pass this session by (SendLatest and SendCommands below catch up), and once
    // it is, the Welcome has gone out ahead of them.
    absl::MutexLock lock(&mu_);
    if (!registered && outbox_ != nullptr) {
      handle_ = handle;
      spdlog::info("agent connected name={} id={} incarnation={}", identity_.name, identity_.id,
                   identity_.incarnation);
    }
    detached = outbox_ == nullptr;
    agent_revision_ = hello.applied_revision();
    // A repeated Hello asks again: the agent may have lost what it was sent.
    sent_revision_ = 0;
    SendLocked(std::move(welcome));
  }
  if (detached) {
    // The stream ended while this Hello was registering it: Detach found no handle to remove.
    if (handle != 0) streams_->Remove(identity_.id, handle);
    return absl::OkStatus();
  }
  SendLatest(0);
  // After the desired state: a command names the revision it was queued at.
  SendCommands(0);
  return absl::OkStatus();
}

absl::Status AgentSession::OnMessage(const v1::AgentMessage& message) {
  // Called one message at a time: the checks below and their effects do not interleave with
  // another OnMessage. The lock guards only against OnRevision, Close and Detach, and is never
  // held across a call to the backend or the registry.
  if (!message.has_hello()) {
    absl::MutexLock lock(&mu_);
    if (handle_ == 0) {
      return absl::FailedPreconditionError("the first message on a stream must be Hello");
    }
  }
  switch (message.kind_case()) {
    case v1::AgentMessage::kHello:
      return OnHello(message.hello());
    case v1::AgentMessage::kHeartbeat:
      Seen(message.heartbeat().health(), std::nullopt);
      return absl::OkStatus();
    case v1::AgentMessage::kAck: {
      absl::Status st = backend_->RecordAck(identity_, message.ack());
      if (st.ok()) {
        absl::MutexLock lock(&mu_);
        agent_revision_ = std::max(agent_revision_, message.ack().revision());
        std::optional<absl::Duration> since_sent;
        if (message.ack().revision() == sent_revision_ && sent_at_.has_value()) {
          since_sent = absl::Now() - *sent_at_;
          sent_at_.reset();
        }
        metrics_->RevisionAcked(since_sent);
      }
      if (absl::IsInvalidArgument(st)) return st;
      if (!st.ok()) {
        spdlog::warn("cannot record an ack agent={} revision={} reason=\"{}\"", identity_.name,
                     message.ack().revision(), st.message());
      }
      return absl::OkStatus();
    }
    case v1::AgentMessage::kNack: {
      absl::Status st = backend_->RecordNack(identity_, message.nack());
      if (st.ok()) metrics_->RevisionNacked();
      if (absl::IsInvalidArgument(st)) return st;
      if (!st.ok()) {
        spdlog::warn("cannot record a nack agent={} revision={} reason=\"{}\"", identity_.name,
                     message.nack().revision(), st.message());
      }
      return absl::OkStatus();
    }
    case v1::AgentMessage::kCommandUpdate: {
      absl::Status st = backend_->RecordCommandUpdate(identity_, message.command_update());
      if (absl::IsInvalidArgument(st) || absl::IsPermissionDenied(st)) return st;
      if (!st.ok()) {
        spdlog::warn("cannot record a command update agent={} command=\"{}\" reason=\"{}\"",
                     identity_.name, absl::CHexEscape(common::CutText(message.command_update().command_id(), 40)),
                     st.message());
      }
      return absl::OkStatus();
    }
    case v1::AgentMessage::kCertificateRequest: {
      auto issued = backend_->IssueCertificate(identity_, message.certificate_request().csr());
      if (!issued.ok()) return issued.status();  // the agent asked for what cannot be
      auto out = std::make_shared<v1::MothershipMessage>();
      *out->mutable_certificate() = *std::move(issued);
      absl::MutexLock lock(&mu_);
      SendLocked(std::move(out));
      return absl::OkStatus();
    }
    default:
      return absl::OkStatus();
  }
}

}  // namespace tether::controlplane
