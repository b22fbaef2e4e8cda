// The agent's ReconcileLoop over a fake environment (fake ClusterAdmin and records, a fake
// clock): nothing is reconciled before PostgreSQL is ready; the newest revision wins over the
// ones that arrived before it; a failed revision is retried after its backoff; an applied one
// is reconciled again at the resync interval; the applied revision is persisted and reported;
// tasks wait for a desired state, for PostgreSQL and for their delay.
#include "agent/reconcile/reconcile_loop.h"

#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/mutex.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_cluster_admin.h"
#include "tests/testing/fake_tenant_records.h"
#include "tests/testing/poll.h"
#include "tests/testing/specs.h"

namespace tether::agent {
namespace {

using testing::PollUntil;

// Hands the reconciler the one fake admin the test inspects.
class ForwardingAdmin final : public ClusterAdmin {
 public:
  explicit ForwardingAdmin(ClusterAdmin* to) : to_(to) {}
  absl::StatusOr<std::set<std::string>> ListTenants() override { return to_->ListTenants(); }
  absl::Status CreateTenant(const std::string& t) override { return to_->CreateTenant(t); }
  absl::StatusOr<SchemaFingerprint> Fingerprint(const std::string& t) override {
    return to_->Fingerprint(t);
  }
  absl::StatusOr<int> ApplyMigrations(const std::string& t, const std::vector<common::Migration>& m,
                                      std::optional<int64_t> to, const StepFn& step) override {
    return to_->ApplyMigrations(t, m, to, step);
  }
  absl::StatusOr<int> RollbackMigrations(const std::string& t,
                                         const std::vector<common::Migration>& m,
                                         int64_t to_version, const StepFn& step) override {
    return to_->RollbackMigrations(t, m, to_version, step);
  }
  absl::StatusOr<bool> RunHook(const std::string& t, const std::string& event,
                               const std::string& key, const std::string& sql) override {
    return to_->RunHook(t, event, key, sql);
  }
  absl::StatusOr<common::MigrationReport> MigrationStatus(
      const std::string& t, const std::vector<common::Migration>& m) override {
    return to_->MigrationStatus(t, m);
  }
  absl::Status DropTenant(const std::string& t) override { return to_->DropTenant(t); }
  absl::StatusOr<int> Ping() override { return to_->Ping(); }

 private:
  ClusterAdmin* to_;
};

class FakeEnvironment final : public ReconcileEnvironment {
 public:
  bool Ready() override {
    absl::MutexLock lock(&mu_);
    ++ready_calls_;
    return ready_;
  }
  int ready_calls() {
    absl::MutexLock lock(&mu_);
    return ready_calls_;
  }
  absl::StatusOr<std::unique_ptr<ClusterAdmin>> Admin(const v1::ClusterSpec&) override {
    return std::unique_ptr<ClusterAdmin>(std::make_unique<ForwardingAdmin>(&admin));
  }
  absl::StatusOr<TenantRecords*> Records() override { return &records; }
  absl::StatusOr<int64_t> LoadAppliedRevision() override {
    absl::MutexLock lock(&mu_);
    return saved_;
  }
  absl::Status SaveAppliedRevision(int64_t revision) override {
    absl::MutexLock lock(&mu_);
    saved_ = revision;
    return absl::OkStatus();
  }
  void SetReady(bool ready = true) {
    absl::MutexLock lock(&mu_);
    ready_ = ready;
  }
  int64_t saved() {
    absl::MutexLock lock(&mu_);
    return saved_;
  }
  void set_saved(int64_t revision) {
    absl::MutexLock lock(&mu_);
    saved_ = revision;
  }

  testing::FakeClusterAdmin admin;
  testing::FakeTenantRecords records;

 private:
  absl::Mutex mu_;
  bool ready_ = false;
  int ready_calls_ = 0;
  int64_t saved_ = 0;
};

class ReconcileLoopTest : public ::testing::Test {
 protected:
  ReconcileLoopTest()
      : random_({0.0}),
        loop_(&env_, &clock_, &random_,
              [this](const ReconcileReport& report) {
                absl::MutexLock lock(&mu_);
                reports_.push_back(report);
              },
              Options()) {}
  ~ReconcileLoopTest() override {
    stop_.Notify();
    if (thread_.joinable()) thread_.join();
  }

  static ReconcileLoopOptions Options() {
    ReconcileLoopOptions options;
    options.retry = {absl::Seconds(2), absl::Minutes(5), 2.0, 0.0};
    options.resync = absl::Minutes(5);
    options.ready_poll = absl::Milliseconds(1);
    return options;
  }

