// The Executor and the Reconciler over a fake PostgreSQL and fake tenant records: tenants
// onboarded, migrated, orphaned, dropped and forgotten; a second reconcile does nothing; one
// tenant's failure leaves the others done and is a nack naming it; work cut short is resumed
// without repeating a migration; many tenants on a few workers are each done exactly once.
#include "agent/reconcile/executor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/onboarding/onboarding.h"
#include "agent/reconcile/plan.h"
#include "agent/reconcile/reconciler.h"
#include "common/spec/spec.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/specs.h"
#include "tests/testing/fake_cluster_admin.h"
#include "tests/testing/step_lines.h"
#include "tests/testing/fake_tenant_records.h"

namespace tether::agent {
namespace {

constexpr int64_t kTarget = 3;

// Three migrations, as tetherctl would send them.
const std::vector<std::pair<std::string, std::string>>& MigrationFiles() {
  static const auto* files = new std::vector<std::pair<std::string, std::string>>{
      {"0001_init.up.sql", "CREATE TABLE orders (id bigserial PRIMARY KEY);"},
      {"0001_init.down.sql", "DROP TABLE orders;"},
      {"0002_add_total.up.sql", "ALTER TABLE orders ADD COLUMN total numeric NOT NULL DEFAULT 0;"},
      {"0003_add_index.up.sql", "CREATE INDEX orders_total ON orders (total);"}};
  return *files;
}

// A valid spec for cluster "shop" with `tenants` and the first `migrations` migrations.
v1::ClusterSpec ShopSpec(const std::vector<std::string>& tenants,
                         v1::MigrationPolicy policy = v1::MIGRATION_POLICY_AUTO,
                         bool prune = false, int64_t migrations = kTarget) {
  v1::ClusterSpec spec = testing::BaseSpec();
  spec.mutable_migrations()->set_policy(policy);
  for (const auto& [name, sql] : MigrationFiles()) {
    if (std::stoll(name.substr(0, 4)) <= migrations) testing::AddMigrationFile(&spec, name, sql);
  }
  spec.set_prune(prune);
  for (const auto& t : tenants) spec.add_tenants()->set_name(t);
  return spec;
}

std::vector<common::Migration> MigrationsOf(const v1::ClusterSpec& spec) {
  auto migrations = common::SpecMigrations(spec);
  EXPECT_TRUE(migrations.ok()) << migrations.status();
  return migrations.ok() ? *migrations : std::vector<common::Migration>();
}

using Lines = testing::StepLines;

class ExecutorTest : public ::testing::Test {
 protected:
  ExecutionResult Run(const v1::ClusterSpec& spec, const ObservedState& observed,
                      int concurrency = 4, const absl::Notification* stop = nullptr) {
    Executor executor(&admin_, &records_, &onboarding_, &clock_, concurrency);
    const Plan plan = PlanReconcile(spec, kTarget, observed);
    return executor.Run(plan, MigrationsOf(spec), kTarget, lines_.Fn(), stop);
  }

