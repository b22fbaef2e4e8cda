// FakeSessionBackend: what a mothership AgentSession reads and records, in memory, for unit
// tests of the session protocol. The real one (StoreSessionBackend over the registry and the
// spec and command stores) is exercised by the integration and end-to-end tests. Thread-safe.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/agents/session.h"

namespace tether::testing {

class FakeSessionBackend final : public controlplane::AgentSessionBackend {
 public:
  void RecordSeen(const controlplane::AgentIdentity&, const v1::Health& health,
                  std::optional<int64_t> applied_revision) override {
    absl::MutexLock lock(&mu_);
    seen.push_back(health);
    if (applied_revision) applied.push_back(*applied_revision);
  }
  absl::Status RecordAck(const controlplane::AgentIdentity&, const v1::Ack& ack) override {
    absl::MutexLock lock(&mu_);
    if (ack.revision() > latest_revision) {
      return absl::InvalidArgumentError("ack of a revision the cluster never had");
    }
    acks.push_back(ack);
    return absl::OkStatus();
  }
  absl::Status RecordNack(const controlplane::AgentIdentity&, const v1::Nack& nack) override {
    absl::MutexLock lock(&mu_);
    nacks.push_back(nack);
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> LatestDesiredState(
      const std::string& cluster, int64_t) override {
    absl::MutexLock lock(&mu_);
    if (latest_revision == 0) return std::shared_ptr<const v1::MothershipMessage>();
    auto msg = std::make_shared<v1::MothershipMessage>();
    msg->mutable_desired_state()->set_revision(latest_revision);
    msg->mutable_desired_state()->mutable_spec()->set_cluster(cluster);
    return std::shared_ptr<const v1::MothershipMessage>(std::move(msg));
  }
  absl::Duration heartbeat_ttl() const override {
    if (while_reading_ttl) while_reading_ttl();
    return absl::Seconds(15);
  }
  absl::StatusOr<std::vector<v1::Command>> DeliverableCommands(const controlplane::AgentIdentity&,
                                                               int64_t only_id) override {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Command> out;
    for (const auto& c : commands) {
      if (only_id == 0 || c.id() == std::to_string(only_id)) out.push_back(c);
    }
    return out;
  }
  absl::Status RecordCommandUpdate(const controlplane::AgentIdentity&,
                                   const v1::CommandUpdate& update) override {
    absl::MutexLock lock(&mu_);
    if (update.state() == v1::COMMAND_STATE_UNSPECIFIED) {
      return absl::InvalidArgumentError("CommandUpdate.state must be a command state");
    }
    updates.push_back(update);
    return absl::OkStatus();
  }

  absl::Status RecordLeader(const controlplane::AgentIdentity&, int64_t epoch) override {
    absl::MutexLock lock(&mu_);
    leader_epochs.push_back(epoch);
    return leader_answer;
  }
  // Signs nothing: answers a certificate that is the CSR's text, so tests see which they got.
  absl::StatusOr<v1::IssuedCertificate> IssueCertificate(const controlplane::AgentIdentity&,
                                                         const std::string& csr) override {
    absl::MutexLock lock(&mu_);
    if (!certificate_answer.ok()) return certificate_answer;
    v1::IssuedCertificate issued;
    issued.set_certificate(absl::StrCat("certificate for ", csr));
    return issued;
  }

  void SetLatest(int64_t revision) {
    absl::MutexLock lock(&mu_);
    latest_revision = revision;
  }

  absl::Mutex mu_;
  int64_t latest_revision = 0;
  std::vector<v1::Health> seen;
  std::vector<int64_t> applied;
  std::vector<v1::Ack> acks;
  std::vector<v1::Nack> nacks;
  std::vector<v1::Command> commands;  // unfinished, for this agent
  std::vector<v1::CommandUpdate> updates;
  std::vector<int64_t> leader_epochs;  // RecordLeader calls
  absl::Status leader_answer;          // what RecordLeader returns
  absl::Status certificate_answer;     // what IssueCertificate fails with, when not OK
  // Runs inside heartbeat_ttl(), which a Hello reads while it registers its stream: what
  // happens "at the same time" as that, deterministically.
  std::function<void()> while_reading_ttl;
};

// A SessionOutbox that records what the session sends and whether it closed the stream.
class FakeSessionOutbox final : public controlplane::SessionOutbox {
 public:
  void Send(std::shared_ptr<const v1::MothershipMessage> message) override {
    absl::MutexLock lock(&mu_);
    sent.push_back(*message);
  }
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    closed.push_back(status);
  }
  // The revisions of the DesiredState messages sent so far, in order.
  std::vector<int64_t> Revisions() {
    absl::MutexLock lock(&mu_);
    std::vector<int64_t> out;
    for (const auto& m : sent) {
      if (m.has_desired_state()) out.push_back(m.desired_state().revision());
    }
    return out;
  }

  absl::Mutex mu_;
  std::vector<v1::MothershipMessage> sent;
  std::vector<absl::Status> closed;
};

}  // namespace tether::testing
