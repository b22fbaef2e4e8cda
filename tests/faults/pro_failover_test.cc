// Faults in a pro cluster, with the real binaries: a lite mothership and three agents with
// `--provisioner external` sharing one database of the harness's PostgreSQL (tenants are
// schemas in it). One agent leads; when it is SIGKILLed a standby takes over with the next
// epoch, an apply queued meanwhile is acked by the new leader, and a migrate command the dead
// leader was part-way through is finished once by the new one, no migration applied twice.
// When the leader is cut off from the database by a network that stops forwarding without
// closing, while its mothership stream stays up, a standby breaks its lease and leads; the old
// leader stops acting, and once its network is back it stands by instead of writing.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <regex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "tests/testing/fleet.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/tcp_proxy.h"

namespace tether {
namespace {

using testing::PollUntil;

struct LeaderEvent {
  std::string agent;
  int64_t epoch = 0;
  std::string message;
  absl::Time at;  // when the mothership recorded it
};

// Prints how long the cluster was without an acting leader (the suite's recovery times).
void PrintRecovery(const std::string& scenario, absl::Time fault, const LeaderEvent& leader) {
  std::cout << "recovery: " << scenario << ": " << leader.agent << " leads in epoch "
            << leader.epoch << " " << absl::ToInt64Milliseconds(leader.at - fault)
            << " ms after the fault\n";
}

class ProFailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fleet_.StartMothership());
    bootstrap_ = fleet_.CreateToken("shop");
    url_ = testing::PostgresServer::Get().FreshDatabase();
  }

  void StartPro(const std::string& name, const std::string& url = "") {
    fleet_.StartAgent(name, bootstrap_,
                      {"--provisioner", "external", "--database-url", url.empty() ? url_ : url});
  }

  // The shared database's URL through `proxy`.
  std::string ThroughProxy(const testing::TcpProxy& proxy) {
    const std::string port = absl::StrCat(":", testing::PostgresServer::Get().port(), "/");
    return absl::StrReplaceAll(url_, {{port, absl::StrCat(":", proxy.port(), "/")}});
  }

  // Every agent.leader event, oldest first.
  std::vector<LeaderEvent> LeaderEvents() {
    std::vector<LeaderEvent> out;
    static const std::regex kMessage("agent (\\S+) leads cluster shop in epoch (\\d+).*");
    const nlohmann::json events = fleet_.CtlJson({"events", "--limit", "1000"});
    if (!events.contains("events")) return out;
    for (const auto& e : events["events"]) {
      if (e.value("kind", "") != "agent.leader") continue;
      const std::string message = e.value("message", "");
      std::smatch m;
      if (!std::regex_match(message, m, kMessage)) continue;
      LeaderEvent event{m[1], 0, message, absl::InfinitePast()};
      EXPECT_TRUE(absl::SimpleAtoi(m[2].str(), &event.epoch));
      std::string error;
      EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, e.value("at", ""), &event.at, &error))
          << error;
      out.push_back(event);
    }
    return out;
  }

  // Waits until the mothership has recorded a leader in `epoch`; returns it.
  std::optional<LeaderEvent> WaitForLeader(int64_t epoch) {
    std::optional<LeaderEvent> found;
    PollUntil([&] {
      for (const auto& e : LeaderEvents()) {
        if (e.epoch == epoch) found = e;
      }
      return found.has_value();
    });
    return found;
  }

  // name → role word ("leader", "standby") as `get agents` shows the agents' health.
  std::map<std::string, std::string> Roles() {
    std::map<std::string, std::string> out;
    const nlohmann::json agents = fleet_.CtlJson({"get", "agents"});
    if (!agents.contains("agents")) return out;
    for (const auto& a : agents["agents"]) {
      std::string role = a.contains("health") ? a["health"].value("role", "") : "";
      if (absl::StartsWith(role, "AGENT_ROLE_")) role = absl::AsciiStrToLower(role.substr(11));
      out[a.value("name", "")] = role;
    }
    return out;
  }

  // A spec of schema tenancy over `tenants` with `migrations` (name → SQL); policy manual
  // leaves them to `tetherctl migrate`.
  std::string WriteSpec(const std::vector<std::string>& tenants,
                        const std::map<std::string, std::string>& migrations,
                        bool manual = false) {
    const std::string dir = absl::StrCat(fleet_.dir(), "/spec", ++specs_);
    std::filesystem::create_directories(dir + "/migrations");
    for (const auto& [name, sql] : migrations) {
      EXPECT_TRUE(common::WriteFileAtomically(dir + "/migrations/" + name, sql, 0644).ok());
    }
    const std::string yaml = absl::StrCat(
        "cluster: shop\ntenancy: schema\nmigrations:\n", manual ? "  policy: manual\n" : "",
        "  source: ./migrations\ntenants: [", absl::StrJoin(tenants, ", "), "]\n");
    EXPECT_TRUE(common::WriteFileAtomically(dir + "/spec.yaml", yaml, 0644).ok());
    return dir + "/spec.yaml";
  }

  int64_t Query(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  testing::Fleet fleet_;
  std::string bootstrap_;
  std::string url_;
  int specs_ = 0;
};