  testing::FakeClock clock_;
  testing::FakeClusterAdmin admin_;
  testing::FakeTenantRecords records_;
  ReplayOnboarding onboarding_{&admin_};
  Lines lines_;
};

TEST_F(ExecutorTest, OnboardingCreatesAndMigratesEveryTenantAndRecordsItReady) {
  const ExecutionResult result = Run(ShopSpec({"acme", "globex"}), {});

  EXPECT_EQ(result.actions_done, 2);
  EXPECT_TRUE(result.failures.empty());
  EXPECT_FALSE(result.stopped);
  for (const std::string t : {"acme", "globex"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(admin_.creates(t), 1);
    EXPECT_EQ(admin_.Applied(t), (std::set<int64_t>{1, 2, 3}));
    for (int64_t v : {1, 2, 3}) EXPECT_EQ(admin_.applied_count(t, v), 1) << "migration " << v;
    auto record = records_.Get(t);
    ASSERT_TRUE(record.has_value());
    EXPECT_EQ(record->state, v1::TENANT_STATE_READY);
    EXPECT_EQ(record->version, kTarget);
    EXPECT_EQ(record->error, "");
    EXPECT_EQ(record->updated_at, clock_.Now());
    // Recorded before the change, then after it.
    EXPECT_EQ(records_.StatesOf(t),
              (std::vector<v1::TenantState>{v1::TENANT_STATE_CREATING, v1::TENANT_STATE_READY}));
  }
  const auto lines = lines_.Get();
  EXPECT_NE(std::find(lines.begin(), lines.end(), "acme: applying 2_add_total"), lines.end());
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "globex: created at version 3 in 0 ms (migrations; fingerprint fake-1,2,3, "
                      "the replay's)"),
            lines.end());
}

TEST_F(ExecutorTest, AFailingMigrationFailsOnlyItsTenant) {
  admin_.FailMigration("globex", 2);

  const ExecutionResult result = Run(ShopSpec({"acme", "globex", "initech"}), {});

  EXPECT_EQ(result.actions_done, 3);
  ASSERT_EQ(result.failures.size(), 1u);
  EXPECT_EQ(result.failures[0].tenant, "globex");
  EXPECT_EQ(result.failures[0].status.code(), absl::StatusCode::kInternal);
  const std::string error =
      "migration 2 (add_total) failed and was rolled back: syntax error at or near \"BROKEN\"";
  EXPECT_EQ(result.failures[0].status.message(), error);
  auto globex = records_.Get("globex");
  ASSERT_TRUE(globex.has_value());
  EXPECT_EQ(globex->state, v1::TENANT_STATE_FAILED);
  EXPECT_EQ(globex->version, 1);  // what the database says is applied
  EXPECT_EQ(globex->error, error);
  EXPECT_EQ(admin_.applied_count("globex", 3), 0);  // stopped at the failure
  for (const std::string t : {"acme", "initech"}) {
    auto record = records_.Get(t);
    ASSERT_TRUE(record.has_value()) << t;
    EXPECT_EQ(record->state, v1::TENANT_STATE_READY) << t;
    EXPECT_EQ(record->version, kTarget) << t;
  }
  const auto lines = lines_.Get();
  EXPECT_NE(std::find(lines.begin(), lines.end(), "globex: failed after 0 ms: " + error),
            lines.end());
}

TEST_F(ExecutorTest, APutFailureIsReportedAndThatTenantIsNotTouched) {
  records_.FailPut(absl::UnavailableError("the agent's database does not answer"), "globex");

  const ExecutionResult result = Run(ShopSpec({"acme", "globex"}), {});

  ASSERT_EQ(result.failures.size(), 1u);
  EXPECT_EQ(result.failures[0].tenant, "globex");
  EXPECT_EQ(result.failures[0].status.code(), absl::StatusCode::kUnavailable);
  // Its record could not say what was under way, so nothing was done to it.
  EXPECT_EQ(admin_.creates("globex"), 0);
  EXPECT_FALSE(admin_.Exists("globex"));
  EXPECT_FALSE(records_.Get("globex").has_value());
  ASSERT_TRUE(records_.Get("acme").has_value());
  EXPECT_EQ(records_.Get("acme")->state, v1::TENANT_STATE_READY);
}

TEST_F(ExecutorTest, FortyTenantsOnFourWorkersAreEachDoneOnceWithWholeLines) {
  std::vector<std::string> tenants;
  for (int i = 0; i < 40; ++i) tenants.push_back(absl::StrFormat("t%02d", i));
  const v1::ClusterSpec spec = ShopSpec(tenants);
  const Plan plan = PlanReconcile(spec, kTarget, {});
  ASSERT_EQ(plan.actions.size(), 40u);

  // The callback notes whether it was ever entered by two workers at once.
  std::atomic<int> inside{0};
  std::atomic<int> most_inside{0};
  Lines lines;
  auto step = [&, keep = lines.Fn()](const std::string& line) {
    const int now = ++inside;
    int seen = most_inside.load();
    while (now > seen && !most_inside.compare_exchange_weak(seen, now)) {
    }
    keep(line);
    std::this_thread::yield();  // widen the window for an overlap, were there one
    --inside;
  };
  Executor executor(&admin_, &records_, &onboarding_, &clock_, /*concurrency=*/4);
  const ExecutionResult result = executor.Run(plan, MigrationsOf(spec), kTarget, step, nullptr);

  EXPECT_EQ(result.actions_done, 40);
  EXPECT_TRUE(result.failures.empty());
  EXPECT_EQ(most_inside.load(), 1);
  EXPECT_EQ(admin_.total_creates(), 40);
  EXPECT_EQ(admin_.total_applied(), 40 * 3);
  std::map<std::string, int> lines_per_tenant;
  for (const std::string& line : lines.Get()) {
    const size_t colon = line.find(": ");
    ASSERT_NE(colon, std::string::npos) << line;
    const std::string tenant = line.substr(0, colon);
    ASSERT_TRUE(std::find(tenants.begin(), tenants.end(), tenant) != tenants.end()) << line;
    ++lines_per_tenant[tenant];
  }
  for (const std::string& t : tenants) {
    SCOPED_TRACE(t);
    EXPECT_EQ(admin_.creates(t), 1);
    for (int64_t v : {1, 2, 3}) EXPECT_EQ(admin_.applied_count(t, v), 1) << "migration " << v;
    EXPECT_EQ(records_.StatesOf(t),
              (std::vector<v1::TenantState>{v1::TENANT_STATE_CREATING, v1::TENANT_STATE_READY}));
    // "onboarding", three "applying", "created at".
    EXPECT_EQ(lines_per_tenant[t], 5);
  }
}

TEST_F(ExecutorTest, AStopBeforeRunLeavesEveryActionUndone) {
  absl::Notification stop;
  stop.Notify();

  const ExecutionResult result = Run(ShopSpec({"acme", "globex"}), {}, 4, &stop);

  EXPECT_TRUE(result.stopped);
  EXPECT_EQ(result.actions_done, 0);
  EXPECT_EQ(admin_.total_creates(), 0);
  EXPECT_TRUE(records_.puts().empty());
  EXPECT_TRUE(lines_.Get().empty());
}

TEST_F(ExecutorTest, AnEmptyPlanDoesNothingAndIsNotStopped) {
  absl::Notification stop;
  stop.Notify();
  admin_.AddTenant("acme", {1, 2, 3});
  records_.Seed("acme", v1::TENANT_STATE_READY, kTarget);
  ObservedState observed;
  observed.tenants["acme"] = {.exists = true, .recorded = true,
                              .state = v1::TENANT_STATE_READY, .version = kTarget};

  const ExecutionResult result = Run(ShopSpec({"acme"}), observed, 4, &stop);

  EXPECT_FALSE(result.stopped);  // nothing was left undone
  EXPECT_EQ(result.actions_done, 0);
  EXPECT_TRUE(records_.puts().empty());
}

// --- The Reconciler: observe, plan, execute, report.

class ReconcilerTest : public ::testing::Test {
 protected:
  ReconcileReport Reconcile(const v1::ClusterSpec& spec, const absl::Notification* stop = nullptr) {
    Reconciler reconciler(&admin_, &records_, &clock_, /*concurrency=*/4);
    return reconciler.Reconcile(++revision_, spec, lines_.Fn(), stop);
  }

