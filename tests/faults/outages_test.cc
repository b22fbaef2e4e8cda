// Outages, with the real binaries and a lite mothership:
//  - the PostgreSQL a pro cluster shares (a server of the test's own) is stopped until every
//    agent has stopped leading, a revision is applied meanwhile, and the server is started
//    again: one agent leads in a new epoch and acks the revision, tenants' migrations once each;
//  - the mothership's own PostgreSQL is stopped until tetherctl is refused, and started again:
//    the agents carry on, nobody registers again, and the next apply converges;
//  - an agent is cut off from the mothership silently (a proxy that stops forwarding without
//    closing): the mothership marks it lost, a revision applied meanwhile reaches it once the
//    network is back;
//  - everything (the mothership and 20 pro agents of four clusters) is SIGKILLed at once with a
//    revision pending and started again: every cluster has one leader in a new epoch, every
//    agent is the same incarnation, every revision is acked and every tenant is there once.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <csignal>
#include <filesystem>
#include <iostream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/pg/local_postgres.h"
#include "common/process.h"
#include "tests/testing/fleet.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/tcp_proxy.h"

namespace tether {
namespace {

using testing::PollUntil;

class OutagesTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(fleet_.StartMothership()); }

  std::string WriteSpec(const std::string& cluster, const std::vector<std::string>& tenants,
                        int migrations, bool schemas) {
    const std::string dir = absl::StrCat(fleet_.dir(), "/spec", ++specs_);
    std::filesystem::create_directories(dir + "/migrations");
    for (int v = 1; v <= migrations; ++v) {
      EXPECT_TRUE(common::WriteFileAtomically(
                      absl::StrCat(dir, "/migrations/000", v, "_step.up.sql"),
                      absl::StrCat("CREATE TABLE step", v, " (id int);"), 0644)
                      .ok());
    }
    const std::string yaml = absl::StrCat(
        "cluster: ", cluster, "\n", schemas ? "tenancy: schema\n" : "",
        "migrations:\n  source: ./migrations\ntenants: [", absl::StrJoin(tenants, ", "), "]\n");
    EXPECT_TRUE(common::WriteFileAtomically(dir + "/spec.yaml", yaml, 0644).ok());
    return dir + "/spec.yaml";
  }

  nlohmann::json Agent(const std::string& name) {
    const nlohmann::json agents = fleet_.CtlJson({"get", "agents"});
    if (agents.contains("agents")) {
      for (const auto& a : agents["agents"]) {
        if (a.value("name", "") == name) return a;
      }
    }
    return nlohmann::json::object();
  }

  // The newest epoch the mothership recorded for `cluster` (0: none), and its leader.
  std::pair<int64_t, std::string> Leader(const std::string& cluster) {
    std::pair<int64_t, std::string> out{0, ""};
    const nlohmann::json events = fleet_.CtlJson({"events", "--cluster", cluster, "--limit", "1000"});
    if (!events.contains("events")) return out;
    for (const auto& e : events["events"]) {
      if (e.value("kind", "") != "agent.leader") continue;
      const std::string m = e.value("message", "");
      const size_t at = m.find(" in epoch ");
      if (at == std::string::npos) continue;
      const int64_t epoch = std::atoll(m.c_str() + at + 10);
      if (epoch > out.first) out = {epoch, e.value("agent", "")};
    }
    return out;
  }

  // Until every agent in `names` reports `revision` applied.
  bool Converged(const std::vector<std::string>& names, const std::string& revision) {
    const nlohmann::json agents = fleet_.CtlJson({"get", "agents"});
    if (!agents.contains("agents")) return false;
    size_t done = 0;
    for (const auto& a : agents["agents"]) {
      for (const auto& n : names) {
        done += a.value("name", "") == n && a.value("appliedRevision", "0") == revision;
      }
    }
    return done == names.size();
  }

  void StartPro(const std::string& name, const std::string& token, const std::string& url) {
    fleet_.StartAgent(name, token, {"--provisioner", "external", "--database-url", url});
  }

  testing::Fleet fleet_;
  int specs_ = 0;
};

