// StoreSessionBackend: what agent sessions read and record, over the AgentRegistry (sightings),
// AgentReports (acks and nacks) and the SpecStore (the desired state to send). Thread-safe.
#pragma once

#include "controlplane/agents/agent_registry.h"
#include "controlplane/agents/reports.h"
#include "controlplane/agents/session.h"
#include "controlplane/specs/spec_store.h"

namespace tether::controlplane {

class StoreSessionBackend final : public AgentSessionBackend {
 public:
  StoreSessionBackend(AgentRegistry* agents, AgentReports* reports, SpecStore* specs)
      : agents_(agents), reports_(reports), specs_(specs) {}

  void RecordSeen(const AgentIdentity& agent, const v1::Health& health,
                  std::optional<int64_t> applied_revision) override {
    agents_->RecordSeen(agent, health, applied_revision);
  }
  absl::Status RecordAck(const AgentIdentity& agent, const v1::Ack& ack) override {
    return reports_->RecordAck(agent, ack);
  }
  absl::Status RecordNack(const AgentIdentity& agent, const v1::Nack& nack) override {
    return reports_->RecordNack(agent, nack);
  }
  absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> LatestDesiredState(
      const std::string& cluster, int64_t at_least) override {
    return specs_->LatestDesiredState(cluster, at_least);
  }
  absl::Duration heartbeat_ttl() const override { return agents_->heartbeat_ttl(); }

 private:
  AgentRegistry* agents_;
  AgentReports* reports_;
  SpecStore* specs_;
};

}  // namespace tether::controlplane