  // The reported status of `tenant`; fails the test when it is not reported.
  static v1::TenantStatus StatusOf(const ReconcileReport& report, const std::string& tenant) {
    for (const auto& t : report.tenants) {
      if (t.name() == tenant) return t;
    }
    ADD_FAILURE() << tenant << " is not reported";
    return v1::TenantStatus();
  }

  static std::vector<std::string> Names(const ReconcileReport& report) {
    std::vector<std::string> names;
    for (const auto& t : report.tenants) names.push_back(t.name());
    return names;
  }

  // A refused reconcile: `code`, one line, and nothing created, dropped, migrated or recorded.
  void ExpectRefusedWithoutWriting(const ReconcileReport& report, absl::StatusCode code) {
    EXPECT_EQ(report.status.code(), code) << report.status;
    EXPECT_EQ(report.status.message().find('\n'), std::string::npos) << report.status;
    EXPECT_EQ(admin_.total_creates(), 0);
    EXPECT_EQ(admin_.total_drops(), 0);
    EXPECT_EQ(admin_.total_applied(), 0);
    EXPECT_TRUE(records_.puts().empty());
  }

  testing::FakeClock clock_;
  testing::FakeClusterAdmin admin_;
  testing::FakeTenantRecords records_;
  Lines lines_;
  int64_t revision_ = 0;
};

TEST_F(ReconcilerTest, OnboardsEveryTenantAndReportsThemReady) {
  const ReconcileReport report = Reconcile(ShopSpec({"acme", "globex", "initech"}));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(report.revision, 1);
  EXPECT_EQ(Names(report), (std::vector<std::string>{"acme", "globex", "initech"}));
  for (const auto& t : report.tenants) {
    SCOPED_TRACE(t.name());
    EXPECT_EQ(t.state(), v1::TENANT_STATE_READY);
    EXPECT_EQ(t.version(), kTarget);
    EXPECT_EQ(t.target_version(), kTarget);
    EXPECT_EQ(t.pending_versions_size(), 0);
    EXPECT_EQ(t.error(), "");
    EXPECT_EQ(admin_.Applied(t.name()), (std::set<int64_t>{1, 2, 3}));
  }
  EXPECT_EQ(lines_.Get().front(),
            "revision 1: 3 tenants, 3 to change, target version 3");
}

TEST_F(ReconcilerTest, ReconcilingTheSameSpecTwiceAppliesNothing) {
  const v1::ClusterSpec spec = ShopSpec({"acme", "globex", "initech"});
  ASSERT_TRUE(Reconcile(spec).status.ok());
  const int creates = admin_.total_creates();
  const int applied = admin_.total_applied();
  const size_t puts = records_.puts().size();
  ASSERT_EQ(applied, 9);

  const ReconcileReport again = Reconcile(spec);

  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(admin_.total_creates(), creates);
  EXPECT_EQ(admin_.total_applied(), applied);
  EXPECT_EQ(records_.puts().size(), puts);
  EXPECT_EQ(again.tenants.size(), 3u);
  const auto lines = lines_.Get();
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "revision 2: 3 tenants, 0 to change, target version 3"),
            lines.end());
}

