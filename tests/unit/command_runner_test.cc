// CommandRunner over a fake PostgreSQL and fake tenant records: migrate (all tenants or one,
// clearing a hold, or setting it below the latest; refused before anything changes for an
// unknown tenant or version, or a version below a tenant's), cancel
// between tenants, rollback (refused whole when a version has no down file; resumed after a
// crash only down to its stored target; the tenant held afterwards), drop_tenant (refused for
// a tenant of the spec unless forced), hooks as steps, and reprovision through its callback.
#include "agent/commands/command_runner.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/notification.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_cluster_admin.h"
#include "tests/testing/fake_tenant_records.h"
#include "tests/testing/specs.h"

namespace tether::agent {
namespace {

// Migrations 1 and 2 can be rolled back; 3 has no down file unless `all_down`.
v1::ClusterSpec Spec(const std::vector<std::string>& tenants, bool all_down = false) {
  v1::ClusterSpec spec = testing::BaseSpec();
  testing::AddMigrationFile(&spec, "0001_init.up.sql", "CREATE TABLE orders (id int);");
  testing::AddMigrationFile(&spec, "0001_init.down.sql", "DROP TABLE orders;");
  testing::AddMigrationFile(&spec, "0002_total.up.sql", "ALTER TABLE orders ADD total int;");
  testing::AddMigrationFile(&spec, "0002_total.down.sql", "ALTER TABLE orders DROP total;");
  testing::AddMigrationFile(&spec, "0003_add_index.up.sql", "CREATE INDEX o ON orders (total);");
  if (all_down) testing::AddMigrationFile(&spec, "0003_add_index.down.sql", "DROP INDEX o;");
  for (const auto& t : tenants) spec.add_tenants()->set_name(t);
  return spec;
}

class CommandRunnerTest : public ::testing::Test {
 protected:
  CommandResult Run(const v1::Command& command, const v1::ClusterSpec& spec,
                    const nlohmann::json& detail = nlohmann::json::object(),
                    const absl::Notification* cancel = nullptr) {
    CommandRunner runner(&admin_, &tenants_, &clock_,
                         [this](const StepFn& line, const absl::Notification*) {
                           ++reprovisions_;
                           line("provisioner: started");
                           return reprovision_status_;
                         });
    CommandIo io;
    io.line = [this](const std::string& line) {
      lines_.push_back(line);
      if (on_line_) on_line_(line);
    };
    io.progress = [this](int done, int total, const std::string&) {
      progress_.push_back({done, total});
    };
    io.save_detail = [this](const nlohmann::json& detail) {
      saved_.push_back(detail);
      return absl::OkStatus();
    };
    return runner.Run(command, spec, detail, io, {cancel, &shutdown_});
  }

  static v1::Command Migrate(const std::string& tenant, int64_t to = 0) {
    v1::Command c;
    c.set_id("c-1");
    c.mutable_migrate()->set_tenant(tenant);
    c.mutable_migrate()->set_to_version(to);
    return c;
  }
  static v1::Command Rollback(const std::string& tenant, int steps) {
    v1::Command c;
    c.set_id("c-1");
    c.mutable_rollback()->set_tenant(tenant);
    c.mutable_rollback()->set_steps(steps);
    return c;
  }
  static v1::Command Drop(const std::string& tenant, bool force) {
    v1::Command c;
    c.set_id("c-1");
    c.mutable_drop_tenant()->set_tenant(tenant);
    c.mutable_drop_tenant()->set_force(force);
    return c;
  }

  // A refused command: FAILED with a one-line error, and nothing created, dropped, migrated,
  // rolled back or recorded.
  void ExpectRefusedWithoutWriting(const CommandResult& result, const std::string& error) {
    EXPECT_EQ(result.state, v1::COMMAND_STATE_FAILED);
    EXPECT_EQ(result.error, error);
    EXPECT_EQ(result.error.find('\n'), std::string::npos);
    EXPECT_FALSE(result.changed_tenants);
    EXPECT_EQ(admin_.total_creates(), 0);
    EXPECT_EQ(admin_.total_drops(), 0);
    EXPECT_EQ(admin_.total_applied(), 0);
    EXPECT_EQ(admin_.total_rolled_back(), 0);
    EXPECT_TRUE(tenants_.puts().empty());
    EXPECT_TRUE(saved_.empty());
  }