const std::map<std::string, std::string> kFirst = {
    {"0001_orders.up.sql", "CREATE TABLE orders (id int);"}};
const std::map<std::string, std::string> kSecond = {
    {"0001_orders.up.sql", "CREATE TABLE orders (id int);"},
    {"0002_note.up.sql", "ALTER TABLE orders ADD note text;"}};

TEST_F(ProFailoverTest, OneOfThreeLeadsAndAStandbyTakesOverWhenItIsKilled) {
  for (const char* name : {"pro-1", "pro-2", "pro-3"}) StartPro(name);
  auto first = WaitForLeader(1);
  ASSERT_TRUE(first.has_value()) << fleet_.Logs();
  ASSERT_TRUE(PollUntil([&] {
    auto roles = Roles();
    int leaders = 0, standbys = 0;
    for (const auto& [name, role] : roles) {
      leaders += role == "leader";
      standbys += role == "standby";
    }
    return roles[first->agent] == "leader" && leaders == 1 && standbys == 2;
  })) << fleet_.CtlJson({"get", "agents"}).dump() << fleet_.Logs();

  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec({"acme", "globex"}, kFirst)}, &out, &err), 0)
      << out << err << fleet_.Logs();
  EXPECT_NE(out.find("succeeded on 1 agent"), std::string::npos) << out;  // the leader alone
  EXPECT_EQ(Query("SELECT count(*) FROM acme.schema_migrations"), 1);

  const absl::Time killed = absl::Now();
  fleet_.KillAgent(first->agent);
  // Queued while the cluster may have no leader: acked by whichever agent leads next.
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec({"acme", "globex", "initech"}, kSecond)}, &out,
                       &err),
            0)
      << out << err << fleet_.Logs();
  auto second = WaitForLeader(2);
  ASSERT_TRUE(second.has_value()) << fleet_.Logs();
  PrintRecovery("leader SIGKILLed", killed, *second);
  EXPECT_NE(second->agent, first->agent);
  EXPECT_TRUE(absl::StrContains(second->message, absl::StrCat("(after ", first->agent, ")")))
      << second->message;
  EXPECT_EQ(LeaderEvents().size(), 2u);
  for (const char* tenant : {"acme", "globex", "initech"}) {
    EXPECT_EQ(Query(absl::StrCat("SELECT count(*) FROM ", tenant, ".schema_migrations")), 2)
        << tenant;
  }
  EXPECT_EQ(Query("SELECT epoch FROM leadership WHERE cluster = 'shop'"), 2);
  EXPECT_TRUE(PollUntil([&] { return Roles()[second->agent] == "leader"; }));
}

// A statement that waits while the test holds the gate of the tenant whose schema is first on
// the search path (a transaction-level advisory lock, released by the migration's own end).
constexpr const char* kPassGate = "SELECT pg_advisory_xact_lock(hashtext(current_schema()));";