TEST_F(ReconcilerTest, AFailingMigrationIsANackNamingTheTenantAndTheOthersReachTheTarget) {
  admin_.FailMigration("globex", 2);
  const v1::ClusterSpec spec = ShopSpec({"acme", "globex", "initech"});

  const ReconcileReport report = Reconcile(spec);

  EXPECT_EQ(report.status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(report.status.message(),
            "1 of 3 tenant changes failed: globex: migration 2 (add_total) failed and was rolled "
            "back: syntax error at or near \"BROKEN\"");
  const v1::TenantStatus globex = StatusOf(report, "globex");
  EXPECT_EQ(globex.state(), v1::TENANT_STATE_FAILED);
  EXPECT_EQ(globex.version(), 1);
  EXPECT_EQ(std::vector<int64_t>(globex.pending_versions().begin(), globex.pending_versions().end()),
            (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(absl::StrContains(globex.error(), "migration 2 (add_total) failed"));
  for (const std::string t : {"acme", "initech"}) {
    EXPECT_EQ(StatusOf(report, t).state(), v1::TENANT_STATE_READY) << t;
    EXPECT_EQ(StatusOf(report, t).version(), kTarget) << t;
  }

  // Once the migration is fixed, the next reconcile finishes globex without repeating 1.
  admin_.ClearFailures();
  const ReconcileReport retry = Reconcile(spec);

  ASSERT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_EQ(StatusOf(retry, "globex").state(), v1::TENANT_STATE_READY);
  EXPECT_EQ(StatusOf(retry, "globex").error(), "");
  for (int64_t v : {1, 2, 3}) EXPECT_EQ(admin_.applied_count("globex", v), 1) << v;
  EXPECT_EQ(admin_.total_creates(), 3);
}

TEST_F(ReconcilerTest, ManyFailuresAreSummedUpInOneLine) {
  std::vector<std::string> tenants = {"a1", "a2", "a3", "a4", "a5", "ok"};
  for (int i = 0; i < 5; ++i) admin_.FailMigration(tenants[i], 1, "boom");

  const ReconcileReport report = Reconcile(ShopSpec(tenants));

  EXPECT_EQ(report.status.code(), absl::StatusCode::kAborted);
  const std::string message(report.status.message());
  EXPECT_TRUE(absl::StartsWith(message, "5 of 6 tenant changes failed: ")) << message;
  EXPECT_TRUE(absl::EndsWith(message, "; and 2 more")) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos);
  EXPECT_EQ(StatusOf(report, "ok").state(), v1::TENANT_STATE_READY);
}

TEST_F(ReconcilerTest, ManualPolicyCreatesTenantsEmptyAndListsTheirPendingVersions) {
  const ReconcileReport report =
      Reconcile(ShopSpec({"acme", "globex"}, v1::MIGRATION_POLICY_MANUAL));

  ASSERT_TRUE(report.status.ok()) << report.status;
  ASSERT_EQ(report.tenants.size(), 2u);
  for (const auto& t : report.tenants) {
    SCOPED_TRACE(t.name());
    EXPECT_EQ(t.state(), v1::TENANT_STATE_PENDING);
    EXPECT_EQ(t.version(), 0);
    EXPECT_EQ(t.target_version(), kTarget);
    EXPECT_EQ(std::vector<int64_t>(t.pending_versions().begin(), t.pending_versions().end()),
              (std::vector<int64_t>{1, 2, 3}));
    EXPECT_TRUE(admin_.Exists(t.name()));
    EXPECT_EQ(admin_.creates(t.name()), 1);
  }
  EXPECT_EQ(admin_.total_applied(), 0);

  // Reconciling again leaves them pending, untouched.
  const size_t puts = records_.puts().size();
  ASSERT_TRUE(Reconcile(ShopSpec({"acme", "globex"}, v1::MIGRATION_POLICY_MANUAL)).status.ok());
  EXPECT_EQ(records_.puts().size(), puts);
  EXPECT_EQ(admin_.total_applied(), 0);
  const auto lines = lines_.Get();
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "revision 2: 2 tenants, 0 to change, 2 left pending (policy manual), "
                      "target version 3"),
            lines.end());
}

