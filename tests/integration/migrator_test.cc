// The migrator against a real PostgreSQL: apply, status, drift, failures, dirty state and
// repair, rollback, concurrent migrators in threads and in processes.
#include "common/pg/migrator.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "tests/testing/child_process.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"

namespace tether::common {
namespace {

using testing::PollUntil;
using testing::PostgresServer;

std::vector<Migration> Parse(const std::vector<MigrationFile>& files) {
  auto m = ParseMigrations(files);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}

int64_t Count(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  return tx.exec1(sql)[0].as<int64_t>();
}

const std::vector<MigrationFile> kBasic = {
    {"0001_users.up.sql", "CREATE TABLE users (id bigint PRIMARY KEY, email text);"},
    {"0001_users.down.sql", "DROP TABLE users;"},
    {"0002_orders.up.sql",
     "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint REFERENCES users);"},
    {"0002_orders.down.sql", "DROP TABLE orders;"},
    {"0003_email_index.up.sql",
     "-- tether:no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);"},
    {"0003_email_index.down.sql",
     "-- tether:no-transaction\nDROP INDEX CONCURRENTLY users_email;"},
};

TEST(MigratorTest, AppliesInOrderOnceAndReportsStatus) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  Migrator m(url, Parse(kBasic), {}, RealClock::Get());
  auto before = m.Status();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->pending, 3);
  EXPECT_EQ(before->current_version, 0);

  auto applied = m.Up();
  ASSERT_TRUE(applied.ok()) << applied.status();
  EXPECT_EQ(*applied, 3);
  auto again = m.Up();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);

  auto after = m.Status();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->pending, 0);
  EXPECT_EQ(after->current_version, 3);
  EXPECT_FALSE(after->dirty_version.has_value());
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_indexes WHERE indexname = 'users_email'"), 1);
}

TEST(MigratorTest, UpToStopsAtTheTargetVersion) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  Migrator m(url, Parse(kBasic), {}, RealClock::Get());
  auto applied = m.Up(2);
  ASSERT_TRUE(applied.ok());
  EXPECT_EQ(*applied, 2);
  EXPECT_EQ(m.Status()->current_version, 2);
}

TEST(MigratorTest, DownRollsBackTheNewestSteps) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  Migrator m(url, Parse(kBasic), {}, RealClock::Get());
  ASSERT_TRUE(m.Up().ok());
  auto rolled = m.Down(2);
  ASSERT_TRUE(rolled.ok()) << rolled.status();
  EXPECT_EQ(*rolled, 2);
  EXPECT_EQ(m.Status()->current_version, 1);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"), 0);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"), 1);
}

TEST(MigratorTest, DownWithoutADownFileChangesNothing) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  Migrator m(url, Parse({{"0001_a.up.sql", "CREATE TABLE a (x int);"}}), {}, RealClock::Get());
  ASSERT_TRUE(m.Up().ok());
  EXPECT_EQ(m.Down(1).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(m.Status()->current_version, 1);
}

TEST(MigratorTest, ChecksumDriftIsAnError) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  ASSERT_TRUE(Migrator(url, Parse({{"0001_a.up.sql", "CREATE TABLE a (x int);"}}), {},
                       RealClock::Get())
                  .Up()
                  .ok());
  Migrator changed(url,
                   Parse({{"0001_a.up.sql", "CREATE TABLE a (x bigint);"},
                          {"0002_b.up.sql", "CREATE TABLE b (x int);"}}),
                   {}, RealClock::Get());
  auto status = changed.Status();
  ASSERT_TRUE(status.ok());
  EXPECT_TRUE(status->migrations[0].checksum_drift);
  auto up = changed.Up();
  EXPECT_EQ(up.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(up.status().message().find("checksum"), absl::string_view::npos) << up.status();
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'b'"), 0);
}

TEST(MigratorTest, FailedTransactionalMigrationRollsBackCleanly) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  Migrator m(url,
             Parse({{"0001_a.up.sql", "CREATE TABLE a (x int);"},
                    {"0002_bad.up.sql", "CREATE TABLE half (x int); SELECT no_such_function();"}}),
             {}, RealClock::Get());
  auto up = m.Up();
  ASSERT_FALSE(up.ok());
  EXPECT_NE(up.status().message().find("migration 2 (bad)"), absl::string_view::npos) << up.status();
  auto status = m.Status();
  EXPECT_EQ(status->current_version, 1);
  EXPECT_FALSE(status->dirty_version.has_value());
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'half'"), 0);
}

TEST(MigratorTest, NonTransactionalFailureHalfwayLeavesDirtyUntilRepaired) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  std::vector<MigrationFile> files = {
      {"0001_a.up.sql", "CREATE TABLE a (x int);"},
      {"0002_half.up.sql",
       "-- tether:no-transaction\nCREATE TABLE half (x int);\nSELECT no_such_function();\n"
       "CREATE TABLE never (x int);"},
      {"0003_c.up.sql", "CREATE TABLE c (x int);"}};
  Migrator m(url, Parse(files), {}, RealClock::Get());
  auto up = m.Up();
  ASSERT_FALSE(up.ok());
  EXPECT_NE(up.status().message().find("dirty"), absl::string_view::npos) << up.status();

  auto status = m.Status();
  ASSERT_TRUE(status->dirty_version.has_value());
  EXPECT_EQ(*status->dirty_version, 2);
  EXPECT_NE(status->migrations[1].error.find("no_such_function"), std::string::npos);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'half'"), 1);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'never'"), 0);

  // Nothing else runs on a dirty database.
  EXPECT_EQ(m.Up().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE tablename = 'c'"), 0);

  // The operator finishes the job by hand and says so.
  EXPECT_EQ(m.Repair(3, RepairAction::kMarkApplied).code(), absl::StatusCode::kNotFound);
  {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    tx.exec("CREATE TABLE never (x int)");
  }
  ASSERT_TRUE(m.Repair(2, RepairAction::kMarkApplied).ok());
  auto rest = m.Up();
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, 1);
  EXPECT_EQ(m.Status()->current_version, 3);
}