  void Start() {
    thread_ = std::thread([this] {
      loop_.Run(&stop_, [this](int64_t applied) {
        absl::MutexLock lock(&mu_);
        loaded_ = applied;
      });
    });
  }

  static v1::ClusterSpec Spec(std::vector<std::string> tenants) {
    v1::ClusterSpec spec = testing::BaseSpec();
    for (const auto& t : tenants) spec.add_tenants()->set_name(t);
    testing::AddMigrationFile(&spec, "0001_init.up.sql", "CREATE TABLE t (id int);");
    testing::AddMigrationFile(&spec, "0002_more.up.sql", "ALTER TABLE t ADD COLUMN x int;");
    return spec;
  }

  std::vector<ReconcileReport> Reports() {
    absl::MutexLock lock(&mu_);
    return reports_;
  }
  size_t ReportCount() { return Reports().size(); }

  FakeEnvironment env_;
  testing::FakeClock clock_;
  testing::FakeRandom random_;
  ReconcileLoop loop_;
  absl::Notification stop_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<ReconcileReport> reports_;
  std::optional<int64_t> loaded_;
};

TEST_F(ReconcileLoopTest, WaitsForPostgresThenReconcilesOnlyTheNewestRevision) {
  env_.set_saved(7);
  Start();
  loop_.Desire(8, Spec({"acme"}));
  loop_.Desire(9, Spec({"acme", "globex"}));
  loop_.Desire(8, Spec({"stale"}));  // late and older: ignored
  // PostgreSQL is not ready: nothing happens, however long the loop waits.
  ASSERT_TRUE(PollUntil([&] { return clock_.sleepers() > 0; }));
  clock_.Advance(absl::Minutes(10));
  EXPECT_EQ(ReportCount(), 0u);
  EXPECT_EQ(env_.admin.total_creates(), 0);

  env_.SetReady();
  clock_.Advance(absl::Seconds(1));  // the loop's next look at readiness
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 1; }));
  const auto report = Reports()[0];
  EXPECT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(report.revision, 9);
  EXPECT_EQ(report.tenants.size(), 2u);
  EXPECT_TRUE(env_.admin.Exists("globex"));
  EXPECT_FALSE(env_.admin.Exists("stale"));
  EXPECT_EQ(env_.saved(), 9);
  EXPECT_EQ(loop_.applied_revision(), 9);
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(loaded_, 7);
}

TEST_F(ReconcileLoopTest, AFailedRevisionIsRetriedAfterItsBackoffAndANewerOneAtOnce) {
  env_.SetReady();
  env_.admin.FailMigration("acme", 2);
  Start();
  loop_.Desire(1, Spec({"acme"}));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 1; }));
  EXPECT_FALSE(Reports()[0].status.ok());
  EXPECT_NE(Reports()[0].status.message().find("acme"), std::string::npos);
  EXPECT_EQ(env_.saved(), 0);  // the last good revision stays

  // Not before the backoff (2 s)...
  clock_.Advance(absl::Seconds(1));
  EXPECT_EQ(ReportCount(), 1u);
  // ...and after it, retried: the fix landed in the database meanwhile.
  env_.admin.ClearFailures();
  clock_.Advance(absl::Seconds(2));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 2; }));
  EXPECT_TRUE(Reports()[1].status.ok()) << Reports()[1].status;
  EXPECT_EQ(env_.saved(), 1);

  // A newer revision does not wait for any timer.
  loop_.Desire(2, Spec({"acme", "globex"}));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 3; }));
  EXPECT_EQ(Reports()[2].revision, 2);
  EXPECT_EQ(env_.saved(), 2);
}

TEST_F(ReconcileLoopTest, AnAppliedRevisionIsReconciledAgainAtTheResyncInterval) {
  env_.SetReady();
  Start();
  loop_.Desire(1, Spec({"acme"}));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 1; }));
  const int applied = env_.admin.total_applied();
  // The same revision again from the link (a reconnect): not reconciled again.
  loop_.Desire(1, Spec({"acme"}));
  clock_.Advance(absl::Minutes(4));
  EXPECT_EQ(ReportCount(), 1u);
  // Drift: the tenant's database was dropped by hand; the resync repairs it.
  ASSERT_TRUE(env_.admin.DropTenant("acme").ok());
  clock_.Advance(absl::Minutes(2));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 2; }));
  EXPECT_TRUE(Reports()[1].status.ok()) << Reports()[1].status;
  EXPECT_TRUE(env_.admin.Exists("acme"));
  EXPECT_EQ(env_.admin.total_applied(), applied + 2);
}