// READY means "at the spec's latest migration" (spec.proto): a tenant left behind by a new
// migration under policy manual must not be reported READY.
TEST_F(ReconcilerTest, ManualPolicyReportsATenantBehindANewMigrationPending) {
  ASSERT_TRUE(Reconcile(ShopSpec({"acme"}, v1::MIGRATION_POLICY_AUTO, false, 2)).status.ok());
  ASSERT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1, 2}));

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}, v1::MIGRATION_POLICY_MANUAL));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(admin_.applied_count("acme", 3), 0);  // manual: not migrated
  const v1::TenantStatus acme = StatusOf(report, "acme");
  EXPECT_EQ(acme.version(), 2);
  EXPECT_EQ(acme.target_version(), 3);
  EXPECT_EQ(acme.pending_versions_size(), 1);
  EXPECT_EQ(acme.state(), v1::TENANT_STATE_PENDING);
}

// A rollback holds a tenant: under policy auto a reconcile leaves it at its version, reports it
// pending and held, and keeps the hold in its record.
TEST_F(ReconcilerTest, AHeldTenantIsNotMigratedUpAndStaysHeld) {
  admin_.AddTenant("acme", {1});
  records_.Seed("acme", v1::TENANT_STATE_READY, 1, /*held=*/true);
  admin_.AddTenant("globex", {1});
  records_.Seed("globex", v1::TENANT_STATE_READY, 1);

  const ReconcileReport report = Reconcile(ShopSpec({"acme", "globex"}));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1}));
  EXPECT_EQ(admin_.Applied("globex"), (std::set<int64_t>{1, 2, 3}));
  const v1::TenantStatus acme = StatusOf(report, "acme");
  EXPECT_EQ(acme.state(), v1::TENANT_STATE_PENDING);
  EXPECT_EQ(acme.version(), 1);
  EXPECT_TRUE(acme.held());
  EXPECT_FALSE(StatusOf(report, "globex").held());
  ASSERT_TRUE(records_.Get("acme").has_value());
  EXPECT_TRUE(records_.Get("acme")->held);

  // Recorded pending now: the next reconcile leaves it alone and says why.
  const ReconcileReport again = Reconcile(ShopSpec({"acme", "globex"}));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1}));
  const auto lines = lines_.Get();
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "revision 2: 2 tenants, 0 to change, 1 left pending (held), "
                      "target version 3"),
            lines.end());
}

// --- Hooks: steps of each tenant's action, each run at most once per tenant and key.

v1::ClusterSpec WithHooks(v1::ClusterSpec spec) {
  testing::AddHook(&spec, "after_tenant_created", "seed.sql", "INSERT INTO plans VALUES (1);");
  testing::AddHook(&spec, "before_migrate", "check.sql", "SELECT 1;");
  testing::AddHook(&spec, "after_migrate", "refresh.sql", "ANALYZE;");
  return spec;
}

