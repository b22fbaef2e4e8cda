// Mothership replicas, with the real binaries: two pro motherships on one database of the
// harness's PostgreSQL, local agents. A spec applied through one replica reaches an agent
// connected only to the other (the change travels by LISTEN/NOTIFY), and the apply's follower
// on the first sees the agent's ack recorded by the second. When the replica one agent is
// connected to is SIGKILLed part-way through an apply that agent is reconciling, the agent moves
// to the other replica (it was given both), the apply ends once with both agents' parts
// succeeded, and tetherctl given both addresses still answers.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "tests/testing/fleet.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"

namespace tether {
namespace {

using testing::PollUntil;

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fleet_.StartReplicas(2, testing::PostgresServer::Get().FreshDatabase()));
    bootstrap_ = fleet_.CreateToken("shop");
    ASSERT_FALSE(bootstrap_.empty());
  }

  // Starts a local agent given `mothership` (one replica, or the list).
  void StartAgent(const std::string& name, const std::string& mothership) {
    const std::string all = fleet_.server();
    fleet_.set_server(mothership);
    fleet_.StartAgent(name, bootstrap_);
    fleet_.set_server(all);
  }

  std::string WriteSpec(const std::vector<std::string>& tenants,
                        const std::map<std::string, std::string>& migrations) {
    const std::string dir = absl::StrCat(fleet_.dir(), "/spec", ++specs_);
    std::filesystem::create_directories(dir + "/migrations");
    for (const auto& [name, sql] : migrations) {
      EXPECT_TRUE(common::WriteFileAtomically(dir + "/migrations/" + name, sql, 0644).ok());
    }
    const std::string yaml = absl::StrCat("cluster: shop\nmigrations:\n  source: ./migrations\n",
                                          "tenants: [", absl::StrJoin(tenants, ", "), "]\n");
    EXPECT_TRUE(common::WriteFileAtomically(dir + "/spec.yaml", yaml, 0644).ok());
    return dir + "/spec.yaml";
  }

  // name → applied revision, from `get agents` through `server`.
  std::map<std::string, std::string> Applied() {
    std::map<std::string, std::string> out;
    const nlohmann::json agents = fleet_.CtlJson({"get", "agents"});
    if (!agents.contains("agents")) return out;
    for (const auto& a : agents["agents"]) out[a.value("name", "")] = a.value("appliedRevision", "0");
    return out;
  }

  bool Ready(const std::string& name) {
    const nlohmann::json agents = fleet_.CtlJson({"get", "agents"});
    if (!agents.contains("agents")) return false;
    for (const auto& a : agents["agents"]) {
      if (a.value("name", "") == name && a.contains("health") &&
          a["health"].value("state", "") == "PROVISIONING_STATE_READY") {
        return true;
      }
    }
    return false;
  }

  testing::Fleet fleet_;
  std::string bootstrap_;
  int specs_ = 0;
};

TEST_F(ReplicasTest, ASpecAppliedThroughOneReplicaReachesAnAgentOnTheOther) {
  StartAgent("web-1", fleet_.replica_server(1));
  ASSERT_TRUE(PollUntil([&] { return Ready("web-1"); })) << fleet_.Logs();

  fleet_.set_server(fleet_.replica_server(0));
  std::string out, err;
  const absl::Time start = absl::Now();
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec({"acme"}, {{"0001_orders.up.sql",
                                                              "CREATE TABLE orders (id int);"}})},
                       &out, &err),
            0)
      << out << err << fleet_.Logs();
  std::cout << "recovery: a spec applied through replica 0 acked by an agent on replica 1 "
            << absl::ToInt64Milliseconds(absl::Now() - start) << " ms after the apply began\n";
  EXPECT_NE(out.find("succeeded on 1 agent"), std::string::npos) << out;
  EXPECT_EQ(Applied()["web-1"], "1");
  EXPECT_TRUE(absl::StrContains(fleet_.agent("web-1")->Log(), "revision 1")) << fleet_.Logs();
}

// A statement that waits while the test holds the gate in the tenant's database.
constexpr const char* kPassGate = "SELECT pg_advisory_xact_lock(7007);";

TEST_F(ReplicasTest, AReplicaKilledDuringAnApplyLosesNothing) {
  const std::string both_from_0 = absl::StrCat(fleet_.replica_server(0), ",", fleet_.replica_server(1));
  const std::string both_from_1 = absl::StrCat(fleet_.replica_server(1), ",", fleet_.replica_server(0));
  StartAgent("web-1", both_from_0);  // on replica 0 while it lives
  StartAgent("web-2", both_from_1);  // on replica 1
  ASSERT_TRUE(PollUntil([&] { return Ready("web-1") && Ready("web-2"); })) << fleet_.Logs();
  ASSERT_TRUE(absl::StrContains(fleet_.replica_server(0), ":"));

  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec({"acme"}, {{"0001_orders.up.sql",
                                                              "CREATE TABLE orders (id int);"}})},
                       &out, &err),
            0)
      << out << err << fleet_.Logs();
  // web-1's next reconcile waits at the gate in its acme: the kill lands part-way through.
  auto gate = std::make_unique<pqxx::connection>(fleet_.AgentDatabaseUrl("web-1", "acme"));
  {
    pqxx::nontransaction tx(*gate);
    tx.exec("SELECT pg_advisory_lock(7007)");
  }
  fleet_.set_server(fleet_.replica_server(1));
  auto applied = fleet_.CtlJson(
      {"apply", "-f",
       WriteSpec({"acme"}, {{"0001_orders.up.sql", "CREATE TABLE orders (id int);"},
                            {"0002_gated.up.sql", kPassGate}}),
       "--detach"});
  const std::string id = applied.value("commandId", "");
  ASSERT_FALSE(id.empty()) << applied.dump() << fleet_.Logs();
  ASSERT_TRUE(PollUntil([&] {
    std::string lines;
    return fleet_.Ctl({"logs", id}, &lines) == 0 &&
           absl::StrContains(lines, "web-1  acme: applying 2_gated");
  })) << fleet_.Logs();
  fleet_.KillReplica(0);
  gate.reset();

  // tetherctl given both addresses finds the live one.
  fleet_.set_server(both_from_0);
  ASSERT_TRUE(PollUntil([&] {
    return fleet_.CtlJson({"get", "command", id}).value("state", "") == "COMMAND_STATE_SUCCEEDED";
  })) << fleet_.CtlJson({"get", "command", id}).dump() << fleet_.Logs();
  EXPECT_EQ(Applied()["web-1"], "2");
  EXPECT_EQ(Applied()["web-2"], "2");
  // web-1 lost its replica and connected again: to the other.
  const std::string log = fleet_.agent("web-1")->Log();
  size_t connects = 0;
  for (size_t at = log.find("connected to mothership"); at != std::string::npos;
       at = log.find("connected to mothership", at + 1)) {
    ++connects;
  }
  EXPECT_GE(connects, 2u) << log;
  {
    pqxx::connection c(fleet_.AgentDatabaseUrl("web-1", "acme"));
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<int>(), 2);
  }
  std::string lines;
  ASSERT_EQ(fleet_.Ctl({"logs", id}, &lines), 0);
  std::vector<std::string> all = absl::StrSplit(lines, '\n', absl::SkipEmpty());
  std::multiset<std::string> texts;
  for (const auto& l : all) texts.insert(l.size() > 13 ? l.substr(13) : l);
  for (const auto& t : texts) EXPECT_EQ(texts.count(t), 1u) << "doubled: " << t << "\n" << lines;
  EXPECT_EQ(fleet_.FinishedEvents(id), 1);
}

}  // namespace
}  // namespace tether
