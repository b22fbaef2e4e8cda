// The agent's own records against a real PostgreSQL after its migrations: PgCommandRecords keeps
// a command whole (so a restart can resume it), its state, attempt, detail and steps, lists
// only the unfinished ones (by start, then by id as a number), replaces a record in place,
// and creates one only where there is none; PgTenantRecords keeps a tenant's hold; and the
// agent's migrations go down and up again cleanly.
#include "agent/commands/pg_command_records.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "agent/tenants/pg_tenant_records.h"
#include "common/pg/migrator.h"
#include "tests/testing/postgres_server.h"

namespace tether::agent {
std::vector<common::MigrationFile> AgentMigrationFiles();

namespace {

class CommandRecordsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    auto own = common::ParseMigrations(AgentMigrationFiles());
    ASSERT_TRUE(own.ok()) << own.status();
    migrations_ = *own;
    ASSERT_TRUE(Migrator().Up().ok());
  }

  common::Migrator Migrator() {
    common::MigratorOptions options;
    options.set_name = "tether-agent";
    return common::Migrator(url_, migrations_, options, common::RealClock::Get());
  }

  static CommandRecord Rollback(const std::string& id) {
    CommandRecord record;
    record.id = id;
    record.command.set_id(id);
    record.command.mutable_rollback()->set_tenant("acme");
    record.command.mutable_rollback()->set_steps(2);
    record.command.set_revision(7);
    record.kind = CommandKind(record.command);
    record.state = v1::COMMAND_STATE_QUEUED;
    record.started_at = absl::FromUnixMicros(1'800'000'000'123'456);
    return record;
  }

  std::string url_;
  std::vector<common::Migration> migrations_;
};

TEST_F(CommandRecordsTest, ARecordComesBackWholeAndIsReplacedInPlace) {
  PgCommandRecords records(url_);
  auto missing = records.Get("c-1");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());

  CommandRecord record = Rollback("c-1");
  ASSERT_TRUE(records.Put(record).ok());
  auto got = records.Get("c-1");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->kind, "rollback");
  EXPECT_EQ((*got)->state, v1::COMMAND_STATE_QUEUED);
  EXPECT_EQ((*got)->command.SerializeAsString(), record.command.SerializeAsString());
  EXPECT_EQ((*got)->attempt, 0);
  EXPECT_EQ((*got)->detail, nlohmann::json::object());
  EXPECT_EQ((*got)->started_at, record.started_at);
  EXPECT_FALSE((*got)->finished_at.has_value());

  record.state = v1::COMMAND_STATE_FAILED;
  record.attempt = 2;
  record.detail = {{"target_version", 1}};
  record.steps_done = 1;
  record.steps_total = 1;
  record.error = "migration 3 (0003_x) has no down file; nothing was rolled back";
  record.finished_at = record.started_at + absl::Seconds(3);
  ASSERT_TRUE(records.Put(record).ok());
  got = records.Get("c-1");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->state, v1::COMMAND_STATE_FAILED);
  EXPECT_EQ((*got)->attempt, 2);
  EXPECT_EQ((*got)->detail["target_version"], 1);
  EXPECT_EQ((*got)->steps_done, 1);
  EXPECT_EQ((*got)->steps_total, 1);
  EXPECT_EQ((*got)->error, record.error);
  EXPECT_EQ((*got)->finished_at, record.finished_at);

  pqxx::connection c(url_);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM agent_commands")[0].as<int>(), 1);
}

TEST_F(CommandRecordsTest, OnlyQueuedAndRunningCommandsAreUnfinished) {
  PgCommandRecords records(url_);
  const std::vector<std::pair<std::string, v1::CommandState>> states = {
      {"a-queued", v1::COMMAND_STATE_QUEUED},       {"b-running", v1::COMMAND_STATE_RUNNING},
      {"c-done", v1::COMMAND_STATE_SUCCEEDED},      {"d-failed", v1::COMMAND_STATE_FAILED},
      {"e-cancelled", v1::COMMAND_STATE_CANCELLED}};
  for (const auto& [id, state] : states) {
    CommandRecord record = Rollback(id);
    record.state = state;
    ASSERT_TRUE(records.Put(record).ok()) << id;
  }
  auto unfinished = records.ListUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].id, "a-queued");
  EXPECT_EQ((*unfinished)[1].id, "b-running");
  EXPECT_EQ((*unfinished)[1].command.rollback().tenant(), "acme");
}