TEST_F(ReconcilerTest, HooksRunAsTheirOwnStepsOnceEachWhenTheActionIsRepeated) {
  ASSERT_TRUE(Reconcile(WithHooks(ShopSpec({"acme", "globex"}, v1::MIGRATION_POLICY_AUTO, false,
                                           2)))
                  .status.ok());
  for (const std::string t : {"acme", "globex"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(admin_.hook_runs(t, "after_tenant_created"), 1);
    // Onboarding is not a migrate: the migrate hooks wait for one.
    EXPECT_EQ(admin_.hook_runs(t, "before_migrate"), 0);
    EXPECT_EQ(admin_.hook_runs(t, "after_migrate"), 0);
  }
  auto lines = lines_.Get();
  EXPECT_NE(std::find(lines.begin(), lines.end(), "acme: hook after_tenant_created (seed.sql) 0 ms"),
            lines.end());

  // A new migration: the migrate hooks run around it, once per tenant.
  ASSERT_TRUE(Reconcile(WithHooks(ShopSpec({"acme", "globex"}))).status.ok());
  // The same revision again, and a tenant's records lost (so it is onboarded again): nothing
  // runs twice.
  records_.Remove("globex").IgnoreError();
  const ReconcileReport again = Reconcile(WithHooks(ShopSpec({"acme", "globex"})));
  ASSERT_TRUE(again.status.ok()) << again.status;
  for (const std::string t : {"acme", "globex"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(admin_.hook_runs(t, "after_tenant_created"), 1);
    EXPECT_EQ(admin_.hook_runs(t, "before_migrate"), 1);
    EXPECT_EQ(admin_.hook_runs(t, "after_migrate"), 1);
    EXPECT_EQ(admin_.applied_count(t, 3), 1);
  }
  lines = lines_.Get();
  const auto before = std::find(lines.begin(), lines.end(), "acme: hook before_migrate (check.sql) 0 ms");
  const auto apply = std::find(lines.begin(), lines.end(), "acme: applying 3_add_index");
  const auto after = std::find(lines.begin(), lines.end(), "acme: hook after_migrate (refresh.sql) 0 ms");
  ASSERT_NE(before, lines.end());
  ASSERT_NE(apply, lines.end());
  ASSERT_NE(after, lines.end());
  EXPECT_LT(before, apply);
  EXPECT_LT(apply, after);
  EXPECT_NE(std::find(lines.begin(), lines.end(),
                      "globex: hook after_tenant_created (seed.sql) ran before; skipped"),
            lines.end());
}

TEST_F(ReconcilerTest, AFailingHookStopsItsTenantsLaterStepsAndTheOthersProceed) {
  for (const std::string t : {"acme", "globex", "initech"}) {
    admin_.AddTenant(t, {1});
    records_.Seed(t, v1::TENANT_STATE_READY, 1);
  }
  admin_.FailHook("globex", "before_migrate");

  const ReconcileReport report = Reconcile(WithHooks(ShopSpec({"acme", "globex", "initech"})));

  EXPECT_EQ(report.status.code(), absl::StatusCode::kAborted) << report.status;
  EXPECT_NE(report.status.message().find("globex: hook before_migrate (check.sql) failed"),
            std::string::npos)
      << report.status;
  // Its migrations were not applied, nor its after_migrate hook run.
  EXPECT_EQ(admin_.Applied("globex"), (std::set<int64_t>{1}));
  EXPECT_EQ(admin_.hook_runs("globex", "after_migrate"), 0);
  const v1::TenantStatus globex = StatusOf(report, "globex");
  EXPECT_EQ(globex.state(), v1::TENANT_STATE_FAILED);
  EXPECT_NE(globex.error().find("hook before_migrate (check.sql) failed"), std::string::npos);
  for (const std::string t : {"acme", "initech"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(admin_.Applied(t), (std::set<int64_t>{1, 2, 3}));
    EXPECT_EQ(StatusOf(report, t).state(), v1::TENANT_STATE_READY);
    EXPECT_EQ(admin_.hook_runs(t, "after_migrate"), 1);
  }

  // Fixed: the next reconcile runs it, then the migrations.
  admin_.ClearFailures();
  const ReconcileReport fixed = Reconcile(WithHooks(ShopSpec({"acme", "globex", "initech"})));
  ASSERT_TRUE(fixed.status.ok()) << fixed.status;
  EXPECT_EQ(admin_.Applied("globex"), (std::set<int64_t>{1, 2, 3}));
  EXPECT_EQ(admin_.hook_runs("globex", "before_migrate"), 1);
  EXPECT_EQ(admin_.hook_runs("globex", "after_migrate"), 1);
  EXPECT_EQ(admin_.hook_runs("acme", "after_migrate"), 1);
}

TEST_F(ReconcilerTest, AFailedAfterTenantCreatedHookIsTriedAgainByTheNextReconcile) {
  admin_.FailHook("acme", "after_tenant_created");
  const ReconcileReport report = Reconcile(WithHooks(ShopSpec({"acme"})));
  EXPECT_FALSE(report.status.ok());
  EXPECT_EQ(StatusOf(report, "acme").state(), v1::TENANT_STATE_FAILED);
  EXPECT_EQ(admin_.hook_runs("acme", "after_tenant_created"), 0);

  admin_.ClearFailures();
  const ReconcileReport again = Reconcile(WithHooks(ShopSpec({"acme"})));
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(admin_.hook_runs("acme", "after_tenant_created"), 1);
  EXPECT_EQ(StatusOf(again, "acme").state(), v1::TENANT_STATE_READY);
}

TEST_F(ReconcilerTest, PruneDropsTenantsThatLeftTheSpecAndForgetsThem) {
  ASSERT_TRUE(Reconcile(ShopSpec({"acme", "globex"})).status.ok());

  const ReconcileReport report =
      Reconcile(ShopSpec({"acme"}, v1::MIGRATION_POLICY_AUTO, /*prune=*/true));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(admin_.drops("globex"), 1);
  EXPECT_FALSE(admin_.Exists("globex"));
  EXPECT_FALSE(records_.Get("globex").has_value());
  EXPECT_EQ(Names(report), std::vector<std::string>{"acme"});
  EXPECT_EQ(admin_.drops("acme"), 0);
  EXPECT_TRUE(admin_.Exists("acme"));

  // Dropped once: a further reconcile has nothing of it left to do.
  ASSERT_TRUE(Reconcile(ShopSpec({"acme"}, v1::MIGRATION_POLICY_AUTO, true)).status.ok());
  EXPECT_EQ(admin_.total_drops(), 1);
}

TEST_F(ReconcilerTest, WithoutPruneATenantThatLeftIsKeptAsAnOrphanOnce) {
  ASSERT_TRUE(Reconcile(ShopSpec({"acme", "globex"})).status.ok());

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(StatusOf(report, "globex").state(), v1::TENANT_STATE_ORPHANED);
  EXPECT_EQ(StatusOf(report, "globex").version(), kTarget);
  EXPECT_TRUE(admin_.Exists("globex"));
  EXPECT_EQ(admin_.total_drops(), 0);

  const size_t puts = records_.puts().size();
  ASSERT_TRUE(Reconcile(ShopSpec({"acme"})).status.ok());
  EXPECT_EQ(records_.puts().size(), puts);

  // Back in the spec, it is checked again and ready, with nothing re-applied.
  const ReconcileReport back = Reconcile(ShopSpec({"acme", "globex"}));
  ASSERT_TRUE(back.status.ok()) << back.status;
  EXPECT_EQ(StatusOf(back, "globex").state(), v1::TENANT_STATE_READY);
  for (int64_t v : {1, 2, 3}) EXPECT_EQ(admin_.applied_count("globex", v), 1) << v;
}

TEST_F(ReconcilerTest, ATenantGoneFromPostgresAndTheSpecIsForgotten) {
  records_.Seed("vandelay", v1::TENANT_STATE_READY, 2);

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}, v1::MIGRATION_POLICY_AUTO, true));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_FALSE(records_.Get("vandelay").has_value());
  EXPECT_EQ(admin_.total_drops(), 0);
  EXPECT_EQ(Names(report), std::vector<std::string>{"acme"});
}

