// End to end with the real binaries as processes: a lite mothership, two lite agents with the
// local provisioner, tetherctl; SIGKILL the mothership and start it again; a wrong token.
#include <gtest/gtest.h>
#include <signal.h>

#include <grpcpp/grpcpp.h>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/pg/local_postgres.h"
#include "tests/testing/child_process.h"
#include "tests/testing/fleet.h"
#include "tests/testing/mothership_process.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"

namespace tether {
namespace {

using testing::ChildProcess;
using testing::HealthOf;
using testing::PollUntil;

class FleetTest : public ::testing::Test {
 protected:
  void TearDown() override {
    mothership_.reset();
    agents_.clear();
    // PostgreSQL servers started by pg_ctl outlive the processes that started them.
    common::RealProcessRunner runner;
    for (const std::string& root : {dir_.path() + "/mothership/postgres", dir_.path() + "/a1/postgres",
                                    dir_.path() + "/a2/postgres"}) {
      common::LocalPostgresOptions options;
      options.root = root;
      common::LocalPostgres pg(options, &runner);
      if (pg.EnsureInitialized().ok()) (void)pg.Stop();
    }
  }

  void StartMothership(const std::string& listen) {
    auto m = testing::StartMothershipProcess(TETHER_MOTHERSHIP_BIN, dir_.path() + "/mothership",
                                             {"--listen", listen, "--heartbeat-ttl", "3s"},
                                             dir_.path() + "/mothership.log");
    ASSERT_TRUE(m.ok()) << m.status();
    mothership_ = std::move(m->process);
    server_ = m->server;
    token_ = m->token;
  }

  std::unique_ptr<ChildProcess> StartAgent(const std::string& name, const std::string& bootstrap) {
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{TETHER_AGENT_BIN, "--mothership", server_, "--bootstrap-token",
                                 bootstrap, "--name", name, "--data-dir",
                                 dir_.path() + "/" + name, "--heartbeat-interval", "300ms",
                                 "--reconnect-max", "1s", "--health-listen", "127.0.0.1:0"},
        std::vector<std::string>{}, dir_.path() + "/" + name + ".log");
  }