TEST_F(CommandRecordsTest, CreateInsertsOnlyANewRecordAndLeavesAnExistingOne) {
  PgCommandRecords records(url_);
  CommandRecord record = Rollback("7");
  auto created = records.Create(record);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE(*created);

  record.state = v1::COMMAND_STATE_SUCCEEDED;
  record.finished_at = record.started_at + absl::Seconds(1);
  ASSERT_TRUE(records.Put(record).ok());
  CommandRecord again = Rollback("7");  // QUEUED, from a second delivery
  created = records.Create(again);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_FALSE(*created);
  auto got = records.Get("7");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->state, v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(CommandRecordsTest, UnfinishedCommandsStartedTogetherComeInTheOrderOfTheirIds) {
  PgCommandRecords records(url_);
  for (const std::string id : {"100", "10", "9", "99"}) {
    ASSERT_TRUE(records.Put(Rollback(id)).ok()) << id;
  }
  auto unfinished = records.ListUnfinished();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  std::vector<std::string> ids;
  for (const auto& r : *unfinished) ids.push_back(r.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"9", "10", "99", "100"}));
}

TEST_F(CommandRecordsTest, TenantRecordsKeepTheHold) {
  PgTenantRecords tenants(url_);
  TenantRecord record;
  record.name = "acme";
  record.state = v1::TENANT_STATE_PENDING;
  record.version = 1;
  record.held = true;
  record.updated_at = absl::FromUnixSeconds(1'800'000'000);
  ASSERT_TRUE(tenants.Put(record).ok());
  auto listed = tenants.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_EQ(listed->count("acme"), 1u);
  EXPECT_TRUE(listed->at("acme").held);

  record.held = false;
  ASSERT_TRUE(tenants.Put(record).ok());
  listed = tenants.List();
  ASSERT_TRUE(listed.ok());
  EXPECT_FALSE(listed->at("acme").held);
}

// How a tenant was onboarded is written once; later writes of its record (a migrate) keep it.
TEST_F(CommandRecordsTest, ATenantsOnboardingIsKeptByLaterWrites) {
  PgTenantRecords tenants(url_);
  TenantRecord record;
  record.name = "acme";
  record.state = v1::TENANT_STATE_READY;
  record.version = 3;
  record.onboarding = "template";
  record.fingerprint = std::string(64, 'a');
  record.replay_fingerprint = std::string(64, 'a');
  record.updated_at = absl::FromUnixSeconds(1'800'000'000);
  ASSERT_TRUE(tenants.Put(record).ok());
  TenantRecord later = record;
  later.state = v1::TENANT_STATE_MIGRATING;
  later.onboarding = later.fingerprint = later.replay_fingerprint = "";
  ASSERT_TRUE(tenants.Put(later).ok());
  auto listed = tenants.List();
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(listed->at("acme").state, v1::TENANT_STATE_MIGRATING);
  EXPECT_EQ(listed->at("acme").onboarding, "template");
  EXPECT_EQ(listed->at("acme").fingerprint, std::string(64, 'a'));
  EXPECT_EQ(listed->at("acme").replay_fingerprint, std::string(64, 'a'));
}

TEST_F(CommandRecordsTest, TheAgentsMigrationsGoDownAndUpAgain) {
  auto down = Migrator().Down(4);  // 0006 (the leader's lease) back to 0003 (held)
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(*down, 4);
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM information_schema.columns "
                       "WHERE table_name = 'tenants' AND column_name IN ('held', 'onboarding')")[0]
                  .as<int>(),
              0);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_class "
                       "WHERE relname IN ('onboarding_snapshots', 'leadership')")[0]
                  .as<int>(),
              0);
  }
  auto up = Migrator().Up();
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(*up, 4);
}

}  // namespace
}  // namespace tether::agent
