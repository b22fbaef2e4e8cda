// PlanReconcile over a table of cases (spec × observed state → actions and pending tenants):
// onboarding, migrating, resuming after a crash, adopting, orphaning, pruning and forgetting;
// and the plan of a reconciled state is empty.
#include "agent/reconcile/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

namespace tether::agent {

// So a failing comparison prints actions, not bytes (found by ADL, hence not in the anonymous
// namespace).
void PrintTo(const Action& a, std::ostream* os) {
  *os << "{" << ActionName(a.kind) << " " << a.tenant << " " << a.from_version << "->"
      << a.to_version << (a.held ? " held" : "") << (a.after_failure ? " after-failure" : "")
      << "}";
}

namespace {

constexpr int64_t kTarget = 3;  // the spec's latest migration in every case

constexpr v1::MigrationPolicy kAuto = v1::MIGRATION_POLICY_AUTO;
constexpr v1::MigrationPolicy kManual = v1::MIGRATION_POLICY_MANUAL;

// The tenant exists and the agent recorded it in `state` at `version`.
ObservedTenant Recorded(v1::TenantState state, int64_t version) {
  return {.exists = true, .recorded = true, .state = state, .version = version};
}
// The agent recorded it, but its database or schema is gone.
ObservedTenant RecordedButMissing(v1::TenantState state, int64_t version) {
  return {.exists = false, .recorded = true, .state = state, .version = version};
}
// Recorded, and held at its version by a rollback.
ObservedTenant RecordedHeld(v1::TenantState state, int64_t version, bool exists = true) {
  return {.exists = exists, .recorded = true, .state = state, .version = version, .held = true};
}
// It exists in PostgreSQL; the agent has no record of it.
ObservedTenant OnlyInPostgres() { return {.exists = true}; }

Action Onboard(const std::string& t, int64_t from, int64_t to) {
  return {ActionKind::kOnboard, t, from, to};
}
Action Migrate(const std::string& t, int64_t from, int64_t to) {
  return {ActionKind::kMigrate, t, from, to};
}
Action Orphan(const std::string& t, int64_t version) {
  return {ActionKind::kOrphan, t, version, version};
}
// The same action, keeping the tenant's hold.
Action Holding(Action a) {
  a.held = true;
  return a;
}
// The same action, after the tenant's last one failed.
Action AfterFailure(Action a) {
  a.after_failure = true;
  return a;
}
Action Drop(const std::string& t, int64_t from) { return {ActionKind::kDrop, t, from, 0}; }
Action Forget(const std::string& t, int64_t from) { return {ActionKind::kForget, t, from, 0}; }

struct PlanCase {
  std::string name;
  v1::MigrationPolicy policy;
  bool prune;
  std::vector<std::string> spec_tenants;
  std::map<std::string, ObservedTenant> observed;
  std::vector<Action> want_actions;  // any order
  std::vector<std::string> want_pending;
};

void PrintTo(const PlanCase& c, std::ostream* os) { *os << c.name; }

v1::ClusterSpec SpecOf(v1::MigrationPolicy policy, bool prune,
                       const std::vector<std::string>& tenants) {
  v1::ClusterSpec spec;
  spec.mutable_migrations()->set_policy(policy);
  spec.set_prune(prune);
  for (const auto& t : tenants) spec.add_tenants()->set_name(t);
  return spec;
}

std::vector<Action> SortedByTenant(std::vector<Action> actions) {
  std::sort(actions.begin(), actions.end(), [](const Action& a, const Action& b) {
    return std::tie(a.tenant, a.kind) < std::tie(b.tenant, b.kind);
  });
  return actions;
}

std::vector<std::string> Sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

using S = v1::TenantState;
constexpr S kCreating = v1::TENANT_STATE_CREATING;
constexpr S kMigrating = v1::TENANT_STATE_MIGRATING;
constexpr S kReady = v1::TENANT_STATE_READY;
constexpr S kPending = v1::TENANT_STATE_PENDING;
constexpr S kFailed = v1::TENANT_STATE_FAILED;
constexpr S kOrphaned = v1::TENANT_STATE_ORPHANED;

const std::vector<PlanCase>& Cases() {
  static const auto* cases = new std::vector<PlanCase>{
      // Nothing there yet.
      {"NothingObservedAutoOnboardsEveryTenantToTheTarget", kAuto, false, {"acme", "globex"}, {},
       {Onboard("acme", 0, kTarget), Onboard("globex", 0, kTarget)}, {}},
      {"NothingObservedManualOnboardsEveryTenantEmpty", kManual, false, {"acme", "globex"}, {},
       {Onboard("acme", 0, 0), Onboard("globex", 0, 0)}, {}},
      {"NoTenantsNothingObservedPlansNothing", kAuto, false, {}, {}, {}, {}},

      // Converged: nothing to do.
      {"ConvergedAutoPlansNothing", kAuto, false, {"acme", "globex"},
       {{"acme", Recorded(kReady, kTarget)}, {"globex", Recorded(kReady, kTarget)}}, {}, {}},
      {"ConvergedManualAtTargetPlansNothing", kManual, false, {"acme"},
       {{"acme", Recorded(kReady, kTarget)}}, {}, {}},
      {"ConvergedManualBehindOnlyListsPending", kManual, false, {"acme", "globex"},
       {{"acme", Recorded(kPending, 0)}, {"globex", Recorded(kReady, kTarget)}}, {}, {"acme"}},

      // Behind the target.
      {"BehindAutoMigratesFromItsVersionToTheTarget", kAuto, false, {"acme"},
       {{"acme", Recorded(kReady, 1)}}, {Migrate("acme", 1, kTarget)}, {}},
      // Recorded ready, but a new revision moved the target: checked at its own version, so its
      // record says pending; once it does, it is left alone.
      {"BehindManualRecordedReadyIsCheckedAtItsVersion", kManual, false, {"acme"},
       {{"acme", Recorded(kReady, 1)}}, {Migrate("acme", 1, 1)}, {}},
      {"BehindManualRecordedPendingIsLeftAlone", kManual, false, {"acme"},
       {{"acme", Recorded(kPending, 1)}}, {}, {"acme"}},
      {"PendingUnderManualThenAutoIsMigrated", kAuto, false, {"acme"},
       {{"acme", Recorded(kPending, 0)}}, {Migrate("acme", 0, kTarget)}, {}},

      // A reconcile cut short: the record says what was under way.
      {"RecordedCreatingIsOnboardedAgain", kAuto, false, {"acme"},
       {{"acme", Recorded(kCreating, 1)}}, {Onboard("acme", 1, kTarget)}, {}},
      {"RecordedCreatingButNeverCreatedIsOnboardedAgain", kAuto, false, {"acme"},
       {{"acme", RecordedButMissing(kCreating, 0)}}, {Onboard("acme", 0, kTarget)}, {}},
      {"RecordedCreatingManualIsOnboardedAgainEmpty", kManual, false, {"acme"},
       {{"acme", Recorded(kCreating, 0)}}, {Onboard("acme", 0, 0)}, {}},
      {"RecordedMigratingIsMigratedAgain", kAuto, false, {"acme"},
       {{"acme", Recorded(kMigrating, 2)}}, {Migrate("acme", 2, kTarget)}, {}},
      {"RecordedFailedIsMigratedAgain", kAuto, false, {"acme"},
       {{"acme", Recorded(kFailed, 1)}}, {AfterFailure(Migrate("acme", 1, kTarget))}, {}},
      {"RecordedFailedAtTheTargetIsCheckedAgain", kAuto, false, {"acme"},
       {{"acme", Recorded(kFailed, kTarget)}},
       {AfterFailure(Migrate("acme", kTarget, kTarget))}, {}},

      // PostgreSQL and the records disagree.
      {"ExistsButUnrecordedIsAdopted", kAuto, false, {"acme"}, {{"acme", OnlyInPostgres()}},
       {Onboard("acme", 0, kTarget)}, {}},
      {"ExistsButUnrecordedManualIsAdoptedWithoutMigrating", kManual, false, {"acme"},
       {{"acme", OnlyInPostgres()}}, {Onboard("acme", 0, 0)}, {}},
      {"RecordedButMissingWhileInTheSpecIsOnboarded", kAuto, false, {"acme"},
       {{"acme", RecordedButMissing(kReady, kTarget)}}, {Onboard("acme", kTarget, kTarget)}, {}},
      {"UnrecordedTenantOutsideTheSpecIsNotOurs", kAuto, true, {"acme"},
       {{"acme", Recorded(kReady, kTarget)}, {"stranger", OnlyInPostgres()}}, {}, {}},

      // Leaving the spec.
      {"LeftTheSpecWithoutPruneIsOrphaned", kAuto, false, {},
       {{"globex", Recorded(kReady, kTarget)}}, {Orphan("globex", kTarget)}, {}},
      {"LeftTheSpecWithoutPruneBehindIsOrphanedAtItsVersion", kManual, false, {},
       {{"globex", Recorded(kPending, 1)}}, {Orphan("globex", 1)}, {}},
      {"AnOrphanIsOrphanedOnlyOnce", kAuto, false, {}, {{"globex", Recorded(kOrphaned, 2)}}, {},
       {}},
      {"LeftTheSpecWithPruneIsDropped", kAuto, true, {}, {{"globex", Recorded(kReady, kTarget)}},
       {Drop("globex", kTarget)}, {}},
      {"AnOrphanIsDroppedOncePruneIsOn", kAuto, true, {}, {{"globex", Recorded(kOrphaned, 2)}},
       {Drop("globex", 2)}, {}},
      {"GoneFromPostgresAndTheSpecIsForgotten", kAuto, false, {},
       {{"globex", RecordedButMissing(kReady, 2)}}, {Forget("globex", 2)}, {}},
      {"GoneFromPostgresAndTheSpecIsForgottenNotDropped", kAuto, true, {},
       {{"globex", RecordedButMissing(kOrphaned, 2)}}, {Forget("globex", 2)}, {}},

      // Coming back.
      {"AnOrphanBackInTheSpecAutoIsMigratedToTheTarget", kAuto, false, {"globex"},
       {{"globex", Recorded(kOrphaned, 1)}}, {Migrate("globex", 1, kTarget)}, {}},
      {"AnOrphanBackInTheSpecAutoAtTheTargetIsCheckedAgain", kAuto, false, {"globex"},
       {{"globex", Recorded(kOrphaned, kTarget)}}, {Migrate("globex", kTarget, kTarget)}, {}},
      {"AnOrphanBackInTheSpecManualAtTheTargetIsCheckedAgain", kManual, false, {"globex"},
       {{"globex", Recorded(kOrphaned, kTarget)}}, {Migrate("globex", kTarget, kTarget)}, {}},
      // Under manual, an orphan that returns behind the target is re-checked at its own
      // version (so it is no longer recorded as orphaned), not only listed pending.
      {"AnOrphanBackInTheSpecManualBehindIsCheckedAgainAtItsVersion", kManual, false, {"globex"},
       {{"globex", Recorded(kOrphaned, 1)}}, {Migrate("globex", 1, 1)}, {}},

      // Held by a rollback: as under policy manual, never migrated up, and the hold is kept.
      {"HeldRecordedPendingUnderAutoIsLeftAlone", kAuto, false, {"acme"},
       {{"acme", RecordedHeld(kPending, 1)}}, {}, {"acme"}},
      {"HeldRecordedReadyUnderAutoIsCheckedAtItsVersion", kAuto, false, {"acme"},
       {{"acme", RecordedHeld(kReady, 1)}}, {Holding(Migrate("acme", 1, 1))}, {}},
      {"HeldFailedUnderAutoIsCheckedAtItsVersion", kAuto, false, {"acme"},
       {{"acme", RecordedHeld(kFailed, 2)}}, {AfterFailure(Holding(Migrate("acme", 2, 2)))}, {}},
      {"HeldAtTheTargetPlansNothing", kAuto, false, {"acme"},
       {{"acme", RecordedHeld(kReady, kTarget)}}, {}, {}},
      {"HeldUnderManualBehindIsLeftAlone", kManual, false, {"acme"},
       {{"acme", RecordedHeld(kPending, 1)}}, {}, {"acme"}},
      {"HeldButGoneIsOnboardedWithoutMigrating", kAuto, false, {"acme"},
       {{"acme", RecordedHeld(kPending, 1, /*exists=*/false)}}, {Holding(Onboard("acme", 1, 0))},
       {}},
      {"HeldThatLeftTheSpecIsOrphanedKeepingItsHold", kAuto, false, {},
       {{"acme", RecordedHeld(kPending, 1)}}, {Holding(Orphan("acme", 1))}, {}},
      {"NotHeldNextToHeldIsMigrated", kAuto, false, {"acme", "globex"},
       {{"acme", RecordedHeld(kPending, 1)}, {"globex", Recorded(kReady, 1)}},
       {Migrate("globex", 1, kTarget)}, {"acme"}},

      // Everything at once: each tenant gets its own action.
      {"EveryKindOfTenantAtOnce", kAuto, false, {"acme", "globex", "initech", "umbrella"},
       {{"acme", Recorded(kReady, kTarget)},
        {"globex", Recorded(kReady, 1)},
        {"initech", Recorded(kCreating, 0)},
        {"hooli", Recorded(kReady, 2)},
        {"vandelay", RecordedButMissing(kOrphaned, 2)},
        {"stranger", OnlyInPostgres()}},
       {Migrate("globex", 1, kTarget), Onboard("initech", 0, kTarget),
        Onboard("umbrella", 0, kTarget), Orphan("hooli", 2), Forget("vandelay", 2)},
       {}},
  };
  return *cases;
}

class PlanTableTest : public ::testing::TestWithParam<PlanCase> {};

TEST_P(PlanTableTest, GivesTheExpectedActionsAndPending) {
  const PlanCase& c = GetParam();
  ObservedState observed;
  observed.tenants = c.observed;
  const Plan plan = PlanReconcile(SpecOf(c.policy, c.prune, c.spec_tenants), kTarget, observed);
  EXPECT_EQ(SortedByTenant(plan.actions), SortedByTenant(c.want_actions));
  EXPECT_EQ(Sorted(plan.pending), Sorted(c.want_pending));
}

INSTANTIATE_TEST_SUITE_P(Plan, PlanTableTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<PlanCase>& info) {
                           return info.param.name;
                         });

// What the executor leaves behind once `plan` ran without a failure: a model of it, so the
// plan of that state can be checked.
ObservedState AfterRunning(const Plan& plan, ObservedState state) {
  for (const Action& a : plan.actions) {
    ObservedTenant& t = state.tenants[a.tenant];
    switch (a.kind) {
      case ActionKind::kOnboard:
      case ActionKind::kMigrate: {
        const int64_t version = std::max(t.exists ? t.version : 0, a.to_version);
        t = Recorded(version >= kTarget ? kReady : kPending, version);
        break;
      }
      case ActionKind::kOrphan:
        t.state = kOrphaned;
        break;
      case ActionKind::kDrop:
      case ActionKind::kForget:
        state.tenants.erase(a.tenant);
        break;
    }
  }
  return state;
}

TEST(PlanTest, ThePlanOfAReconciledStateIsEmpty) {
  for (const v1::MigrationPolicy policy : {kAuto, kManual}) {
    for (const bool prune : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "policy " << v1::MigrationPolicy_Name(policy)
                                        << ", prune " << prune);
      const v1::ClusterSpec spec = SpecOf(policy, prune, {"acme", "globex", "initech", "new"});
      ObservedState observed;
      observed.tenants = {{"acme", Recorded(kReady, kTarget)},
                          {"globex", Recorded(kReady, 1)},
                          {"initech", Recorded(kCreating, 0)},
                          {"hooli", Recorded(kReady, 2)},
                          {"vandelay", RecordedButMissing(kReady, 2)},
                          {"stranger", OnlyInPostgres()}};
      const Plan first = PlanReconcile(spec, kTarget, observed);
      ASSERT_FALSE(first.actions.empty());
      const Plan second = PlanReconcile(spec, kTarget, AfterRunning(first, observed));
      EXPECT_EQ(second.actions, std::vector<Action>());
      // Under manual, what is behind stays behind: listed pending, and left alone.
      const std::vector<std::string> want_pending =
          policy == kManual ? std::vector<std::string>{"globex", "initech", "new"}
                            : std::vector<std::string>{};
      EXPECT_EQ(Sorted(second.pending), want_pending);
    }
  }
}

TEST(PlanTest, ActionsHaveNames) {
  EXPECT_STREQ(ActionName(ActionKind::kOnboard), "onboard");
  EXPECT_STREQ(ActionName(ActionKind::kMigrate), "migrate");
  EXPECT_STREQ(ActionName(ActionKind::kOrphan), "orphan");
  EXPECT_STREQ(ActionName(ActionKind::kDrop), "drop");
  EXPECT_STREQ(ActionName(ActionKind::kForget), "forget");
}

}  // namespace
}  // namespace tether::agent