  testing::FakeClock clock_;
  testing::FakeClusterAdmin admin_;
  testing::FakeTenantRecords tenants_;
  absl::Notification shutdown_;
  std::vector<std::string> lines_;
  std::vector<std::pair<int, int>> progress_;
  std::vector<nlohmann::json> saved_;
  std::function<void(const std::string&)> on_line_;
  int reprovisions_ = 0;
  absl::Status reprovision_status_;
};

TEST_F(CommandRunnerTest, MigrateBringsEveryTenantToTheLatestAndClearsAHold) {
  admin_.AddTenant("acme", {1});
  tenants_.Seed("acme", v1::TENANT_STATE_PENDING, 1, /*held=*/true);
  admin_.AddTenant("globex", {1, 2});
  tenants_.Seed("globex", v1::TENANT_STATE_PENDING, 2);

  const CommandResult result = Run(Migrate(""), Spec({"acme", "globex", "initech"}));

  ASSERT_EQ(result.state, v1::COMMAND_STATE_SUCCEEDED) << result.error;
  EXPECT_TRUE(result.changed_tenants);
  for (const std::string t : {"acme", "globex", "initech"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(admin_.Applied(t), (std::set<int64_t>{1, 2, 3}));
    ASSERT_TRUE(tenants_.Get(t).has_value());
    EXPECT_EQ(tenants_.Get(t)->state, v1::TENANT_STATE_READY);
    EXPECT_FALSE(tenants_.Get(t)->held);
  }
  EXPECT_EQ(admin_.creates("initech"), 1);  // not there yet: onboarded
  ASSERT_FALSE(progress_.empty());
  EXPECT_EQ(progress_.back(), std::make_pair(3, 3));
}

TEST_F(CommandRunnerTest, MigrateBelowTheLatestHoldsTheTenantThereAndToTheLatestClearsIt) {
  admin_.AddTenant("acme", {1});
  tenants_.Seed("acme", v1::TENANT_STATE_PENDING, 1);

  CommandResult result = Run(Migrate("acme", 2), Spec({"acme"}));
  ASSERT_EQ(result.state, v1::COMMAND_STATE_SUCCEEDED) << result.error;
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1, 2}));
  ASSERT_TRUE(tenants_.Get("acme").has_value());
  EXPECT_EQ(tenants_.Get("acme")->version, 2);
  EXPECT_TRUE(tenants_.Get("acme")->held);  // the next reconcile leaves it at 2

  result = Run(Migrate("acme", 3), Spec({"acme"}));
  ASSERT_EQ(result.state, v1::COMMAND_STATE_SUCCEEDED) << result.error;
  EXPECT_EQ(tenants_.Get("acme")->version, 3);
  EXPECT_FALSE(tenants_.Get("acme")->held);
}

TEST_F(CommandRunnerTest, MigrateBelowATenantsVersionIsRefusedPointingToRollback) {
  admin_.AddTenant("acme", {1, 2, 3});
  tenants_.Seed("acme", v1::TENANT_STATE_READY, 3);
  admin_.AddTenant("globex", {1});
  tenants_.Seed("globex", v1::TENANT_STATE_READY, 1);
  const size_t seeded_puts = tenants_.puts().size();
  const CommandResult result = Run(Migrate("", 2), Spec({"acme", "globex"}));
  EXPECT_EQ(tenants_.puts().size(), seeded_puts);
  EXPECT_EQ(result.state, v1::COMMAND_STATE_FAILED);
  EXPECT_EQ(result.error,
            "tenant acme is at version 3, above 2; a migrate does not go down, use rollback; "
            "nothing was migrated");
  EXPECT_FALSE(result.changed_tenants);
  EXPECT_EQ(admin_.total_applied(), 0);
  EXPECT_EQ(admin_.total_rolled_back(), 0);
  EXPECT_EQ(tenants_.Get("acme")->version, 3);
  EXPECT_EQ(tenants_.Get("globex")->version, 1);
}

TEST_F(CommandRunnerTest, MigrateOneTenantToAVersionLeavesTheOthers) {
  admin_.AddTenant("acme", {1});
  tenants_.Seed("acme", v1::TENANT_STATE_PENDING, 1);
  admin_.AddTenant("globex", {1});
  tenants_.Seed("globex", v1::TENANT_STATE_PENDING, 1);

  const CommandResult result = Run(Migrate("acme", 2), Spec({"acme", "globex"}));

  ASSERT_EQ(result.state, v1::COMMAND_STATE_SUCCEEDED) << result.error;
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1, 2}));
  EXPECT_EQ(tenants_.Get("acme")->state, v1::TENANT_STATE_PENDING);  // below the latest
  EXPECT_EQ(admin_.Applied("globex"), (std::set<int64_t>{1}));
}

TEST_F(CommandRunnerTest, MigrateRefusesATenantNotInTheSpecOrAVersionAboveTheLatest) {
  admin_.AddTenant("acme", {1});
  ExpectRefusedWithoutWriting(Run(Migrate("stranger"), Spec({"acme"})),
                              "tenant stranger is not in the cluster's spec; nothing was migrated");
  ExpectRefusedWithoutWriting(
      Run(Migrate("acme", 9), Spec({"acme"})),
      "version 9 is above the spec's latest migration (3); nothing was migrated");
}