TEST_F(OutagesTest, TheProClustersPostgresStoppedAndStartedAgain) {
  testing::TempDir pg_dir;
  common::RealProcessRunner runner;
  common::LocalPostgresOptions options;
  options.root = pg_dir.path() + "/pg";
  options.durable = false;
  common::LocalPostgres pg(options, &runner);
  ASSERT_TRUE(pg.EnsureInitialized().ok());
  ASSERT_TRUE(pg.EnsureRunning().ok());
  {
    pqxx::connection c(pg.ConnectionUrl("postgres"));
    pqxx::nontransaction tx(c);
    tx.exec("CREATE DATABASE shop");
  }
  const std::string url = pg.ConnectionUrl("shop");
  const std::string token = fleet_.CreateToken("shop");
  for (const char* name : {"pro-1", "pro-2", "pro-3"}) StartPro(name, token, url);
  ASSERT_TRUE(PollUntil([&] { return Leader("shop").first == 1; })) << fleet_.Logs();
  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec("shop", {"acme"}, 1, true)}, &out, &err), 0)
      << out << err << fleet_.Logs();

  ASSERT_TRUE(pg.Stop().ok());
  const absl::Time stopped = absl::Now();
  // Held down until every agent has seen it: none leads.
  ASSERT_TRUE(PollUntil([&] {
    for (const char* name : {"pro-1", "pro-2", "pro-3"}) {
      const nlohmann::json a = Agent(name);
      if (!a.contains("health") || a["health"].value("role", "") == "AGENT_ROLE_LEADER") {
        return false;
      }
    }
    return true;
  })) << fleet_.Logs();
  auto applied = fleet_.CtlJson({"apply", "-f", WriteSpec("shop", {"acme", "globex"}, 2, true),
                                 "--detach"});
  const std::string revision = applied.value("revision", "");
  ASSERT_EQ(revision, "2") << applied.dump();
  ASSERT_TRUE(pg.EnsureRunning().ok());
  const absl::Time started = absl::Now();
  ASSERT_TRUE(PollUntil([&] { return Leader("shop").first >= 2; })) << fleet_.Logs();
  // Every agent reaches the revision: the new leader applies it, the standbys follow.
  ASSERT_TRUE(PollUntil([&] { return Converged({"pro-1", "pro-2", "pro-3"}, "2"); }))
      << fleet_.Logs();
  // The apply ended once: succeeded, or failed with the reason of a try made while the server
  // was still coming back (a nack ends an agent's part; the retry that followed acked).
  nlohmann::json command;
  ASSERT_TRUE(PollUntil([&] {
    command = fleet_.CtlJson({"get", "command", applied.value("commandId", "")});
    const std::string state = command.value("state", "");
    return state == "COMMAND_STATE_SUCCEEDED" || state == "COMMAND_STATE_FAILED";
  })) << fleet_.Logs();
  if (command.value("state", "") == "COMMAND_STATE_FAILED") {
    EXPECT_FALSE(command.value("error", "").empty()) << command.dump();
  }
  std::cout << "recovery: the cluster's PostgreSQL down "
            << absl::ToInt64Milliseconds(started - stopped) << " ms; a new leader acked the "
            << "pending revision " << absl::ToInt64Milliseconds(absl::Now() - started)
            << " ms after it was back\n";
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM acme.schema_migrations")[0].as<int>(), 2);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM globex.schema_migrations")[0].as<int>(), 2);
  (void)pg.Stop();
}

