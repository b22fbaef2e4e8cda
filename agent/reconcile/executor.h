// Executor: carries out a Plan on the agent's PostgreSQL through ClusterAdmin, `concurrency`
// tenants at a time, keeping the agent's TenantRecords up to date: a tenant's record is written
// before each change (creating, migrating) and after it (ready, pending, failed), so a reconcile
// killed at any point is resumed by the next plan, never done twice (creating is idempotent and
// the migrator reads what is really applied). One failing tenant does not stop the others.
// Every step (a hook included) is reported as one line: which tenant, what, how long.
// Run() blocks its caller and uses `concurrency` threads of its own; not reentrant.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "agent/onboarding/onboarding.h"
#include "agent/reconcile/cluster_admin.h"
#include "agent/reconcile/plan.h"
#include "agent/tenants/tenant_records.h"
#include "common/clock.h"

namespace tether::agent {

struct TenantFailure {
  std::string tenant;
  absl::Status status;
};

struct ExecutionResult {
  int actions_done = 0;
  std::vector<TenantFailure> failures;  // in the order they happened
  bool stopped = false;                 // `stop` came before every action ran
};

class Executor {
 public:
  Executor(ClusterAdmin* admin, TenantRecords* records, Onboarding* onboarding,
           common::Clock* clock, int concurrency = 4);

  // The spec's hooks, run as steps of each tenant's action: after_tenant_created once a tenant
  // is onboarded, before_migrate before migrations are applied to it (only when some are
  // pending), after_migrate after (only when some were applied). Each runs at most once per
  // tenant and key (see ClusterAdmin::RunHook); a failing hook fails its tenant's action and
  // stops its later steps. Set before Run().
  void set_hooks(std::vector<v1::HookSpec> hooks) { hooks_ = std::move(hooks); }

  // Runs every action of `plan`; `target_version` is the spec's latest migration (a tenant
  // below it after its action is recorded pending). Stops between actions once `stop` (may be
  // null) is notified.
  ExecutionResult Run(const Plan& plan, const std::vector<common::Migration>& migrations,
                      int64_t target_version, const StepFn& step,
                      const absl::Notification* stop);

 private:
  absl::Status RunAction(const Action& action, const std::vector<common::Migration>& migrations,
                         int64_t target_version, const StepFn& step);
  // `onboarded`: how the tenant was onboarded (null: the record keeps what it says).
  absl::Status Record(const std::string& tenant, v1::TenantState state, int64_t version,
                      bool held, const std::string& error = "",
                      const Onboarded* onboarded = nullptr);
  // Runs the hook of `event` (if the spec has one) on `tenant` under `key`, as one step line.
  absl::Status RunHook(const std::string& tenant, const std::string& event, const std::string& key,
                       const StepFn& tenant_step);
  bool HasHook(const std::string& event) const;
  // The tenant's applied version as the database says, or `fallback` if it cannot be read.
  int64_t AppliedVersion(const std::string& tenant,
                         const std::vector<common::Migration>& migrations, int64_t fallback);

  ClusterAdmin* admin_;
  TenantRecords* records_;
  Onboarding* onboarding_;
  common::Clock* clock_;
  int concurrency_;
  std::vector<v1::HookSpec> hooks_;
};

}  // namespace tether::agent
