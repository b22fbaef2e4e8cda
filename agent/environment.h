// AgentEnvironment: what the reconcile loop needs from the running agent — readiness from the
// provisioning loop, a PgClusterAdmin for a spec's tenancy on the provisioned server, the
// tenant and command records and applied revision in the agent's own database, and the spec's
// onboarding strategy. A pro agent's writes to its database carry its WriteFence. Thread-safe.
#pragma once

#include <memory>

#include "absl/synchronization/mutex.h"
#include "agent/commands/pg_command_records.h"
#include "agent/config.h"
#include "agent/provision/provisioner.h"
#include "agent/provision/provisioning.h"
#include "agent/reconcile/reconcile_loop.h"
#include "agent/tenants/pg_cluster_admin.h"
#include "agent/tenants/pg_tenant_records.h"
#include "common/clock.h"
#include "common/process.h"

namespace tether::agent {

class AgentEnvironment final : public ReconcileEnvironment {
 public:
  // `fence`: null for a lite agent; outlives the environment.
  AgentEnvironment(ProvisionerKind kind, Provisioner* provisioner, ProvisioningLoop* provisioning,
                   const WriteFence* fence, common::Clock* clock)
      : kind_(kind),
        provisioner_(provisioner),
        provisioning_(provisioning),
        fence_(fence),
        clock_(clock) {}

  bool Ready() override { return provisioning_->ready(); }
  absl::StatusOr<std::unique_ptr<ClusterAdmin>> Admin(const v1::ClusterSpec& spec) override;
  absl::StatusOr<TenantRecords*> Records() override;
  // Template clones (tenancy database), snapshots, or replay, as the spec asks; what another
  // strategy left on the server is dropped after each reconcile.
  std::unique_ptr<Onboarding> NewOnboarding(const v1::ClusterSpec& spec,
                                            ClusterAdmin* admin) override;
  // The agent's command records, in its own database. kUnavailable until PostgreSQL is ready.
  absl::StatusOr<CommandRecords*> Commands();
  absl::StatusOr<int64_t> LoadAppliedRevision() override;
  absl::Status SaveAppliedRevision(int64_t revision) override;

 private:
  PgClusterAdminOptions AdminOptions(const v1::ClusterSpec& spec) const;
  std::unique_ptr<Onboarding> Strategy(const v1::ClusterSpec& spec, ClusterAdmin* admin,
                                       const PgClusterAdminOptions& options);

  const ProvisionerKind kind_;
  Provisioner* provisioner_;
  ProvisioningLoop* provisioning_;
  const WriteFence* fence_;
  common::Clock* clock_;
  absl::Mutex mu_;
  std::unique_ptr<PgTenantRecords> records_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<PgCommandRecords> commands_ ABSL_GUARDED_BY(mu_);
  common::RealProcessRunner runner_;  // pg_dump, for snapshots
};

}  // namespace tether::agent
