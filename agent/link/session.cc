// LinkSession.
#include "agent/link/session.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "agent/metrics.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace tether::agent {

using google::protobuf::util::TimeUtil;

LinkSession::LinkSession(Identity identity, std::string version, HealthState* health,
                         common::Clock* clock, Callbacks callbacks)
    : identity_(std::move(identity)),
      version_(std::move(version)),
      health_(health),
      clock_(clock),
      callbacks_(std::move(callbacks)) {}

void LinkSession::SetAppliedRevision(int64_t revision) {
  absl::MutexLock lock(&mu_);
  applied_revision_ = revision;
}

bool LinkSession::welcomed() const {
  absl::MutexLock lock(&mu_);
  return welcomed_;
}

int64_t LinkSession::applied_revision() const {
  absl::MutexLock lock(&mu_);
  return applied_revision_;
}

bool LinkSession::SendLocked(const v1::AgentMessage& message) {
  return outbox_ != nullptr && outbox_->Send(message);
}

bool LinkSession::Open(Outbox* outbox) {
  absl::MutexLock lock(&mu_);
  outbox_ = outbox;
  welcomed_ = false;
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(identity_.agent_id);
  hello.mutable_hello()->set_incarnation(identity_.incarnation);
  hello.mutable_hello()->set_version(version_);
  hello.mutable_hello()->set_applied_revision(applied_revision_);
  *hello.mutable_hello()->mutable_status() = health_->Get();
  if (!SendLocked(hello)) return false;
  if (report_.has_value() && !report_sent_) {
    if (!SendLocked(ReportMessage(*report_))) return false;
    report_sent_ = true;
  }
  return true;
}

void LinkSession::Close() {
  absl::MutexLock lock(&mu_);
  outbox_ = nullptr;
  welcomed_ = false;
}

absl::Status LinkSession::OnMessage(const v1::MothershipMessage& message) {
  switch (message.kind_case()) {
    case v1::MothershipMessage::kWelcome: {
      if (message.welcome().agent_id() != identity_.agent_id ||
          message.welcome().incarnation() != identity_.incarnation) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the mothership welcomed agent ", message.welcome().agent_id(), " incarnation ",
            message.welcome().incarnation(), ", not us"));
      }
      absl::MutexLock lock(&mu_);
      welcomed_ = true;
      return absl::OkStatus();
    }
    case v1::MothershipMessage::kDesiredState: {
      const int64_t revision = message.desired_state().revision();
      {
        absl::MutexLock lock(&mu_);
        // Sent again after a reconnect, or overtaken by a newer one: already handed on.
        if (revision <= newest_received_) return absl::OkStatus();
        newest_received_ = revision;
      }
      spdlog::info("desired state received revision={} tenants={}", revision,
                   message.desired_state().spec().tenants_size());
      if (callbacks_.on_desired_state) {
        callbacks_.on_desired_state(revision, message.desired_state().spec(),
                                    message.desired_state().command_id());
      }
      return absl::OkStatus();
    }
    case v1::MothershipMessage::kCommand:
      if (callbacks_.on_command) callbacks_.on_command(message.command());
      return absl::OkStatus();
    case v1::MothershipMessage::kCertificate:
      if (callbacks_.on_certificate) callbacks_.on_certificate(message.certificate());
      return absl::OkStatus();
    default:
      return absl::OkStatus();
  }
}

bool LinkSession::SendCommandUpdate(const v1::CommandUpdate& update) {
  v1::AgentMessage msg;
  *msg.mutable_command_update() = update;
  absl::MutexLock lock(&mu_);
  return SendLocked(msg);
}

bool LinkSession::RequestCertificate(const std::string& csr) {
  v1::AgentMessage msg;
  msg.mutable_certificate_request()->set_csr(csr);
  absl::MutexLock lock(&mu_);
  return SendLocked(msg);
}

bool LinkSession::SendHeartbeat() {
  v1::AgentMessage msg;
  *msg.mutable_heartbeat()->mutable_health() = health_->Get();
  *msg.mutable_heartbeat()->mutable_sent_at() =
      TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(clock_->Now()));
  AgentMetrics::Process().HeartbeatSent();
  absl::MutexLock lock(&mu_);
  return SendLocked(msg);
}

v1::AgentMessage LinkSession::ReportMessage(const ReconcileReport& report) const {
  v1::AgentMessage msg;
  const auto took = TimeUtil::MicrosecondsToDuration(absl::ToInt64Microseconds(report.took));
  if (report.status.ok()) {
    v1::Ack* ack = msg.mutable_ack();
    ack->set_revision(report.revision);
    for (const auto& t : report.tenants) *ack->add_tenants() = t;
    *ack->mutable_took() = took;
  } else {
    v1::Nack* nack = msg.mutable_nack();
    nack->set_revision(report.revision);
    nack->set_error(std::string(report.status.message()));
    for (const auto& t : report.tenants) *nack->add_tenants() = t;
    *nack->mutable_took() = took;
  }
  return msg;
}

void LinkSession::Reconciled(const ReconcileReport& report) {
  absl::MutexLock lock(&mu_);
  if (report.status.ok()) applied_revision_ = report.revision;
  report_ = report;
  report_sent_ = SendLocked(ReportMessage(report));
}

}  // namespace tether::agent
