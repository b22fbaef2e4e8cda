// AgentReports: what agents report about the desired state — the Ack or Nack of each revision
// they reconciled, with their tenants — recorded on their rows and in agent_tenants, and
// listed for `tetherctl get tenants`. A report is checked before anything is written (a
// revision the cluster has, tenant names that are names, bounded sizes): an agent is on the
// other side of a trust boundary. Events record what changed: agent.converged when an agent
// reaches a revision (with how long it took, and after a recreation how long since it
// registered again), agent.nack when it reports a new failure. Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "controlplane/agents/agent_registry.h"
#include "controlplane/events/event_log.h"
#include "tether/v1/agent_service.pb.h"
#include "tether/v1/spec.pb.h"

namespace tether::controlplane {

// Longer errors are cut, and say so. A tenant's error is shorter: a report may list 10,000
// tenants, and the nack's own error carries the detail.
inline constexpr size_t kMaxReportedError = 4096;
inline constexpr size_t kMaxTenantError = 512;

class AgentReports {
 public:
  AgentReports(common::PgPool* pool, EventLog* events, common::Clock* clock);

  // kInvalidArgument for a report that cannot be true (a revision the cluster never had, a
  // tenant that is not a valid name, too many tenants); kNotFound when the agent's incarnation
  // is no longer current. Writes nothing then.
  absl::Status RecordAck(const AgentIdentity& agent, const v1::Ack& ack);
  absl::Status RecordNack(const AgentIdentity& agent, const v1::Nack& nack);

  // Every tenant of `cluster` (all clusters when empty), optionally only `tenant`, on every
  // agent, by cluster, agent and tenant. kInvalidArgument for a cluster or tenant that is not
  // a valid name, kNotFound for a cluster that does not exist.
  absl::StatusOr<std::vector<v1::Tenant>> ListTenants(const std::string& cluster,
                                                      const std::string& tenant);

 private:
  absl::Status Record(const AgentIdentity& agent, int64_t revision, bool ok,
                      const std::string& error,
                      const google::protobuf::RepeatedPtrField<v1::TenantStatus>& tenants,
                      const google::protobuf::Duration& took);

  common::PgPool* pool_;
  EventLog* events_;
  common::Clock* clock_;
};

}  // namespace tether::controlplane
