// Desired state end to end with the real binaries: a lite mothership, agents with the local
// provisioner, tetherctl. A spec applied with tetherctl reaches every agent, which creates and
// migrates its tenants and acks; a new migration is applied everywhere; a broken one is nacked
// with its error while the last good revision stays; --dry-run stores nothing; policy manual
// creates tenants without migrating them; a tenant that leaves the spec is kept as an orphan
// until prune is on; a wiped agent rehydrates every tenant.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "tests/testing/fleet.h"
#include "tests/testing/poll.h"

namespace tether {
namespace {

using testing::PollUntil;

class DesiredStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fleet_.StartMothership());
    bootstrap_ = fleet_.CreateToken("shop");
  }

  // Writes spec.yaml and its migrations (name → SQL) into a fresh folder; returns its path.
  std::string WriteSpec(const std::vector<std::string>& tenants,
                        const std::map<std::string, std::string>& migrations,
                        const std::string& policy = "auto", bool prune = false) {
    const std::string dir = absl::StrCat(fleet_.dir(), "/spec", ++specs_);
    std::filesystem::create_directories(dir + "/migrations");
    for (const auto& [name, sql] : migrations) {
      EXPECT_TRUE(common::WriteFileAtomically(dir + "/migrations/" + name, sql, 0644).ok());
    }
    const std::string yaml = absl::StrCat(
        "cluster: shop\ntenancy: database\nmigrations:\n  policy: ", policy,
        "\n  source: ./migrations\nprune: ", prune ? "true" : "false", "\ntenants: [",
        absl::StrJoin(tenants, ", "), "]\n");
    EXPECT_TRUE(common::WriteFileAtomically(dir + "/spec.yaml", yaml, 0644).ok());
    return dir + "/spec.yaml";
  }

  std::string Apply(const std::string& spec, const std::vector<std::string>& flags = {}) {
    // --detach: these tests poll the agents themselves, a revision that fails included.
    std::vector<std::string> args = {"apply", "-f", spec, "--detach"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::string out, err;
    EXPECT_EQ(fleet_.Ctl(args, &out, &err), 0) << out << err;
    return out;
  }

  // Every agent listed has acked `revision`.
  bool AllAt(size_t agents, int64_t revision) {
    auto j = fleet_.CtlJson({"get", "agents"});
    if (!j.contains("agents") || j["agents"].size() != agents) return false;
    for (const auto& a : j["agents"]) {
      if (a.value("appliedRevision", "0") != absl::StrCat(revision) || !a.value("converged", false)) {
        return false;
      }
    }
    return true;
  }

  // tenant name → state and version on `agent`, from `get tenants`.
  std::map<std::string, std::pair<std::string, int64_t>> Tenants(const std::string& agent) {
    return fleet_.Tenants("shop", agent);
  }

  // How many migrations the tenant database has applied, read on the agent's PostgreSQL.
  int64_t AppliedIn(const std::string& agent, const std::string& tenant) {
    pqxx::connection c(fleet_.AgentDatabaseUrl(agent, tenant));
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM schema_migrations WHERE NOT dirty")[0].as<int64_t>();
  }

  bool DatabaseExists(const std::string& agent, const std::string& db) {
    pqxx::connection c(fleet_.AgentDatabaseUrl(agent, "postgres"));
    pqxx::nontransaction tx(c);
    return !tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", db).empty();
  }

  int64_t Revisions() {
    auto j = fleet_.CtlJson({"history", "shop"});
    return j.contains("revisions") ? static_cast<int64_t>(j["revisions"].size()) : -1;
  }

  testing::Fleet fleet_;
  std::string bootstrap_;
  int specs_ = 0;
};

const std::map<std::string, std::string> kTwo = {
    {"0001_accounts.up.sql", "CREATE TABLE accounts (id bigserial PRIMARY KEY, email text);"},
    {"0001_accounts.down.sql", "DROP TABLE accounts;"},
    {"0002_orders.up.sql", "CREATE TABLE orders (id bigserial PRIMARY KEY, account bigint);"}};

// A change of the agent's PostgreSQL state reaches the mothership when it happens: with
// heartbeats an hour apart, the agent is still shown ready once it is.
TEST_F(DesiredStateTest, AnAgentIsShownReadyWhenItIsNotAtItsNextHeartbeat) {
  fleet_.StartAgent("web-1", bootstrap_, {"--heartbeat-interval", "1h"});
  ASSERT_TRUE(PollUntil([&] {
    std::string out, err;
    if (fleet_.Ctl({"-o", "json", "get", "agent", "web-1"}, &out, &err) != 0) return false;
    return absl::StrContains(out, "PROVISIONING_STATE_READY");
  })) << fleet_.Logs();
}