  // Runs tetherctl; returns its exit status, stdout in *out and stderr in *err.
  int Ctl(std::vector<std::string> args, std::string* out, std::string* err = nullptr) {
    std::vector<std::string> argv = {TETHER_CTL_BIN, "--server", server_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string ignored;
    return testing::RunCommand(argv, {"TETHER_TOKEN=" + token_, "HOME=" + dir_.path()}, out,
                               err != nullptr ? err : &ignored);
  }

  nlohmann::json Agents() {
    std::string out;
    if (Ctl({"-o", "json", "get", "agents"}, &out) != 0) return nlohmann::json::object();
    return nlohmann::json::parse(out);
  }

  bool AllHealthyAndReady(size_t expected) {
    auto j = Agents();
    if (!j.contains("agents") || j["agents"].size() != expected) return false;
    for (const auto& a : j["agents"]) {
      if (a["status"] != "AGENT_STATUS_HEALTHY" || a["health"]["state"] != "PROVISIONING_STATE_READY") {
        return false;
      }
    }
    return true;
  }

  testing::TempDir dir_;
  std::unique_ptr<ChildProcess> mothership_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::string server_;
  std::string token_;
};

TEST_F(FleetTest, TwoAgentsSurviveAMothershipKilledWithSigkill) {
  StartMothership("127.0.0.1:0");
  std::string bootstrap;
  ASSERT_EQ(Ctl({"tokens", "create", "--cluster", "shop", "--ttl", "1h"}, &bootstrap), 0);
  bootstrap = std::string(absl::StripAsciiWhitespace(bootstrap));
  ASSERT_EQ(bootstrap.rfind("ttb_", 0), 0u) << bootstrap;

  agents_.push_back(StartAgent("a1", bootstrap));
  agents_.push_back(StartAgent("a2", bootstrap));
  ASSERT_TRUE(PollUntil([&] { return AllHealthyAndReady(2); }))
      << Agents().dump(2) << agents_[0]->Log() << agents_[1]->Log();

  // Both the mothership and the agents answer the standard health check.
  EXPECT_EQ(HealthOf(server_), grpc::health::v1::HealthCheckResponse::SERVING);
  for (const std::string name : {"a1", "a2"}) {
    auto addr = common::ReadFile(dir_.path() + "/" + name + "/health.addr");
    ASSERT_TRUE(addr.ok()) << addr.status();
    EXPECT_EQ(HealthOf(std::string(absl::StripAsciiWhitespace(*addr))),
              grpc::health::v1::HealthCheckResponse::SERVING);
  }

  std::map<std::string, std::pair<std::string, std::string>> before;  // name → id, incarnation
  const nlohmann::json listed = Agents();
  for (const auto& a : listed["agents"]) {
    before[a["name"].get<std::string>()] = {a["id"].get<std::string>(),
                                            a["incarnation"].get<std::string>()};
  }
  ASSERT_EQ(before.size(), 2u);

  mothership_->Signal(SIGKILL);
  EXPECT_EQ(mothership_->Wait(), 128 + SIGKILL);
  std::string out, err;
  EXPECT_NE(Ctl({"get", "agents"}, &out, &err), 0);
  EXPECT_NE(err.find("cannot reach the mothership"), std::string::npos) << err;

  StartMothership(server_);  // same address, same data dir
  ASSERT_TRUE(PollUntil([&] { return AllHealthyAndReady(2); })) << Agents().dump(2);
  const nlohmann::json relisted = Agents();
  for (const auto& a : relisted["agents"]) {
    const auto& was = before[a["name"].get<std::string>()];
    EXPECT_EQ(was.first, a["id"].get<std::string>());
    EXPECT_EQ(was.second, a["incarnation"].get<std::string>());
  }
  for (auto& agent : agents_) EXPECT_TRUE(agent->Running()) << agent->Log();
  // The agents reconnected; none registered again.
  EXPECT_EQ(agents_[0]->Log().find("registered name=a1", agents_[0]->Log().find("registered name=a1") + 1),
            std::string::npos);

  // The table output names both agents.
  ASSERT_EQ(Ctl({"get", "agents"}, &out), 0);
  EXPECT_NE(out.find("a1"), std::string::npos);
  EXPECT_NE(out.find("healthy"), std::string::npos);
}

TEST_F(FleetTest, AnAgentWithAWrongTokenFailsClearlyAndWritesNothing) {
  StartMothership("127.0.0.1:0");
  auto agent = StartAgent("intruder", "ttb_000000000000.not-a-real-token");
  EXPECT_EQ(agent->Wait(), 1);
  EXPECT_NE(agent->Log().find("registration refused: bootstrap token is not valid"), std::string::npos)
      << agent->Log();
  std::string out, err;
  EXPECT_EQ(Ctl({"get", "agent", "intruder"}, &out, &err), 1);
  EXPECT_EQ(err, "tetherctl: no agent named \"intruder\"\n");
  ASSERT_EQ(Ctl({"-o", "json", "events"}, &out), 0);
  EXPECT_EQ(out.find("intruder"), std::string::npos) << out;
}

// Plain text beyond loopback is for development only, and the mothership says so at start;
// on loopback it does not.
TEST_F(FleetTest, AMothershipWithoutTlsBeyondLoopbackWarnsLoudly) {
  StartMothership("127.0.0.1:0");
  EXPECT_EQ(mothership_->Log().find("WITHOUT TLS"), std::string::npos) << mothership_->Log();
  mothership_.reset();
  StartMothership("0.0.0.0:0");
  EXPECT_NE(mothership_->Log().find("WITHOUT TLS on 0.0.0.0:0, beyond loopback"),
            std::string::npos)
      << mothership_->Log();
}

TEST_F(FleetTest, TetherctlExplainsMissingAndWrongTokens) {
  StartMothership("127.0.0.1:0");
  std::string out, err;
  std::vector<std::string> argv = {TETHER_CTL_BIN, "--server", server_, "get", "agents"};
  EXPECT_EQ(testing::RunCommand(argv, {"TETHER_TOKEN=", "HOME=" + dir_.path()}, &out, &err), 1);
  EXPECT_NE(err.find("missing operator token"), std::string::npos) << err;
  EXPECT_EQ(testing::RunCommand(argv, {"TETHER_TOKEN=tto_wrong", "HOME=" + dir_.path()}, &out, &err), 1);
  EXPECT_NE(err.find("operator token is not valid"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1);
}

}  // namespace
}  // namespace tether
