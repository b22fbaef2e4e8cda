// The provisioning loop against real PostgreSQL servers: the local provisioner from nothing to
// ready, and an external PostgreSQL that is down at boot and appears later.
#include "agent/provision/provisioning.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "agent/provision/local_provisioner.h"
#include "common/pg/local_postgres.h"
#include "common/pg/migrator.h"
#include "common/pg/pool.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"

namespace tether::agent {

std::vector<common::MigrationFile> AgentMigrationFiles();  // embedded at build time
namespace {

using testing::PollUntil;

ProvisioningOptions FastOptions() {
  ProvisioningOptions o;
  o.check_interval = absl::Milliseconds(100);
  o.backoff = {absl::Milliseconds(20), absl::Milliseconds(200), 2.0, 0.5};
  return o;
}

TEST(ProvisioningTest, LocalProvisionerGoesFromNothingToReady) {
  testing::TempDir dir;
  common::RealProcessRunner runner;
  common::RealRandom random;
  LocalProvisioner provisioner(dir.path(), "", &runner, /*durable=*/false);
  HealthState health;
  ProvisioningLoop loop(&provisioner, &health, common::RealClock::Get(), &random, FastOptions());
  absl::Notification stop;
  std::thread t([&] { loop.Run(&stop); });
  const bool ready = PollUntil([&] { return loop.ready(); });
  stop.Notify();
  t.join();
  ASSERT_TRUE(ready) << health.Get().reason();
  v1::Health h = health.Get();
  EXPECT_EQ(h.state(), v1::PROVISIONING_STATE_READY);
  EXPECT_EQ(h.postgres_version().substr(0, 3), "15.");
  EXPECT_EQ(h.provisioner(), "local");
  auto ping = common::Ping(loop.database_url());
  EXPECT_TRUE(ping.ok()) << ping.status();

  // The agent's own schema was migrated: every one of its migrations.
  {
    auto own = common::ParseMigrations(AgentMigrationFiles());
    ASSERT_TRUE(own.ok());
    pqxx::connection c(loop.database_url());
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM schema_migrations WHERE migration_set = "
                       "'tether-agent' AND NOT dirty")[0]
                  .as<int>(),
              static_cast<int>(own->size()));
    EXPECT_GE(own->size(), 2u);
  }
  common::LocalPostgresOptions options;
  options.root = dir.path() + "/postgres";
  common::LocalPostgres pg(options, &runner);
  ASSERT_TRUE(pg.EnsureInitialized().ok());
  ASSERT_TRUE(pg.Stop().ok());
}

TEST(ProvisioningTest, ExternalDatabaseDownAtBootBecomesReadyWhenItAppears) {
  testing::TempDir dir;
  common::RealProcessRunner runner;
  common::RealRandom random;
  common::LocalPostgresOptions pg_options;
  pg_options.root = dir.path() + "/pg";
  pg_options.durable = false;
  common::LocalPostgres later(pg_options, &runner);
  ASSERT_TRUE(later.EnsureInitialized().ok());  // exists, but is not running yet

  ExternalProvisioner provisioner(later.ConnectionUrl("postgres"));
  HealthState health;
  ProvisioningOptions options = FastOptions();
  options.own_database = "";
  ProvisioningLoop loop(&provisioner, &health, common::RealClock::Get(), &random, options);
  absl::Notification stop;
  std::thread t([&] { loop.Run(&stop); });

  ASSERT_TRUE(PollUntil([&] {
    v1::Health h = health.Get();
    return h.state() == v1::PROVISIONING_STATE_FAILED && h.attempt() >= 2;
  }));
  EXPECT_FALSE(loop.ready());
  EXPECT_NE(health.Get().reason().find("does not answer"), std::string::npos) << health.Get().reason();

  ASSERT_TRUE(later.EnsureRunning().ok());
  const bool ready = PollUntil([&] { return loop.ready(); });
  stop.Notify();
  t.join();
  (void)later.Stop();
  ASSERT_TRUE(ready) << health.Get().reason();
  EXPECT_EQ(health.Get().attempt(), 0);
}

}  // namespace
}  // namespace tether::agent
