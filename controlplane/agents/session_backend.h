// StoreSessionBackend: what agent sessions read and record, over the AgentRegistry (sightings),
// AgentReports (acks and nacks), the SpecStore (the desired state to send) and the CommandStore
// (commands to deliver, their updates). Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include "controlplane/agents/agent_certificates.h"
#include "controlplane/agents/agent_registry.h"
#include "controlplane/agents/reports.h"
#include "controlplane/agents/session.h"
#include "controlplane/commands/command_store.h"
#include "controlplane/specs/spec_store.h"

namespace tether::controlplane {

class StoreSessionBackend final : public AgentSessionBackend {
 public:
  // `certificates` null: the mothership serves without TLS and issues none.
  StoreSessionBackend(AgentRegistry* agents, AgentReports* reports, SpecStore* specs,
                      CommandStore* commands, const AgentCertificates* certificates)
      : agents_(agents),
        reports_(reports),
        specs_(specs),
        commands_(commands),
        certificates_(certificates) {}

  void RecordSeen(const AgentIdentity& agent, const v1::Health& health,
                  std::optional<int64_t> applied_revision) override {
    agents_->RecordSeen(agent, health, applied_revision);
  }
  // An Ack or Nack also ends the agent's part in the apply command of that revision.
  absl::Status RecordAck(const AgentIdentity& agent, const v1::Ack& ack) override {
    if (auto st = reports_->RecordAck(agent, ack); !st.ok()) return st;
    return commands_->RecordReport(agent, ack.revision(), true, "");
  }
  absl::Status RecordNack(const AgentIdentity& agent, const v1::Nack& nack) override {
    if (auto st = reports_->RecordNack(agent, nack); !st.ok()) return st;
    return commands_->RecordReport(agent, nack.revision(), false, nack.error());
  }
  absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> LatestDesiredState(
      const std::string& cluster, int64_t at_least) override {
    return specs_->LatestDesiredState(cluster, at_least);
  }
  absl::Duration heartbeat_ttl() const override { return agents_->heartbeat_ttl(); }
  absl::StatusOr<std::vector<v1::Command>> DeliverableCommands(const AgentIdentity& agent,
                                                               int64_t only_id) override {
    return commands_->Deliverable(agent, only_id);
  }
  absl::Status RecordCommandUpdate(const AgentIdentity& agent,
                                   const v1::CommandUpdate& update) override {
    return commands_->RecordUpdate(agent, update);
  }

  absl::Status RecordLeader(const AgentIdentity& agent, int64_t epoch) override {
    return commands_->LeaderChanged(agent, epoch).status();
  }

  absl::StatusOr<v1::IssuedCertificate> IssueCertificate(const AgentIdentity& agent,
                                                         const std::string& csr) override {
    if (certificates_ == nullptr) {
      return absl::FailedPreconditionError(
          "this mothership serves without TLS and issues no certificates");
    }
    if (auto st = AgentCertificates::CheckRequest(csr); !st.ok()) return st;
    auto certificate = certificates_->Issue(csr, agent);
    if (!certificate.ok()) return certificate.status();
    spdlog::info("certificate renewed agent={} id={} valid_for={}", agent.name, agent.id,
                 absl::FormatDuration(certificates_->validity()));
    v1::IssuedCertificate issued;
    issued.set_certificate(*std::move(certificate));
    issued.set_ca_certificate(certificates_->ca_pem());
    return issued;
  }

 private:
  AgentRegistry* agents_;
  AgentReports* reports_;
  SpecStore* specs_;
  CommandStore* commands_;
  const AgentCertificates* certificates_;
};

}  // namespace tether::controlplane
