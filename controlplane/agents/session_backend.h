// RegistrySessionBackend: what agent sessions read and record, over the AgentRegistry (and, as
// desired state lands, the spec store). Thread-safe.
#pragma once

#include "controlplane/agents/agent_registry.h"
#include "controlplane/agents/session.h"

namespace tether::controlplane {

class RegistrySessionBackend final : public AgentSessionBackend {
 public:
  explicit RegistrySessionBackend(AgentRegistry* agents) : agents_(agents) {}

  void RecordSeen(const AgentIdentity& agent, const v1::Health& health,
                  std::optional<int64_t> applied_revision) override {
    agents_->RecordSeen(agent, health, applied_revision);
  }
  absl::Status RecordAck(const AgentIdentity&, const v1::Ack&) override {
    return absl::OkStatus();
  }
  absl::Status RecordNack(const AgentIdentity&, const v1::Nack&) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> LatestDesiredState(
      const std::string&) override {
    return std::shared_ptr<const v1::MothershipMessage>();
  }
  absl::Duration heartbeat_ttl() const override { return agents_->heartbeat_ttl(); }

 private:
  AgentRegistry* agents_;
};

}  // namespace tether::controlplane