TEST_F(CommandRunnerTest, ACancelBetweenTenantsStopsBeforeTheNextOne) {
  absl::Notification cancel;
  // The operator cancels while the first tenant is being migrated.
  on_line_ = [&](const std::string& line) {
    if (absl::StartsWith(line, "acme: applying") && !cancel.HasBeenNotified()) cancel.Notify();
  };

  const CommandResult result =
      Run(Migrate(""), Spec({"acme", "globex", "initech"}), nlohmann::json::object(), &cancel);

  EXPECT_EQ(result.state, v1::COMMAND_STATE_CANCELLED);
  EXPECT_EQ(result.error, "cancelled after 1 of 3 steps");
  EXPECT_TRUE(result.changed_tenants);
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1, 2, 3}));  // its step finished
  EXPECT_FALSE(admin_.Exists("globex"));
  EXPECT_FALSE(admin_.Exists("initech"));
  EXPECT_TRUE(tenants_.StatesOf("globex").empty());
}

TEST_F(CommandRunnerTest, AShutdownBetweenTenantsLeavesTheCommandToBeResumed) {
  on_line_ = [&](const std::string& line) {
    if (absl::StartsWith(line, "acme: created at version") && !shutdown_.HasBeenNotified()) {
      shutdown_.Notify();
    }
  };
  const CommandResult result = Run(Migrate(""), Spec({"acme", "globex"}));
  EXPECT_EQ(result.state, v1::COMMAND_STATE_RUNNING);
  EXPECT_FALSE(admin_.Exists("globex"));
}

TEST_F(CommandRunnerTest, RollbackPastAVersionWithoutADownFileChangesNothing) {
  admin_.AddTenant("acme", {1, 2, 3});
  tenants_.Seed("acme", v1::TENANT_STATE_READY, 3);

  ExpectRefusedWithoutWriting(
      Run(Rollback("acme", 2), Spec({"acme"})),
      "migration 3 (0003_add_index) has no down file; nothing was rolled back");
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1, 2, 3}));
}

TEST_F(CommandRunnerTest, RollbackUndoesTheNewestStepsAndHoldsTheTenant) {
  admin_.AddTenant("acme", {1, 2, 3});
  tenants_.Seed("acme", v1::TENANT_STATE_READY, 3);

  const CommandResult result = Run(Rollback("acme", 2), Spec({"acme"}, /*all_down=*/true));

  ASSERT_EQ(result.state, v1::COMMAND_STATE_SUCCEEDED) << result.error;
  EXPECT_TRUE(result.changed_tenants);
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1}));
  EXPECT_EQ(admin_.rolled_back_count("acme", 3), 1);
  EXPECT_EQ(admin_.rolled_back_count("acme", 2), 1);
  ASSERT_EQ(saved_.size(), 1u);  // decided once, before anything changed
  EXPECT_EQ(saved_[0]["target_version"], 1);
  const auto record = tenants_.Get("acme");
  ASSERT_TRUE(record.has_value());
  EXPECT_EQ(record->state, v1::TENANT_STATE_PENDING);
  EXPECT_EQ(record->version, 1);
  EXPECT_TRUE(record->held);
  // Recorded at the target before anything was undone.
  EXPECT_EQ(tenants_.StatesOf("acme"), (std::vector<v1::TenantState>{
                                           v1::TENANT_STATE_MIGRATING, v1::TENANT_STATE_PENDING}));
  EXPECT_EQ(tenants_.puts().front().version, 1);
}

TEST_F(CommandRunnerTest, ARollbackResumedAfterACrashUndoesOnlyDownToItsStoredTarget) {
  // The first attempt decided "down to 2" and undid 3 before the agent died.
  admin_.AddTenant("acme", {1, 2});
  tenants_.Seed("acme", v1::TENANT_STATE_MIGRATING, 2, /*held=*/true);

  const CommandResult result = Run(Rollback("acme", 1), Spec({"acme"}, /*all_down=*/true),
                                   nlohmann::json{{"target_version", 2}, {"from_version", 3}});

  ASSERT_EQ(result.state, v1::COMMAND_STATE_SUCCEEDED) << result.error;
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1, 2}));  // not one more
  EXPECT_EQ(admin_.total_rolled_back(), 0);
  EXPECT_TRUE(saved_.empty());
  EXPECT_EQ(tenants_.Get("acme")->version, 2);
  EXPECT_TRUE(tenants_.Get("acme")->held);
}