TEST_F(OutagesTest, TheMothershipsOwnPostgresStoppedAndStartedAgain) {
  const std::string token = fleet_.CreateToken("shop");
  fleet_.StartAgent("web-1", token);
  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec("shop", {"acme"}, 1, false)}, &out, &err), 0)
      << out << err << fleet_.Logs();
  // The agent streams and has been seen before the database goes: what is checked below is
  // how its heartbeats during the outage count, not whether it connects after it.
  ASSERT_TRUE(PollUntil([&] {
    return Converged({"web-1"}, "1") && Agent("web-1").value("status", "") == "AGENT_STATUS_HEALTHY";
  })) << fleet_.Logs();

  common::RealProcessRunner runner;
  common::LocalPostgresOptions options;
  options.root = fleet_.dir() + "/mothership/postgres";
  common::LocalPostgres pg(options, &runner);
  ASSERT_TRUE(pg.EnsureInitialized().ok());
  EXPECT_EQ(testing::HealthOf(fleet_.server(), fleet_.credentials()), grpc::health::v1::HealthCheckResponse::SERVING);
  ASSERT_TRUE(pg.Stop().ok());
  // The mothership's health follows its database, and tetherctl says which side is down.
  EXPECT_TRUE(PollUntil([&] {
    return testing::HealthOf(fleet_.server(), fleet_.credentials()) ==
           grpc::health::v1::HealthCheckResponse::NOT_SERVING;
  }));
  ASSERT_TRUE(PollUntil([&] { return fleet_.Ctl({"get", "agents"}, &out, &err) != 0; }));
  EXPECT_TRUE(absl::StrContains(err, "is up, but its database is not: database unavailable"))
      << err;
  EXPECT_FALSE(absl::StrContains(err, "cannot reach")) << err;
  // The outage outlasts the heartbeat TTL (3 s): the agent's heartbeats meanwhile cannot be
  // written, and its last_seen_at in the database grows older than the TTL.
  const absl::Time stopped = absl::Now();
  ASSERT_TRUE(PollUntil([&] { return absl::Now() - stopped > absl::Seconds(4); }));
  ASSERT_TRUE(pg.EnsureRunning().ok());
  // From the first answer on, the agent is healthy: what it sent while the database was away
  // counts, and no agent.lost is written for it.
  nlohmann::json first;
  ASSERT_TRUE(PollUntil([&] {
    if (fleet_.Ctl({"-o", "json", "get", "agent", "web-1"}, &out, &err) != 0) return false;
    first = nlohmann::json::parse(out, nullptr, false);
    return true;
  }));
  EXPECT_EQ(first.value("status", ""), "AGENT_STATUS_HEALTHY") << first.dump() << fleet_.Logs();
  EXPECT_TRUE(PollUntil([&] {
    return testing::HealthOf(fleet_.server(), fleet_.credentials()) == grpc::health::v1::HealthCheckResponse::SERVING;
  }));

  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec("shop", {"acme", "globex"}, 2, false)}, &out,
                       &err),
            0)
      << out << err << fleet_.Logs();
  const nlohmann::json agent = Agent("web-1");
  EXPECT_EQ(agent.value("incarnation", ""), "1") << agent.dump();
  EXPECT_EQ(agent.value("appliedRevision", ""), "2") << agent.dump();
  EXPECT_TRUE(PollUntil([&] { return Agent("web-1").value("status", "") == "AGENT_STATUS_HEALTHY"; }));
  // The sweep after the database returned judged the agent by what it had sent meanwhile.
  const nlohmann::json events = fleet_.CtlJson({"events", "--limit", "1000"});
  for (const auto& e : events["events"]) {
    EXPECT_NE(e.value("kind", ""), "agent.lost") << e.dump();
  }
}

TEST_F(OutagesTest, AnAgentCutOffFromTheMothershipSilentlyCatchesUpWhenItIsBack) {
  const std::string token = fleet_.CreateToken("shop");
  const std::string server = fleet_.server();
  const size_t colon = server.rfind(':');
  testing::TcpProxy proxy(server.substr(0, colon), std::atoi(server.c_str() + colon + 1));
  ASSERT_NE(proxy.port(), 0);
  fleet_.set_server(absl::StrCat("127.0.0.1:", proxy.port()));
  fleet_.StartAgent("web-1", token);
  fleet_.set_server(server);
  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec("shop", {"acme"}, 1, false)}, &out, &err), 0)
      << out << err << fleet_.Logs();
  ASSERT_TRUE(PollUntil([&] {
    return Converged({"web-1"}, "1") && Agent("web-1").value("status", "") == "AGENT_STATUS_HEALTHY";
  })) << fleet_.Logs();

  proxy.Freeze();
  const absl::Time frozen = absl::Now();
  ASSERT_TRUE(PollUntil([&] { return Agent("web-1").value("status", "") == "AGENT_STATUS_LOST"; }))
      << fleet_.Logs();
  auto applied = fleet_.CtlJson(
      {"apply", "-f", WriteSpec("shop", {"acme", "globex"}, 2, false), "--detach"});
  ASSERT_EQ(applied.value("revision", ""), "2") << applied.dump();
  proxy.Thaw();
  const absl::Time thawed = absl::Now();
  ASSERT_TRUE(PollUntil([&] { return Converged({"web-1"}, "2"); })) << fleet_.Logs();
  std::cout << "recovery: an agent cut off for " << absl::ToInt64Milliseconds(thawed - frozen)
            << " ms acked the revision applied meanwhile "
            << absl::ToInt64Milliseconds(absl::Now() - thawed) << " ms after its network was back\n";
  EXPECT_TRUE(PollUntil([&] { return Agent("web-1").value("status", "") == "AGENT_STATUS_HEALTHY"; }));
  EXPECT_EQ(Agent("web-1").value("incarnation", ""), "1");
  pqxx::connection c(fleet_.AgentDatabaseUrl("web-1", "globex"));
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT count(*) FROM schema_migrations")[0].as<int>(), 2);
}