TEST_F(ProFailoverTest, TheLeaderKilledPartWayThroughAMigrateLeavesItToTheNextOnceEach) {
  for (const char* name : {"pro-1", "pro-2", "pro-3"}) StartPro(name);
  auto first = WaitForLeader(1);
  ASSERT_TRUE(first.has_value()) << fleet_.Logs();
  // Every migration leaves a row behind (applied twice, it would leave two); t12's wait at the
  // gate the test holds, so the kill lands while it is part-way through.
  std::map<std::string, std::string> migrations = {
      {"0001_log.up.sql", "CREATE TABLE applied (version int); INSERT INTO applied VALUES (1);"}};
  for (int v = 2; v <= 6; ++v) {
    migrations[absl::StrCat("000", v, "_step.up.sql")] =
        absl::StrCat(kPassGate, " INSERT INTO applied VALUES (", v, ");");
  }
  std::vector<std::string> tenants;
  for (int i = 1; i <= 12; ++i) tenants.push_back(absl::StrCat("t", i));
  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec(tenants, migrations, /*manual=*/true)}, &out,
                       &err),
            0)
      << out << err << fleet_.Logs();

  auto gate = std::make_unique<pqxx::connection>(url_);
  {
    pqxx::nontransaction tx(*gate);
    tx.exec("SELECT pg_advisory_lock(hashtext('t12'))");
  }
  auto queued = fleet_.CtlJson({"migrate", "shop", "--detach"});
  const std::string id = queued.value("id", "");
  ASSERT_FALSE(id.empty()) << queued.dump() << fleet_.Logs();
  ASSERT_TRUE(PollUntil([&] {
    std::string lines;
    return fleet_.Ctl({"logs", id}, &lines) == 0 && absl::StrContains(lines, "t12: applying 2_step");
  })) << fleet_.Logs();
  fleet_.KillAgent(first->agent);
  const absl::Time opened = absl::Now();
  gate.reset();  // the dead leader's transaction ends, rolled back; the next leader claims

  auto second = WaitForLeader(2);
  ASSERT_TRUE(second.has_value()) << fleet_.Logs();
  PrintRecovery("leader SIGKILLed mid-migrate (from the gate's opening)", opened, *second);
  EXPECT_TRUE(absl::StrContains(second->message, "1 unfinished command moves to it"))
      << second->message;
  ASSERT_TRUE(PollUntil([&] {
    const std::string state = fleet_.CtlJson({"get", "command", id}).value("state", "");
    return state == "COMMAND_STATE_SUCCEEDED" || state == "COMMAND_STATE_FAILED";
  })) << fleet_.Logs();
  auto command = fleet_.CtlJson({"get", "command", id});
  EXPECT_EQ(command["state"], "COMMAND_STATE_SUCCEEDED") << command.dump();
  ASSERT_EQ(command["targets"].size(), 1u) << command.dump();
  EXPECT_EQ(command["targets"][0]["agent"], second->agent) << command.dump();
  for (const auto& t : tenants) {
    EXPECT_EQ(Query(absl::StrCat("SELECT count(*) FROM ", t, ".applied")), 6) << t;
    EXPECT_EQ(Query(absl::StrCat("SELECT count(DISTINCT version) FROM ", t, ".applied")), 6) << t;
  }
  EXPECT_EQ(fleet_.FinishedEvents(id), 1);
}

TEST_F(ProFailoverTest, ALeaderCutOffFromTheDatabaseIsReplacedAndDoesNotWriteWhenItIsBack) {
  testing::TcpProxy proxy("127.0.0.1", testing::PostgresServer::Get().port());
  ASSERT_NE(proxy.port(), 0);
  StartPro("pro-1", ThroughProxy(proxy));  // first, so it leads
  auto first = WaitForLeader(1);
  ASSERT_TRUE(first.has_value()) << fleet_.Logs();
  ASSERT_EQ(first->agent, "pro-1");
  StartPro("pro-2");
  StartPro("pro-3");
  std::string out, err;
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec({"acme"}, kFirst)}, &out, &err), 0)
      << out << err << fleet_.Logs();

  // The network between pro-1 and the database stops forwarding; its mothership stream stays.
  const absl::Time frozen = absl::Now();
  proxy.Freeze();
  auto second = WaitForLeader(2);
  ASSERT_TRUE(second.has_value()) << fleet_.Logs();
  PrintRecovery("leader cut off from the database", frozen, *second);
  EXPECT_NE(second->agent, "pro-1");
  // pro-1 stops acting on a lease it cannot renew, and says so on its stream.
  EXPECT_TRUE(PollUntil([&] { return Roles()["pro-1"] == "standby"; })) << fleet_.Logs();
  ASSERT_EQ(fleet_.Ctl({"apply", "-f", WriteSpec({"acme", "globex"}, kSecond)}, &out, &err), 0)
      << out << err << fleet_.Logs();

  proxy.Thaw();
  // Back on the network, pro-1 finds its session ended and its epoch over: it stands by.
  EXPECT_TRUE(PollUntil([&] {
    return absl::StrContains(fleet_.agent("pro-1")->Log(), "leadership lost");
  })) << fleet_.Logs();
  EXPECT_EQ(Query("SELECT epoch FROM leadership WHERE cluster = 'shop'"), 2);
  EXPECT_EQ(LeaderEvents().size(), 2u);
  EXPECT_EQ(Roles()["pro-1"], "standby");
  EXPECT_EQ(Query("SELECT count(*) FROM acme.schema_migrations"), 2);
  EXPECT_EQ(Query("SELECT count(*) FROM globex.schema_migrations"), 2);
}

}  // namespace
}  // namespace tether
