// Durable commands end to end with the real binaries: a lite mothership, agents with the local
// provisioner, tetherctl as an operator runs it. `migrate` across two agents streams both
// agents' lines and exits 0; a migration that breaks on one agent makes it exit 1 with the
// error while the other's result still shows; an agent SIGKILLed part-way through a migrate
// finishes the command once after it restarts, every migration applied once; a follower of
// `logs --follow` survives a SIGKILLed mothership with nothing lost or doubled; a failing hook
// stops its tenant's later steps; a rollback past a migration without a down file changes
// nothing; a retried apply with the same idempotency key makes one command.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <csignal>
#include <filesystem>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "tests/testing/fleet.h"
#include "tests/testing/poll.h"

namespace tether {
namespace {

using testing::PollUntil;

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fleet_.StartMothership());
    bootstrap_ = fleet_.CreateToken("shop");
  }

  // Writes spec.yaml, its migrations and hooks (name → SQL) into a fresh folder; returns the
  // spec's path. Policy manual: migrations wait for `tetherctl migrate`.
  std::string WriteSpec(const std::vector<std::string>& tenants,
                        const std::map<std::string, std::string>& migrations,
                        const std::map<std::string, std::string>& hooks = {}) {
    const std::string dir = absl::StrCat(fleet_.dir(), "/spec", ++specs_);
    std::filesystem::create_directories(dir + "/migrations");
    std::filesystem::create_directories(dir + "/hooks");
    for (const auto& [name, sql] : migrations) {
      EXPECT_TRUE(common::WriteFileAtomically(dir + "/migrations/" + name, sql, 0644).ok());
    }
    std::string yaml = absl::StrCat("cluster: shop\ntenancy: database\nmigrations:\n"
                                    "  policy: manual\n  source: ./migrations\n");
    if (!hooks.empty()) absl::StrAppend(&yaml, "hooks:\n");
    for (const auto& [event, sql] : hooks) {
      EXPECT_TRUE(common::WriteFileAtomically(dir + "/hooks/" + event + ".sql", sql, 0644).ok());
      absl::StrAppend(&yaml, "  ", event, ": ./hooks/", event, ".sql\n");
    }
    absl::StrAppend(&yaml, "tenants: [", absl::StrJoin(tenants, ", "), "]\n");
    EXPECT_TRUE(common::WriteFileAtomically(dir + "/spec.yaml", yaml, 0644).ok());
    return dir + "/spec.yaml";
  }

  // Applies with --detach and waits until `agents` agents have reconciled the new revision.
  void ApplyAndWait(const std::string& spec, size_t agents) {
    auto applied = fleet_.CtlJson({"apply", "-f", spec, "--detach"});
    ASSERT_TRUE(applied.contains("revision")) << applied.dump() << fleet_.Logs();
    const std::string revision = applied["revision"].get<std::string>();
    ASSERT_TRUE(PollUntil([&] {
      auto j = fleet_.CtlJson({"get", "agents"});
      if (!j.contains("agents") || j["agents"].size() != agents) return false;
      for (const auto& a : j["agents"]) {
        if (a.value("appliedRevision", "0") != revision || !a.value("converged", false)) {
          return false;
        }
      }
      return true;
    })) << fleet_.Logs();
  }

  // Queues a command with --detach; returns its id.
  std::string Detached(std::vector<std::string> args) {
    args.push_back("--detach");
    auto j = fleet_.CtlJson(args);
    EXPECT_TRUE(j.contains("id")) << j.dump() << fleet_.Logs();
    return j.value("id", "");
  }

  nlohmann::json Command(const std::string& id) { return fleet_.CtlJson({"get", "command", id}); }
  bool Ended(const std::string& id) {
    const std::string state = Command(id).value("state", "");
    return state == "COMMAND_STATE_SUCCEEDED" || state == "COMMAND_STATE_FAILED" ||
           state == "COMMAND_STATE_CANCELLED";
  }

  // tenant → (state, version) on `agent`, from `get tenants`.
  std::map<std::string, std::pair<std::string, int64_t>> Tenants(const std::string& agent) {
    return fleet_.Tenants("shop", agent);
  }

  int64_t Query(const std::string& agent, const std::string& db, const std::string& sql) {
    pqxx::connection c(fleet_.AgentDatabaseUrl(agent, db));
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  // Holds the gate closed in database `db` of `agent` until the returned connection goes.
  std::unique_ptr<pqxx::connection> CloseGate(const std::string& agent, const std::string& db) {
    auto c = std::make_unique<pqxx::connection>(fleet_.AgentDatabaseUrl(agent, db));
    pqxx::nontransaction tx(*c);
    tx.exec("SELECT pg_advisory_lock(7007)");
    return c;
  }

  // The lines of tetherctl's plain output ("HH:MM:SS.mmm AGENT  TEXT"), without their times.
  static std::vector<std::string> Lines(const std::string& out) {
    std::vector<std::string> lines;
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
      if (line.size() > 13 && line[2] == ':' && line[5] == ':' && line[8] == '.') {
        lines.emplace_back(line.substr(13));
      }
    }
    return lines;
  }

  testing::Fleet fleet_;
  std::string bootstrap_;
  int specs_ = 0;
};

