// PlanReconcile.
#include "agent/reconcile/plan.h"

#include <set>

namespace tether::agent {

const char* ActionName(ActionKind kind) {
  switch (kind) {
    case ActionKind::kOnboard: return "onboard";
    case ActionKind::kMigrate: return "migrate";
    case ActionKind::kOrphan: return "orphan";
    case ActionKind::kDrop: return "drop";
    case ActionKind::kForget: return "forget";
  }
  return "?";
}

Plan PlanReconcile(const v1::ClusterSpec& spec, int64_t target_version,
                   const ObservedState& observed) {
  const bool auto_migrate = spec.migrations().policy() == v1::MIGRATION_POLICY_AUTO;
  Plan plan;
  std::set<std::string> wanted;
  for (const auto& t : spec.tenants()) {
    wanted.insert(t.name());
    auto it = observed.tenants.find(t.name());
    const ObservedTenant* seen = it == observed.tenants.end() ? nullptr : &it->second;
    // Missing, never finished onboarding, or known only from PostgreSQL: (re)onboard. Creating
    // is idempotent and the migrator reads what is really applied, so nothing is done twice.
    const bool held = seen != nullptr && seen->recorded && seen->held;
    if (seen == nullptr || !seen->exists || !seen->recorded ||
        seen->state == v1::TENANT_STATE_CREATING) {
      plan.actions.push_back({ActionKind::kOnboard, t.name(), seen != nullptr ? seen->version : 0,
                              auto_migrate && !held ? target_version : 0, held});
      continue;
    }
    const bool behind = seen->version < target_version;
    const bool unsettled = seen->state == v1::TENANT_STATE_MIGRATING ||
                           seen->state == v1::TENANT_STATE_FAILED ||
                           seen->state == v1::TENANT_STATE_ORPHANED;
    const bool failed = seen->state == v1::TENANT_STATE_FAILED;
    if (auto_migrate && !held) {
      if (behind || seen->state != v1::TENANT_STATE_READY) {
        plan.actions.push_back(
            {ActionKind::kMigrate, t.name(), seen->version, target_version, false, failed});
      }
      continue;
    }
    // Policy manual, or held by a rollback: nothing is migrated. A tenant whose record does not say what it is now
    // (an orphan back in the spec, a failure, ready at a version a new revision moved past) is
    // checked at its own version, which records it pending or ready; one already recorded
    // pending is left alone.
    const v1::TenantState settled = behind ? v1::TENANT_STATE_PENDING : v1::TENANT_STATE_READY;
    if (unsettled || seen->state != settled) {
      plan.actions.push_back(
          {ActionKind::kMigrate, t.name(), seen->version, seen->version, held, failed});
    } else if (behind) {
      plan.pending.push_back(t.name());
    }
  }
  for (const auto& [name, seen] : observed.tenants) {
    if (wanted.count(name) != 0 || !seen.recorded) continue;  // not ours unless recorded
    if (!seen.exists) {
      plan.actions.push_back({ActionKind::kForget, name, seen.version, 0});
    } else if (spec.prune()) {
      plan.actions.push_back({ActionKind::kDrop, name, seen.version, 0});
    } else if (seen.state != v1::TENANT_STATE_ORPHANED) {
      plan.actions.push_back({ActionKind::kOrphan, name, seen.version, seen.version, seen.held});
    }
  }
  return plan;
}

}  // namespace tether::agent