TEST_F(OutagesTest, EverythingKilledAtOnceAndStartedAgainWithTwentyAgents) {
  const std::vector<std::string> clusters = {"c1", "c2", "c3", "c4"};
  std::map<std::string, std::string> urls, tokens;
  std::vector<std::string> names;
  for (const auto& cluster : clusters) {
    urls[cluster] = testing::PostgresServer::Get().FreshDatabase();
    tokens[cluster] = fleet_.CreateToken(cluster);
    for (int i = 1; i <= 5; ++i) {
      const std::string name = absl::StrCat(cluster, "-", i);
      names.push_back(name);
      StartPro(name, tokens[cluster], urls[cluster]);
    }
  }
  for (const auto& cluster : clusters) {
    ASSERT_TRUE(PollUntil([&] { return Leader(cluster).first >= 1; })) << fleet_.Logs();
    std::string out, err;
    ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec(cluster, {"acme", "globex"}, 1, true)}, &out,
                         &err),
              0)
        << out << err;
  }
  ASSERT_TRUE(PollUntil([&] { return Converged(names, "1"); }));
  std::map<std::string, int64_t> epochs;
  for (const auto& cluster : clusters) epochs[cluster] = Leader(cluster).first;
  // A revision for c1 is pending as everything dies: its leader is stopped first.
  fleet_.agent(Leader("c1").second)->Signal(SIGSTOP);
  auto pending = fleet_.CtlJson(
      {"apply", "-f", WriteSpec("c1", {"acme", "globex", "initech"}, 2, true), "--detach"});
  ASSERT_EQ(pending.value("revision", ""), "2") << pending.dump();

  const absl::Time killed = absl::Now();
  fleet_.mothership()->Signal(SIGKILL);
  for (const auto& name : names) fleet_.agent(name)->Signal(SIGKILL);
  fleet_.KillMothership();
  for (const auto& name : names) fleet_.KillAgent(name);
  ASSERT_TRUE(fleet_.StartMothershipAgain()) << fleet_.Logs();
  for (const auto& cluster : clusters) {
    for (int i = 1; i <= 5; ++i) {
      StartPro(absl::StrCat(cluster, "-", i), tokens[cluster], urls[cluster]);
    }
  }
  ASSERT_TRUE(PollUntil([&] {
    for (const auto& cluster : clusters) {
      if (Leader(cluster).first <= epochs[cluster]) return false;
    }
    return true;
  })) << fleet_.Logs();
  ASSERT_TRUE(PollUntil([&] {
    return fleet_.CtlJson({"get", "command", pending.value("commandId", "")}).value("state", "") ==
           "COMMAND_STATE_SUCCEEDED";
  })) << fleet_.Logs();
  std::cout << "recovery: everything killed and started again; every cluster led again and the "
            << "pending revision acked " << absl::ToInt64Milliseconds(absl::Now() - killed)
            << " ms after the kill\n";
  const nlohmann::json agents = fleet_.CtlJson({"get", "agents"});
  ASSERT_EQ(agents["agents"].size(), names.size());
  for (const auto& a : agents["agents"]) EXPECT_EQ(a.value("incarnation", ""), "1") << a.dump();
  for (const auto& cluster : clusters) {
    pqxx::connection c(urls[cluster]);
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM leadership")[0].as<int>(), 1);
    for (const char* tenant : {"acme", "globex"}) {
      EXPECT_EQ(tx.exec1(absl::StrCat("SELECT count(*) FROM ", tenant, ".schema_migrations"))[0]
                    .as<int>(),
                cluster == "c1" ? 2 : 1)
          << cluster << " " << tenant;
    }
  }
}

}  // namespace
}  // namespace tether