// A migration statement that waits while the test holds the gate in the tenant's database
// (a transaction-level advisory lock: taken and released by the migration's own transaction).
constexpr const char* kPassGate = "SELECT pg_advisory_xact_lock(7007);";

const std::map<std::string, std::string> kTwoMigrations = {
    {"0001_orders.up.sql", "CREATE TABLE orders (id int);"},
    {"0002_note.up.sql", "ALTER TABLE orders ADD note text;"},
};

TEST_F(CommandsTest, MigrateAcrossTwoAgentsStreamsBothAgentsLinesAndExitsZero) {
  fleet_.StartAgent("web-1", bootstrap_);
  fleet_.StartAgent("web-2", bootstrap_);
  ApplyAndWait(WriteSpec({"acme", "globex"}, kTwoMigrations), 2);
  EXPECT_EQ(Tenants("web-1")["acme"], std::make_pair(std::string("TENANT_STATE_PENDING"), int64_t{0}));

  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"migrate", "shop"}, &out, &err), 0) << out << err << fleet_.Logs();
  const auto lines = Lines(out);
  for (const std::string agent : {"web-1", "web-2"}) {
    for (const std::string tenant : {"acme", "globex"}) {
      EXPECT_TRUE(std::count(lines.begin(), lines.end(),
                             absl::StrCat(agent, "  ", tenant, ": applying 2_note")) == 1)
          << agent << " " << tenant << "\n" << out;
    }
    EXPECT_TRUE(PollUntil([&] {
      return Tenants(agent)["acme"] == std::make_pair(std::string("TENANT_STATE_READY"), int64_t{2});
    }));
    EXPECT_EQ(Query(agent, "globex", "SELECT count(*) FROM schema_migrations"), 2);
  }
  EXPECT_NE(out.find("succeeded on 2 agents"), std::string::npos) << out;
}

TEST_F(CommandsTest, AMigrationBrokenOnOneAgentFailsTheCommandAndTheOtherResultStillShows) {
  fleet_.StartAgent("web-1", bootstrap_);
  fleet_.StartAgent("web-2", bootstrap_);
  ApplyAndWait(WriteSpec({"acme"}, {{"0001_extra.up.sql", "CREATE TABLE extra (id int);"}}), 2);
  {  // On web-2 only, the table the migration creates is in the way.
    pqxx::connection c(fleet_.AgentDatabaseUrl("web-2", "acme"));
    pqxx::nontransaction tx(c);
    tx.exec("CREATE TABLE extra (id int)");
  }
  std::string out, err;
  EXPECT_EQ(fleet_.Ctl({"migrate", "shop"}, &out, &err), 1) << out << err;
  const auto lines = Lines(out);
  EXPECT_EQ(std::count(lines.begin(), lines.end(), "web-1  acme: applying 1_extra"), 1) << out;
  bool error_line = false;
  for (const auto& l : lines) {
    error_line = error_line || (absl::StartsWith(l, "web-2  acme: failed") &&
                                absl::StrContains(l, "already exists"));
  }
  EXPECT_TRUE(error_line) << out;
  EXPECT_NE(err.find("failed on web-2"), std::string::npos) << err;
  // The agents report their tenants after the command: web-1's acme at 1, web-2's still at 0.
  EXPECT_TRUE(PollUntil([&] { return Tenants("web-1")["acme"].second == 1; }));
  EXPECT_EQ(Tenants("web-2")["acme"].second, 0);
  EXPECT_EQ(Query("web-2", "acme", "SELECT count(*) FROM schema_migrations"), 0);
}