TEST_F(CommandRunnerTest, RollbackRefusesATenantThatIsNotThere) {
  ExpectRefusedWithoutWriting(Run(Rollback("acme", 1), Spec({"acme"})),
                              "tenant acme does not exist on this agent; nothing was rolled back");
}

TEST_F(CommandRunnerTest, DropRefusesATenantOfTheSpecUnlessForcedAndIsFineWhenItIsGone) {
  admin_.AddTenant("acme", {1});
  tenants_.Seed("acme", v1::TENANT_STATE_READY, 1);
  ExpectRefusedWithoutWriting(Run(Drop("acme", false), Spec({"acme"})),
                              "tenant acme is in the cluster's spec; remove it from the spec "
                              "first, or force; nothing was dropped");
  EXPECT_TRUE(admin_.Exists("acme"));

  const CommandResult forced = Run(Drop("acme", true), Spec({"acme"}));
  ASSERT_EQ(forced.state, v1::COMMAND_STATE_SUCCEEDED) << forced.error;
  EXPECT_FALSE(admin_.Exists("acme"));
  EXPECT_FALSE(tenants_.Get("acme").has_value());

  const CommandResult again = Run(Drop("acme", true), Spec({"acme"}));
  EXPECT_EQ(again.state, v1::COMMAND_STATE_SUCCEEDED) << again.error;
  EXPECT_EQ(admin_.drops("acme"), 1);
  EXPECT_EQ(lines_.back(), "acme: already gone");
}

TEST_F(CommandRunnerTest, AFailingHookStopsItsTenantAndTheOthersStillProceed) {
  for (const std::string t : {"acme", "globex", "initech"}) {
    admin_.AddTenant(t, {1});
    tenants_.Seed(t, v1::TENANT_STATE_PENDING, 1);
  }
  v1::ClusterSpec spec = Spec({"acme", "globex", "initech"});
  testing::AddHook(&spec, "before_migrate", "check.sql", "SELECT 1;");
  admin_.FailHook("acme", "before_migrate");

  const CommandResult result = Run(Migrate(""), spec);

  EXPECT_EQ(result.state, v1::COMMAND_STATE_FAILED);
  EXPECT_TRUE(absl::StartsWith(result.error, "1 of 3 tenants failed: acme: hook before_migrate "
                                             "(check.sql) failed"))
      << result.error;
  EXPECT_EQ(admin_.Applied("acme"), (std::set<int64_t>{1}));
  EXPECT_EQ(tenants_.Get("acme")->state, v1::TENANT_STATE_FAILED);
  for (const std::string t : {"globex", "initech"}) {
    EXPECT_EQ(admin_.Applied(t), (std::set<int64_t>{1, 2, 3})) << t;
    EXPECT_EQ(admin_.hook_runs(t, "before_migrate"), 1) << t;
  }
}

TEST_F(CommandRunnerTest, ReprovisionRunsProvisioningThroughItsCallback) {
  v1::Command c;
  c.set_id("c-1");
  c.mutable_reprovision();
  const CommandResult ok = Run(c, v1::ClusterSpec());
  EXPECT_EQ(ok.state, v1::COMMAND_STATE_SUCCEEDED) << ok.error;
  EXPECT_EQ(reprovisions_, 1);

  reprovision_status_ = absl::UnavailableError("initdb: permission denied");
  const CommandResult failed = Run(c, v1::ClusterSpec());
  EXPECT_EQ(failed.state, v1::COMMAND_STATE_FAILED);
  EXPECT_EQ(failed.error, "reprovisioning failed: initdb: permission denied");
}

TEST(ValidateCommandTest, RefusesWhatCannotBeRunSafely) {
  v1::Command c;
  c.set_id("c-1");
  c.mutable_rollback()->set_tenant("acme");
  EXPECT_TRUE(ValidateCommand(c).ok());
  c.mutable_rollback()->set_steps(1001);
  EXPECT_EQ(ValidateCommand(c).code(), absl::StatusCode::kInvalidArgument);
  c.mutable_rollback()->set_steps(-1);
  EXPECT_EQ(ValidateCommand(c).code(), absl::StatusCode::kInvalidArgument);
  c.mutable_rollback()->set_steps(1);
  c.mutable_rollback()->set_tenant("Robert'); DROP TABLE students;--");
  EXPECT_EQ(ValidateCommand(c).code(), absl::StatusCode::kInvalidArgument);
  c.mutable_rollback()->set_tenant("acme");
  c.set_id(std::string(129, 'x'));
  EXPECT_EQ(ValidateCommand(c).code(), absl::StatusCode::kInvalidArgument);
  c.set_id("c 1");
  EXPECT_EQ(ValidateCommand(c).code(), absl::StatusCode::kInvalidArgument);
  v1::Command none;
  none.set_id("c-2");
  EXPECT_EQ(ValidateCommand(none).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::agent