TEST_F(ReconcilerTest, ADatabaseThatIsNotOursIsLeftAlone) {
  admin_.AddTenant("stranger", {});

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}, v1::MIGRATION_POLICY_AUTO, true));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_TRUE(admin_.Exists("stranger"));
  EXPECT_EQ(admin_.drops("stranger"), 0);
  EXPECT_FALSE(records_.Get("stranger").has_value());
}

TEST_F(ReconcilerTest, AnOnboardingCutShortIsResumedWithoutRepeatingAMigration) {
  // Killed after migration 1 of acme's onboarding: its record still says creating.
  admin_.AddTenant("acme", {1});
  records_.Seed("acme", v1::TENANT_STATE_CREATING, 0);

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(StatusOf(report, "acme").state(), v1::TENANT_STATE_READY);
  EXPECT_EQ(StatusOf(report, "acme").version(), kTarget);
  EXPECT_EQ(admin_.applied_count("acme", 1), 0);
  EXPECT_EQ(admin_.applied_count("acme", 2), 1);
  EXPECT_EQ(admin_.applied_count("acme", 3), 1);
}

TEST_F(ReconcilerTest, AMigrationCutShortIsResumedWithoutRepeatingAMigration) {
  admin_.AddTenant("acme", {1, 2});
  records_.Seed("acme", v1::TENANT_STATE_MIGRATING, 1);

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(StatusOf(report, "acme").state(), v1::TENANT_STATE_READY);
  EXPECT_EQ(admin_.applied_count("acme", 2), 0);
  EXPECT_EQ(admin_.applied_count("acme", 3), 1);
  EXPECT_EQ(admin_.creates("acme"), 0);
}