TEST_F(CommandsTest, AnAgentKilledPartWayFinishesTheCommandOnceAfterItRestarts) {
  fleet_.StartAgent("web-1", bootstrap_);
  // Every migration leaves a row behind (applied twice, it would leave two) and passes a gate
  // the test holds closed in t12's database, so the kill lands while t12 is part-way through.
  std::map<std::string, std::string> migrations = {
      {"0001_log.up.sql", "CREATE TABLE applied (version int); INSERT INTO applied VALUES (1);"}};
  for (int v = 2; v <= 6; ++v) {
    migrations[absl::StrCat("000", v, "_step.up.sql")] =
        absl::StrCat(kPassGate, " INSERT INTO applied VALUES (", v, ");");
  }
  std::vector<std::string> tenants;
  for (int i = 1; i <= 12; ++i) tenants.push_back(absl::StrCat("t", i));
  ApplyAndWait(WriteSpec(tenants, migrations), 1);
  auto gate = CloseGate("web-1", "t12");

  const std::string id = Detached({"migrate", "shop"});
  // The tenants before it get through; t12 waits at its second migration.
  ASSERT_TRUE(PollUntil([&] {
    std::string lines;
    return fleet_.Ctl({"logs", id}, &lines) == 0 &&
           absl::StrContains(lines, "t11: at version 6") &&
           absl::StrContains(lines, "t12: applying 2_step");
  })) << fleet_.Logs();
  fleet_.KillAgent("web-1");
  EXPECT_FALSE(Ended(id));
  gate.reset();  // open: the killed run's transaction ends, rolled back, and the new one passes
  fleet_.StartAgent("web-1", bootstrap_);
  ASSERT_TRUE(PollUntil([&] { return Ended(id); })) << fleet_.Logs();
  EXPECT_EQ(Command(id)["state"], "COMMAND_STATE_SUCCEEDED") << Command(id).dump();
  for (const auto& t : tenants) {
    EXPECT_EQ(Query("web-1", t, "SELECT count(*) FROM applied"), 6) << t;
    EXPECT_EQ(Query("web-1", t, "SELECT count(DISTINCT version) FROM applied"), 6) << t;
  }
  std::string out;
  ASSERT_EQ(fleet_.Ctl({"logs", id}, &out), 0);
  EXPECT_NE(out.find("resuming after a restart"), std::string::npos) << out;

  EXPECT_EQ(fleet_.FinishedEvents(id), 1);
}

TEST_F(CommandsTest, AFollowerSurvivesAKilledMothershipWithNothingLostOrDoubled) {
  fleet_.StartAgent("web-1", bootstrap_);
  std::map<std::string, std::string> migrations;
  for (int v = 1; v <= 8; ++v) migrations[absl::StrCat("000", v, "_gated.up.sql")] = kPassGate;
  ApplyAndWait(WriteSpec({"acme", "globex", "initech"}, migrations), 1);
  auto gate = CloseGate("web-1", "initech");  // initech's lines come while the mothership is down
  const std::string id = Detached({"migrate", "shop"});
  const std::string log = fleet_.dir() + "/follower.log";
  auto follower = fleet_.StartCtl({"logs", id, "--follow"}, log);
  ASSERT_TRUE(PollUntil([&] { return Lines(*common::ReadFile(log)).size() >= 3; }));
  fleet_.KillMothership();
  gate.reset();
  ASSERT_TRUE(fleet_.StartMothershipAgain()) << fleet_.Logs();
  EXPECT_EQ(follower->Wait(), 0) << follower->Log() << fleet_.Logs();
  ASSERT_TRUE(Ended(id));

  std::string stored;
  ASSERT_EQ(fleet_.Ctl({"logs", id}, &stored), 0);
  const auto followed = Lines(follower->Log());
  EXPECT_EQ(followed, Lines(stored)) << follower->Log();
  EXPECT_GE(followed.size(), 8u * 3);
  std::set<std::string> unique(followed.begin(), followed.end());
  EXPECT_EQ(unique.size(), followed.size());  // every line is distinct: none was doubled
  // Lines the agent wrote while the mothership was down were sent again, not lost.
  for (const auto& line : followed) EXPECT_FALSE(absl::StrContains(line, "were not received")) << line;
}

