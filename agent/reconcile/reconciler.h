// Reconciler: one reconcile of one revision, start to finish — check the spec, observe the
// tenants (what exists in PostgreSQL, what the agent's records say), compute the plan, carry it
// out, and report every tenant's state. A failure of some tenants is a Nack naming them; the
// others are still brought to the revision. Safe to run again at any point: converged input
// gives an empty plan. Used by one thread at a time.
#pragma once

#include <cstdint>

#include "absl/synchronization/notification.h"
#include "agent/onboarding/onboarding.h"
#include "agent/reconcile/cluster_admin.h"
#include "agent/reconcile/report.h"
#include "agent/tenants/tenant_records.h"
#include "common/clock.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

class Reconciler {
 public:
  // `onboarding`: the spec's strategy (agent/onboarding/); null onboards by replay.
  Reconciler(ClusterAdmin* admin, TenantRecords* records, common::Clock* clock,
             int concurrency = 4, Onboarding* onboarding = nullptr);

  // Reconciles `spec` (revision `revision`); each step is reported through `step`. Stops
  // between tenants once `stop` (may be null) is notified, reporting kCancelled.
  ReconcileReport Reconcile(int64_t revision, const v1::ClusterSpec& spec, const StepFn& step,
                            const absl::Notification* stop);

 private:
  ClusterAdmin* admin_;
  TenantRecords* records_;
  common::Clock* clock_;
  int concurrency_;
  Onboarding* onboarding_;
};

// Every recorded tenant as the agent reports it: state, version, and the versions of
// `migrations` not applied yet.
std::vector<v1::TenantStatus> TenantStatuses(const std::map<std::string, TenantRecord>& records,
                                             const std::vector<common::Migration>& migrations);

}  // namespace tether::agent