TEST_F(ReconcilerTest, AdoptsATenantThatExistsButWasNeverRecorded) {
  admin_.AddTenant("acme", {1});

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}));

  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(StatusOf(report, "acme").state(), v1::TENANT_STATE_READY);
  EXPECT_EQ(StatusOf(report, "acme").version(), kTarget);
  EXPECT_EQ(admin_.applied_count("acme", 1), 0);
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1, 2, 3}));
}

TEST_F(ReconcilerTest, APutFailureIsANackNamingTheTenant) {
  records_.FailPut(absl::UnavailableError("the agent's database does not answer"), "globex");

  const ReconcileReport report = Reconcile(ShopSpec({"acme", "globex"}));

  EXPECT_EQ(report.status.code(), absl::StatusCode::kAborted);
  EXPECT_EQ(report.status.message(),
            "1 of 2 tenant changes failed: globex: the agent's database does not answer");
  EXPECT_EQ(StatusOf(report, "acme").state(), v1::TENANT_STATE_READY);
  EXPECT_FALSE(admin_.Exists("globex"));
}

TEST_F(ReconcilerTest, RefusesASpecForAnotherPostgresVersionNamingBoth) {
  admin_.set_major_version(16);

  const ReconcileReport report = Reconcile(ShopSpec({"acme"}));

  ExpectRefusedWithoutWriting(report, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(report.status.message(),
            "the spec asks for PostgreSQL 15; this agent's server is PostgreSQL 16");
  EXPECT_TRUE(report.tenants.empty());
}

TEST_F(ReconcilerTest, RefusesASpecWhoseFileDoesNotMatchItsSha256) {
  v1::ClusterSpec spec = ShopSpec({"acme"});
  spec.mutable_migrations()->mutable_files(0)->set_contents("DROP TABLE everything;");

  const ReconcileReport report = Reconcile(spec);

  ExpectRefusedWithoutWriting(report, absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(report.status.message(), "0001_init.up.sql"))
      << report.status;
}

TEST_F(ReconcilerTest, AStopBeforeReconcileIsReportedCancelled) {
  absl::Notification stop;
  stop.Notify();

  const ReconcileReport report = Reconcile(ShopSpec({"acme", "globex"}), &stop);

  ExpectRefusedWithoutWriting(report, absl::StatusCode::kCancelled);
  EXPECT_FALSE(admin_.Exists("acme"));
}

TEST_F(ReconcilerTest, TenantStatusesListTheVersionsNotAppliedYet) {
  TenantRecord record;
  record.name = "acme";
  record.state = v1::TENANT_STATE_PENDING;
  record.version = 1;
  record.error = "";
  record.updated_at = absl::FromUnixSeconds(1'800'000'000) + absl::Milliseconds(250);

  const auto statuses =
      TenantStatuses({{"acme", record}}, MigrationsOf(ShopSpec({"acme"})));

  ASSERT_EQ(statuses.size(), 1u);
  EXPECT_EQ(statuses[0].name(), "acme");
  EXPECT_EQ(statuses[0].state(), v1::TENANT_STATE_PENDING);
  EXPECT_EQ(statuses[0].version(), 1);
  EXPECT_EQ(statuses[0].target_version(), kTarget);
  EXPECT_EQ(std::vector<int64_t>(statuses[0].pending_versions().begin(),
                                 statuses[0].pending_versions().end()),
            (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(statuses[0].updated_at().seconds(), 1'800'000'000);
  EXPECT_EQ(statuses[0].updated_at().nanos(), 250'000'000);
}

}  // namespace
}  // namespace tether::agent