TEST_F(CommandsTest, AFailingHookStopsItsTenantsLaterSteps) {
  fleet_.StartAgent("web-1", bootstrap_);
  ApplyAndWait(
      WriteSpec({"acme", "globex"}, kTwoMigrations,
                {{"before_migrate",
                  "DO $$ BEGIN IF current_database() = 'globex' THEN "
                  "RAISE EXCEPTION 'globex is frozen'; END IF; END $$;"}}),
      1);
  std::string out, err;
  EXPECT_EQ(fleet_.Ctl({"migrate", "shop"}, &out, &err), 1) << out << err;
  EXPECT_NE(out.find("globex is frozen"), std::string::npos) << out;
  EXPECT_NE(out.find("acme: hook before_migrate"), std::string::npos) << out;
  // globex's migrations never ran; acme's did.
  EXPECT_EQ(Query("web-1", "globex",
                  "SELECT count(*) FROM pg_tables WHERE tablename = 'orders'"), 0);
  EXPECT_TRUE(PollUntil([&] { return Tenants("web-1")["acme"].second == 2; }));
  EXPECT_EQ(Tenants("web-1")["globex"].second, 0);
}

TEST_F(CommandsTest, ARollbackPastAMigrationWithoutADownFileChangesNothing) {
  fleet_.StartAgent("web-1", bootstrap_);
  auto migrations = kTwoMigrations;
  migrations["0001_orders.down.sql"] = "DROP TABLE orders;";
  ApplyAndWait(WriteSpec({"acme"}, migrations), 1);
  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"migrate", "shop"}, &out, &err), 0) << out << err;
  const size_t commands = fleet_.CtlJson({"get", "commands"})["commands"].size();

  EXPECT_EQ(fleet_.Ctl({"rollback", "shop", "--tenant", "acme"}, &out, &err), 1);
  EXPECT_NE(err.find("migration 2 (note) has no down file; nothing was rolled back"),
            std::string::npos) << err;
  EXPECT_EQ(fleet_.CtlJson({"get", "commands"})["commands"].size(), commands);
  EXPECT_EQ(Tenants("web-1")["acme"].second, 2);
  EXPECT_EQ(Query("web-1", "acme", "SELECT count(*) FROM schema_migrations"), 2);

  // With its down file, the rollback runs and holds the tenant until a migrate.
  migrations["0002_note.down.sql"] = "ALTER TABLE orders DROP note;";
  ApplyAndWait(WriteSpec({"acme"}, migrations), 1);
  ASSERT_EQ(fleet_.Ctl({"rollback", "shop", "--tenant", "acme"}, &out, &err), 0) << out << err;
  EXPECT_EQ(Query("web-1", "acme", "SELECT count(*) FROM schema_migrations"), 1);
  ASSERT_TRUE(PollUntil([&] { return Tenants("web-1")["acme"].second == 1; }));
  EXPECT_TRUE(fleet_.CtlJson({"get", "tenants"})["tenants"][0]["status"].value("held", false));
  ASSERT_EQ(fleet_.Ctl({"migrate", "shop"}, &out, &err), 0) << out << err;
  EXPECT_EQ(Query("web-1", "acme", "SELECT count(*) FROM schema_migrations"), 2);
}

TEST_F(CommandsTest, ARetriedApplyWithTheSameIdempotencyKeyMakesOneCommand) {
  fleet_.StartAgent("web-1", bootstrap_);
  const std::string spec = WriteSpec({"acme"}, kTwoMigrations);
  auto first = fleet_.CtlJson({"apply", "-f", spec, "--detach", "--idempotency-key", "deploy-42"});
  auto again = fleet_.CtlJson({"apply", "-f", spec, "--detach", "--idempotency-key", "deploy-42"});
  ASSERT_TRUE(first.contains("commandId")) << first.dump();
  EXPECT_EQ(first["commandId"], again["commandId"]);
  EXPECT_EQ(first["revision"], again["revision"]);
  int applies = 0;
  const auto listed = fleet_.CtlJson({"get", "commands"});
  for (const auto& c : listed["commands"]) applies += c["kind"] == "apply";
  EXPECT_EQ(applies, 1) << listed.dump();
  EXPECT_EQ(fleet_.CtlJson({"history", "shop"})["revisions"].size(), 1u);
}

}  // namespace
}  // namespace tether
