// `tether-agent migrate`, the one-shot migrator for release jobs, as the real binary against a
// real PostgreSQL: four started at once apply each migration exactly once; --status lists and
// changes nothing; a failing migration exits non-zero with its error on one line and leaves the
// earlier ones applied.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "tests/testing/child_process.h"
#include "tests/testing/postgres_server.h"

namespace tether {
namespace {

class MigrateOnceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    std::filesystem::create_directories(dir_.path() + "/migrations");
  }
  void Write(const std::string& name, const std::string& sql) {
    ASSERT_TRUE(common::WriteFileAtomically(dir_.path() + "/migrations/" + name, sql, 0644).ok());
  }
  int Migrate(std::vector<std::string> extra, std::string* out, std::string* err) {
    std::vector<std::string> argv = {TETHER_AGENT_BIN, "migrate", "--database-url", url_,
                                     "--source", dir_.path() + "/migrations"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::RunCommand(argv, {}, out, err);
  }
  int64_t Count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  testing::TempDir dir_;
  std::string url_;
};

TEST_F(MigrateOnceTest, FourAtOnceApplyEachMigrationOnce) {
  Write("0001_log.up.sql", "CREATE TABLE applied_log (version int); INSERT INTO applied_log VALUES (1);");
  for (int v = 2; v <= 12; ++v) {
    Write(absl::StrCat("00", v < 10 ? "0" : "", v, "_step.up.sql"),
          absl::StrCat("INSERT INTO applied_log VALUES (", v, ");"));
  }
  std::vector<std::unique_ptr<testing::ChildProcess>> jobs;
  for (int i = 0; i < 4; ++i) {
    jobs.push_back(std::make_unique<testing::ChildProcess>(
        std::vector<std::string>{TETHER_AGENT_BIN, "migrate", "--database-url", url_, "--source",
                                 dir_.path() + "/migrations"},
        std::vector<std::string>{}, absl::StrCat(dir_.path(), "/job", i, ".log")));
  }
  int applied_lines = 0;
  for (auto& job : jobs) {
    EXPECT_EQ(job->Wait(), 0) << job->Log();
    const std::string log = job->Log();
    for (size_t at = log.find("applying "); at != std::string::npos; at = log.find("applying ", at + 1)) {
      ++applied_lines;
    }
  }
  EXPECT_EQ(applied_lines, 12);  // printed by whichever job ran each one
  EXPECT_EQ(Count("SELECT count(*) FROM applied_log"), 12);
  EXPECT_EQ(Count("SELECT count(DISTINCT version) FROM applied_log"), 12);
  EXPECT_EQ(Count("SELECT count(*) FROM schema_migrations WHERE migration_set = 'tenant'"), 12);

  std::string out, err;
  ASSERT_EQ(Migrate({"--status"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("at version 12 of 12, 0 pending"), std::string::npos) << out;
  ASSERT_EQ(Migrate({}, &out, &err), 0) << err;
  EXPECT_NE(out.find("nothing was pending"), std::string::npos) << out;
}

TEST_F(MigrateOnceTest, AFailureExitsNonZeroWithTheErrorAndStatusChangesNothing) {
  Write("0001_a.up.sql", "CREATE TABLE a (id int);");
  Write("0002_b.up.sql", "ALTER TABLE no_such_table ADD COLUMN x int;");
  std::string out, err;
  ASSERT_EQ(Migrate({"--status"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("0002  b"), std::string::npos) << out;
  EXPECT_NE(out.find("2 pending"), std::string::npos) << out;
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE tablename = 'a'"), 0);

  EXPECT_EQ(Migrate({}, &out, &err), 1);
  EXPECT_NE(err.find("migration 2 (b) failed and was rolled back"), std::string::npos) << err;
  EXPECT_NE(err.find("no_such_table"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_EQ(Count("SELECT count(*) FROM pg_tables WHERE tablename = 'a'"), 1);

  // --to stops before the broken one.
  ASSERT_EQ(Migrate({"--to", "1"}, &out, &err), 0) << err;
  // A directory that is not there is a usage error.
  std::vector<std::string> argv = {TETHER_AGENT_BIN, "migrate", "--database-url", url_,
                                   "--source", dir_.path() + "/nowhere"};
  EXPECT_EQ(testing::RunCommand(argv, {}, &out, &err), 2);
  EXPECT_NE(err.find("does not exist"), std::string::npos) << err;
}

}  // namespace
}  // namespace tether