// Commands run on the loop's thread between reconciles, with the newest spec it knows; one
// that changed tenants gets a fresh report of the same revision at once; the first reconcile
// of an apply command's revision sends its lines as that command's.
TEST_F(ReconcileLoopTest, TasksRunBetweenReconcilesAndAChangeIsReportedAgainAtOnce) {
  std::vector<std::string> apply_lines;
  loop_.set_command_lines([&](const std::string& command_id) -> StepFn {
    return [&apply_lines, command_id](const std::string& line) {
      apply_lines.push_back(command_id + " " + line);
    };
  });
  env_.SetReady();
  Start();
  loop_.Desire(3, Spec({"acme"}), "apply-3");
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 1; }));
  ASSERT_FALSE(apply_lines.empty());
  EXPECT_EQ(apply_lines.front(), "apply-3 revision 3: 1 tenants, 1 to change, target version 2");
  const size_t applied_lines = apply_lines.size();

  absl::Notification ran;
  absl::StatusOr<int64_t> seen_revision = absl::UnknownError("not run");
  absl::StatusCode too_new = absl::StatusCode::kOk;
  loop_.Schedule([&](const absl::Notification*) {
    auto env = loop_.ForCommand(3);
    seen_revision = env.ok() ? absl::StatusOr<int64_t>(env->revision) : env.status();
    too_new = loop_.ForCommand(4).status().code();
    if (env.ok()) (void)env->admin->DropTenant("acme");  // the command changed a tenant
    loop_.ReconcileNow();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(absl::Seconds(60)));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 2; }));
  ASSERT_TRUE(seen_revision.ok()) << seen_revision.status();
  EXPECT_EQ(*seen_revision, 3);
  EXPECT_EQ(too_new, absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Reports()[1].revision, 3);
  EXPECT_TRUE(env_.admin.Exists("acme"));  // the reconcile after it restored the spec
  EXPECT_EQ(apply_lines.size(), applied_lines);  // later reconciles are not the command's
}

TEST_F(ReconcileLoopTest, TasksWaitForPostgresAndFindOutWhetherADesiredStateHasCome) {
  env_.SetReady();
  absl::Mutex seen_mu;
  std::vector<absl::StatusCode> seen;  // ForCommand as each task found it
  auto task = [&](const absl::Notification*) {
    const absl::StatusCode code = loop_.ForCommand(0).status().code();
    absl::MutexLock lock(&seen_mu);
    seen.push_back(code);
  };
  auto seen_count = [&] {
    absl::MutexLock lock(&seen_mu);
    return seen.size();
  };
  // A command resumed at start-up, before any desired state arrived: it runs (a reprovision
  // needs none) and learns that there is none yet, which its dispatcher retries later.
  loop_.Schedule(task);
  Start();
  ASSERT_TRUE(PollUntil([&] { return seen_count() == 1; }));
  loop_.Desire(3, Spec({"acme"}));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 1; }));

  // PostgreSQL went away: a task waits until it is back.
  env_.SetReady(false);
  loop_.Schedule(task);
  const int calls = env_.ready_calls();
  ASSERT_TRUE(PollUntil([&] { return env_.ready_calls() >= calls + 3; }));  // it looked, twice
  EXPECT_EQ(seen_count(), 1u);
  env_.SetReady();
  ASSERT_TRUE(PollUntil([&] { return seen_count() == 2; }));
  absl::MutexLock lock(&seen_mu);
  EXPECT_EQ(seen, (std::vector<absl::StatusCode>{absl::StatusCode::kUnavailable,
                                                 absl::StatusCode::kOk}));
}

TEST_F(ReconcileLoopTest, ATaskScheduledWithADelayWaitsForIt) {
  env_.SetReady();
  Start();
  loop_.Desire(3, Spec({"acme"}));
  ASSERT_TRUE(PollUntil([&] { return ReportCount() == 1; }));
  absl::Notification in_20s, in_10s;
  loop_.Schedule([&](const absl::Notification*) { in_20s.Notify(); }, absl::Seconds(20));
  loop_.Schedule([&](const absl::Notification*) { in_10s.Notify(); }, absl::Seconds(10));
  clock_.Advance(absl::Seconds(10));
  // Due first, though scheduled after one not due yet.
  ASSERT_TRUE(in_10s.WaitForNotificationWithTimeout(absl::Seconds(60)));
  EXPECT_FALSE(in_20s.HasBeenNotified());
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(in_20s.WaitForNotificationWithTimeout(absl::Seconds(60)));
}

}  // namespace
}  // namespace tether::agent