TEST(MigratorTest, RepairAsRolledBackLetsTheMigrationRunAgain) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  const std::string flaky =
      "-- tether:no-transaction\nCREATE TABLE IF NOT EXISTS once (x int);\n"
      "SELECT count(*) FROM allow;";  // fails until the operator creates `allow`
  Migrator m(url, Parse({{"0001_flaky.up.sql", flaky}}), {}, RealClock::Get());
  ASSERT_FALSE(m.Up().ok());
  ASSERT_TRUE(m.Repair(1, RepairAction::kMarkRolledBack).ok());
  {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    tx.exec("CREATE TABLE allow ()");
  }
  auto up = m.Up();
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(*up, 1);
  EXPECT_FALSE(m.Status()->dirty_version.has_value());
}

TEST(MigratorTest, AMigrationThatEmptiesSearchPathDoesNotBreakTheBookkeeping) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  // What pg_dump writes at the top of every dump.
  Migrator m(url,
             Parse({{"0001_dump.up.sql",
                     "SELECT pg_catalog.set_config('search_path', '', false);\n"
                     "CREATE TABLE public.a (x int);"},
                    {"0002_plain.up.sql", "CREATE TABLE b (x int);"}}),
             {}, RealClock::Get());
  auto up = m.Up();
  ASSERT_TRUE(up.ok()) << up.status();
  EXPECT_EQ(*up, 2);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'b'"), 1);
  EXPECT_EQ(m.Status()->current_version, 2);
}

TEST(MigratorTest, CreateIndexConcurrentlyRunsWhileAnotherMigratorWaits) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  // Migration 2 first waits on an advisory lock the test holds, so the test decides when the
  // CREATE INDEX CONCURRENTLY starts — after the second migrator is already polling.
  std::vector<MigrationFile> files = {
      {"0001_t.up.sql", "CREATE TABLE t (x int); INSERT INTO t SELECT generate_series(1, 1000);"},
      {"0002_idx.up.sql",
       "-- tether:no-transaction\nSELECT pg_advisory_lock(4242);\nSELECT pg_advisory_unlock(4242);\n"
       "CREATE INDEX CONCURRENTLY t_x ON t (x);"}};
  pqxx::connection gate(url);
  {
    pqxx::nontransaction tx(gate);
    tx.exec("SELECT pg_advisory_lock(4242)");
  }
  absl::StatusOr<int> first_result, second_result;
  std::atomic<bool> second_waiting{false};
  std::thread first([&] {
    Migrator m(url, Parse(files), {}, RealClock::Get());
    first_result = m.Up();
  });
  ASSERT_TRUE(PollUntil([&] {
    return Count(url,
                 "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 "
                 "AND NOT granted") == 1;
  }));
  std::thread second([&] {
    MigratorOptions options;
    options.lock_poll = absl::Milliseconds(10);
    options.on_progress = [&](const std::string& line) {
      if (line.find("waiting for another migrator") != std::string::npos) second_waiting = true;
    };
    Migrator m(url, Parse(files), options, RealClock::Get());
    second_result = m.Up();
  });
  ASSERT_TRUE(PollUntil([&] { return second_waiting.load(); }));
  {
    pqxx::nontransaction tx(gate);
    tx.exec("SELECT pg_advisory_unlock(4242)");
  }
  first.join();
  second.join();
  ASSERT_TRUE(first_result.ok()) << first_result.status();
  ASSERT_TRUE(second_result.ok()) << second_result.status();
  EXPECT_EQ(*first_result, 2);
  EXPECT_EQ(*second_result, 0);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE c.relname = 't_x' AND i.indisvalid"),
            1);
}

TEST(MigratorTest, EightProcessesApplyEachMigrationExactlyOnce) {
  const std::string url = PostgresServer::Get().FreshDatabase();
  testing::TempDir dir;
  constexpr int kMigrations = 20;
  {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    tx.exec("CREATE TABLE applied_log (version int NOT NULL, at timestamptz DEFAULT now())");
  }
  for (int v = 1; v <= kMigrations; ++v) {
    const std::string sql = absl::StrCat("CREATE TABLE m", v, " (x int);\nINSERT INTO applied_log (version) VALUES (", v, ");\n");
    char name[64];
    std::snprintf(name, sizeof(name), "/%04d_step_%d.up.sql", v, v);
    ASSERT_TRUE(WriteFileAtomically(dir.path() + name, sql, 0644).ok());
  }
  std::vector<std::unique_ptr<testing::ChildProcess>> workers;
  for (int i = 0; i < 8; ++i) {
    workers.push_back(std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{TETHER_MIGRATE_WORKER_BIN, url, dir.path()},
        std::vector<std::string>{}, absl::StrCat(dir.path(), "/worker", i, ".log")));
  }
  int total = 0;
  for (auto& w : workers) {
    ASSERT_EQ(w->Wait(), 0) << w->Log();
    total += std::stoi(w->Log());
  }
  EXPECT_EQ(total, kMigrations);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM applied_log"), kMigrations);
  EXPECT_EQ(Count(url, "SELECT count(DISTINCT version) FROM applied_log"), kMigrations);
  EXPECT_EQ(Count(url, "SELECT count(*) FROM schema_migrations WHERE migration_set = 'concurrent' "
                       "AND NOT dirty"),
            kMigrations);
}

}  // namespace
}  // namespace tether::common