TEST_F(DesiredStateTest, ASpecConvergesEverywhereAndABrokenMigrationIsNacked) {
  fleet_.StartAgent("a1", bootstrap_);
  fleet_.StartAgent("a2", bootstrap_);
  const std::vector<std::string> tenants = {"acme", "globex", "initech"};
  std::string out = Apply(WriteSpec(tenants, kTwo));
  EXPECT_NE(out.find("+ tenant initech"), std::string::npos) << out;
  EXPECT_NE(out.find("is at revision 1"), std::string::npos) << out;
  ASSERT_TRUE(PollUntil([&] { return AllAt(2, 1); })) << fleet_.Logs();
  for (const std::string agent : {"a1", "a2"}) {
    auto seen = Tenants(agent);
    ASSERT_EQ(seen.size(), 3u) << agent;
    for (const auto& t : tenants) {
      EXPECT_EQ(seen[t].first, "TENANT_STATE_READY") << agent << " " << t;
      EXPECT_EQ(seen[t].second, 2) << agent << " " << t;
      EXPECT_EQ(AppliedIn(agent, t), 2) << agent << " " << t;
    }
  }

  // Applying the same spec again stores nothing.
  out = Apply(WriteSpec(tenants, kTwo));
  EXPECT_NE(out.find("unchanged at revision 1"), std::string::npos) << out;

  // A new migration reaches every tenant of every agent.
  auto three = kTwo;
  three["0003_notes.up.sql"] = "ALTER TABLE orders ADD COLUMN note text;";
  Apply(WriteSpec(tenants, three));
  ASSERT_TRUE(PollUntil([&] { return AllAt(2, 2); })) << fleet_.Logs();
  for (const std::string agent : {"a1", "a2"}) {
    for (const auto& t : tenants) EXPECT_EQ(AppliedIn(agent, t), 3) << agent << " " << t;
  }

  // --dry-run and diff say what would change and store nothing.
  const int64_t before = Revisions();
  out = Apply(WriteSpec({"acme", "globex", "initech", "hooli"}, three), {"--dry-run"});
  EXPECT_NE(out.find("+ tenant hooli"), std::string::npos) << out;
  EXPECT_NE(out.find("nothing stored"), std::string::npos) << out;
  std::string diff;
  ASSERT_EQ(fleet_.Ctl({"diff", "-f", WriteSpec({"acme"}, three)}, &diff), 0);
  EXPECT_NE(diff.find("- tenant globex (orphaned: prune is false)"), std::string::npos) << diff;
  EXPECT_EQ(Revisions(), before);
  EXPECT_FALSE(DatabaseExists("a1", "hooli"));

  // A broken migration: every agent nacks with the error and keeps revision 2.
  auto broken = three;
  broken["0004_broken.up.sql"] = "ALTER TABLE no_such_table ADD COLUMN x int;";
  Apply(WriteSpec(tenants, broken));
  ASSERT_TRUE(PollUntil([&] {
    auto j = fleet_.CtlJson({"get", "agents"});
    if (!j.contains("agents") || j["agents"].size() != 2) return false;
    for (const auto& a : j["agents"]) {
      if (a.value("nackRevision", "0") != "3") return false;
    }
    return true;
  })) << fleet_.Logs();
  auto j = fleet_.CtlJson({"get", "agents"});
  for (const auto& a : j["agents"]) {
    EXPECT_EQ(a["appliedRevision"], "2");
    EXPECT_FALSE(a["converged"]);
    EXPECT_NE(a["nackError"].get<std::string>().find("no_such_table"), std::string::npos) << a.dump();
  }
  std::string table;
  ASSERT_EQ(fleet_.Ctl({"get", "agents"}, &table), 0);
  EXPECT_NE(table.find("2/3 nack 3"), std::string::npos) << table;
  for (const auto& t : tenants) EXPECT_EQ(AppliedIn("a1", t), 3);  // rolled back
  auto seen = Tenants("a1");
  EXPECT_EQ(seen["acme"].first, "TENANT_STATE_FAILED");

  // The broken file cannot be edited once a revision carried it...
  auto edited = broken;
  edited["0004_broken.up.sql"] = "ALTER TABLE orders ADD COLUMN x int;";
  const std::string fixed = WriteSpec(tenants, edited);
  std::string err;
  EXPECT_EQ(fleet_.Ctl({"apply", "-f", fixed}, &out, &err), 1);
  EXPECT_NE(err.find("migration file 0004_broken.up.sql differs"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  // ...unless the operator says to replace what no tenant applied: the way out of a migration
  // that failed everywhere.
  out = Apply(fixed, {"--replace-unapplied"});
  EXPECT_NE(out.find("~ migration 0004_broken.up.sql (edited)"), std::string::npos) << out;
  ASSERT_TRUE(PollUntil([&] { return AllAt(2, 4); })) << fleet_.Logs();
  for (const std::string agent : {"a1", "a2"}) {
    for (const auto& t : tenants) EXPECT_EQ(AppliedIn(agent, t), 4) << agent << " " << t;
  }
  j = fleet_.CtlJson({"get", "agents"});
  for (const auto& a : j["agents"]) EXPECT_EQ(a.value("nackRevision", "0"), "0") << a.dump();
}

TEST_F(DesiredStateTest, ManualPolicyCreatesTenantsAndOrphansAreDroppedOnlyWithPrune) {
  fleet_.StartAgent("a1", bootstrap_);
  Apply(WriteSpec({"acme", "globex"}, kTwo, "manual"));
  ASSERT_TRUE(PollUntil([&] { return AllAt(1, 1); })) << fleet_.Logs();
  auto seen = Tenants("a1");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen["acme"], std::make_pair(std::string("TENANT_STATE_PENDING"), int64_t{0}));
  EXPECT_TRUE(DatabaseExists("a1", "acme"));
  auto j = fleet_.CtlJson({"get", "tenant", "shop", "acme"});
  ASSERT_EQ(j["tenants"].size(), 1u) << j.dump();
  EXPECT_EQ(j["tenants"][0]["status"]["pendingVersions"], nlohmann::json({"1", "2"}));

  // Policy auto migrates them.
  Apply(WriteSpec({"acme", "globex"}, kTwo, "auto"));
  ASSERT_TRUE(PollUntil([&] { return AllAt(1, 2); })) << fleet_.Logs();
  EXPECT_EQ(Tenants("a1")["globex"], std::make_pair(std::string("TENANT_STATE_READY"), int64_t{2}));

  // globex leaves the spec: an orphan, still there.
  Apply(WriteSpec({"acme"}, kTwo, "auto"));
  ASSERT_TRUE(PollUntil([&] { return AllAt(1, 3); })) << fleet_.Logs();
  EXPECT_EQ(Tenants("a1")["globex"].first, "TENANT_STATE_ORPHANED");
  EXPECT_TRUE(DatabaseExists("a1", "globex"));

  // With prune, it is dropped and forgotten.
  Apply(WriteSpec({"acme"}, kTwo, "auto", /*prune=*/true));
  ASSERT_TRUE(PollUntil([&] { return AllAt(1, 4); })) << fleet_.Logs();
  EXPECT_EQ(Tenants("a1").count("globex"), 0u);
  EXPECT_FALSE(DatabaseExists("a1", "globex"));
  EXPECT_TRUE(DatabaseExists("a1", "acme"));
}

TEST_F(DesiredStateTest, AWipedAgentRehydratesEveryTenant) {
  fleet_.StartAgent("a1", bootstrap_);
  Apply(WriteSpec({"acme", "globex", "initech"}, kTwo));
  ASSERT_TRUE(PollUntil([&] { return AllAt(1, 1); })) << fleet_.Logs();

  // The container is lost: process, PostgreSQL and disk.
  fleet_.KillAgent("a1");
  fleet_.WipeAgent("a1");
  fleet_.StartAgent("a1", bootstrap_);
  ASSERT_TRUE(PollUntil([&] {
    auto j = fleet_.CtlJson({"get", "agent", "a1"});
    return j.value("incarnation", "") == "2" && j.value("converged", false);
  })) << fleet_.Logs();
  for (const std::string t : {"acme", "globex", "initech"}) {
    EXPECT_EQ(AppliedIn("a1", t), 2) << t;
    EXPECT_EQ(Tenants("a1")[t].first, "TENANT_STATE_READY") << t;
  }
  // The event log tells the story: the recreation, then the convergence with its duration.
  auto events = fleet_.CtlJson({"events", "--limit", "100"});
  std::vector<std::string> story;
  for (const auto& e : events["events"]) {
    // Liveness may note the gap while the container was gone; that is not the story here.
    if (e.value("agent", "") != "a1" || e["kind"] == "agent.lost" || e["kind"] == "agent.recovered") {
      continue;
    }
    story.push_back(e["kind"]);
    if (e["kind"] == "agent.converged" && story.size() > 2) {
      EXPECT_NE(e["message"].get<std::string>().find("after incarnation 2 registered"),
                std::string::npos)
          << e.dump();
    }
  }
  EXPECT_EQ(story, (std::vector<std::string>{"agent.registered", "agent.converged",
                                             "agent.reregistered", "agent.converged"}));
}

}  // namespace
}  // namespace tether
