// The lxd tier: the real LXD daemon and container that tests/lxd/setup.sh prepared (it writes
// their settings to an env file; TETHER_LXD_ENV names another). The real libcurl transport
// against the daemon, and the real binaries: a lite mothership, then tether-agent on the host
// with --provisioner lxd installing PostgreSQL 15 inside the container from the offline bundle,
// reached through the container's proxy device. Tests that need the setup skip without it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/provision/lxd/lxd_client.h"
#include "agent/provision/lxd/lxd_transport.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/pg/local_postgres.h"
#include "common/pg/pool.h"
#include "tests/testing/child_process.h"
#include "tests/testing/mothership_process.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"

namespace tether {
namespace {

using testing::ChildProcess;
using testing::PollUntil;

// KEY=VALUE lines written by tests/lxd/setup.sh; empty when there is no setup.
std::map<std::string, std::string> ReadLxdEnv() {
  const char* override_path = std::getenv("TETHER_LXD_ENV");
  std::ifstream in(override_path != nullptr ? override_path : TETHER_LXD_ENV_FILE);
  std::map<std::string, std::string> env;
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) env[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return env;
}

class LxdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    env_ = ReadLxdEnv();
    if (env_["TETHER_LXD_INSTANCE"].empty()) {
      GTEST_SKIP() << "no LXD set up: run tests/lxd/setup.sh first (it writes "
                   << TETHER_LXD_ENV_FILE << ")";
    }
    agent::CurlLxdTransportOptions options;
    options.socket_path = env_["TETHER_LXD_SOCKET"];
    transport_ = std::make_unique<agent::CurlLxdTransport>(options);
    client_ = std::make_unique<agent::LxdClient>(transport_.get(), common::RealClock::Get());
  }

  void TearDown() override {
    agents_.clear();
    mothership_.reset();
    // The lite mothership's PostgreSQL was started by pg_ctl and outlives its process.
    common::RealProcessRunner runner;
    common::LocalPostgresOptions options;
    options.root = dir_.path() + "/mothership/postgres";
    common::LocalPostgres pg(options, &runner);
    if (pg.EnsureInitialized().ok()) (void)pg.Stop();
  }

  void StartMothership() {
    auto m = testing::StartMothershipProcess(TETHER_MOTHERSHIP_BIN, dir_.path() + "/mothership",
                                             {"--listen", "127.0.0.1:0"},
                                             dir_.path() + "/mothership.log");
    ASSERT_TRUE(m.ok()) << m.status();
    mothership_ = std::move(m->process);
    server_ = m->server;
    token_ = m->token;
    std::string out;
    ASSERT_EQ(Ctl({"tokens", "create", "--cluster", "shop", "--ttl", "1h"}, &out), 0);
    bootstrap_ = std::string(absl::StripAsciiWhitespace(out));
  }

  ChildProcess* StartAgent(const std::string& name, const std::string& instance) {
    agents_.push_back(std::make_unique<ChildProcess>(
        std::vector<std::string>{TETHER_AGENT_BIN,
                                 "--mothership",
                                 server_,
                                 "--bootstrap-token",
                                 bootstrap_,
                                 "--name",
                                 name,
                                 "--data-dir",
                                 dir_.path() + "/" + name,
                                 "--heartbeat-interval",
                                 "300ms",
                                 "--provisioner",
                                 "lxd",
                                 "--lxd-socket",
                                 env_["TETHER_LXD_SOCKET"],
                                 "--lxd-instance",
                                 instance,
                                 "--lxd-bundle",
                                 env_["TETHER_LXD_BUNDLE"],
                                 "--lxd-postgres-address",
                                 env_["TETHER_LXD_POSTGRES_ADDRESS"]},
        std::vector<std::string>{}, dir_.path() + "/" + name + ".log"));
    return agents_.back().get();
  }

  int Ctl(std::vector<std::string> args, std::string* out) {
    std::vector<std::string> argv = {TETHER_CTL_BIN, "--server", server_};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string err;
    return testing::RunCommand(argv, {"TETHER_TOKEN=" + token_, "HOME=" + dir_.path()}, out, &err);
  }

  // The agent's entry in `tetherctl -o json get agents`; null while it is not listed.
  nlohmann::json AgentEntry(const std::string& name) {
    std::string out;
    if (Ctl({"-o", "json", "get", "agents"}, &out) != 0) return nullptr;
    const nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
    if (!j.is_object() || !j.contains("agents")) return nullptr;
    for (const auto& a : j["agents"]) {
      if (a.value("name", "") == name) return a;
    }
    return nullptr;
  }

  std::map<std::string, std::string> env_;
  std::unique_ptr<agent::CurlLxdTransport> transport_;
  std::unique_ptr<agent::LxdClient> client_;
  testing::TempDir dir_;
  std::unique_ptr<ChildProcess> mothership_;
  std::vector<std::unique_ptr<ChildProcess>> agents_;
  std::string server_, token_, bootstrap_;
};

TEST(LxdTransportTest, AMissingSocketIsUnavailableWithTheSocketNamed) {
  testing::TempDir dir;
  agent::CurlLxdTransportOptions options;
  options.socket_path = dir.path() + "/no-such.socket";
  agent::CurlLxdTransport transport(options);
  agent::LxdClient client(&transport, common::RealClock::Get());
  auto info = client.GetInstance("c1");
  ASSERT_EQ(info.status().code(), absl::StatusCode::kUnavailable) << info.status();
  EXPECT_NE(info.status().message().find(options.socket_path), absl::string_view::npos)
      << info.status();
  EXPECT_NE(info.status().message().find("No such file or directory"), absl::string_view::npos)
      << info.status();
  EXPECT_EQ(info.status().message().find("port 80"), absl::string_view::npos) << info.status();
}

TEST_F(LxdTest, TheCurlTransportSpeaksToTheRealDaemon) {
  agent::LxdHttpRequest request;
  request.method = "GET";
  request.path = "/1.0";
  auto response = transport_->Send(request);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status, 200);
  const nlohmann::json j = nlohmann::json::parse(response->body);
  EXPECT_EQ(j["type"], "sync");
  EXPECT_EQ(j["metadata"]["api_version"], "1.0");

  auto info = client_->GetInstance(env_["TETHER_LXD_INSTANCE"]);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->status, "Running");
  auto missing = client_->GetInstance("tether-no-such-instance");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
}

TEST_F(LxdTest, TheCurlTransportSpeaksHttpsWithAClientCertificate) {
  agent::CurlLxdTransportOptions options;
  options.url = env_["TETHER_LXD_URL"];
  options.client_cert = env_["TETHER_LXD_CERT"];
  options.client_key = env_["TETHER_LXD_KEY"];
  options.server_ca = env_["TETHER_LXD_SERVER_CERT"];  // LXD's self-signed certificate, pinned
  ASSERT_TRUE(absl::StartsWith(options.url, "https://127.0.0.1:")) << options.url;
  agent::LxdHttpRequest request;
  request.method = "GET";
  request.path = "/1.0";
  {
    agent::CurlLxdTransport https(options);
    auto response = https.Send(request);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(nlohmann::json::parse(response->body)["metadata"]["auth"], "trusted");
    agent::LxdClient client(&https, common::RealClock::Get());
    auto info = client.GetInstance(env_["TETHER_LXD_INSTANCE"]);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->status, "Running");
  }
  {
    // Without the client certificate LXD does not trust us.
    agent::CurlLxdTransportOptions anonymous = options;
    anonymous.client_cert.clear();
    anonymous.client_key.clear();
    agent::CurlLxdTransport https(anonymous);
    auto response = https.Send(request);
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_EQ(nlohmann::json::parse(response->body)["metadata"]["auth"], "untrusted");
  }
  {
    // The server's certificate is verified: the system's store does not know LXD's.
    agent::CurlLxdTransportOptions unpinned = options;
    unpinned.server_ca.clear();
    agent::CurlLxdTransport https(unpinned);
    auto response = https.Send(request);
    EXPECT_EQ(response.status().code(), absl::StatusCode::kUnavailable) << response.status();
  }
}

TEST_F(LxdTest, ExecFilesAndOperationsHaveTheShapesTheClientReads) {
  const std::string instance = env_["TETHER_LXD_INSTANCE"];
  const std::string dir = absl::StrCat("/var/lib/tether-lxd-test-", ::getpid());
  ASSERT_TRUE(client_->MakeDirectory(instance, dir, {0, 0, 0700}).ok());
  ASSERT_TRUE(client_->MakeDirectory(instance, dir, {0, 0, 0700}).ok());  // again: fine
  ASSERT_TRUE(client_->PushFile(instance, dir + "/a b.sh", "echo pushed\n", {0, 0, 0750}).ok());

  agent::LxdExecRequest request;
  request.command = {"/bin/sh", "-c",
                     absl::StrCat("stat -c %a '", dir, "/a b.sh'; . '", dir, "/a b.sh'; ",
                                  "echo \"$SECRET\"; echo to-stderr >&2; rm -r ", dir, "; exit 3")};
  request.environment = {{"SECRET", "from-the-environment"}};
  auto result = client_->Exec(instance, request, absl::Minutes(1));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->exit_code, 3);
  EXPECT_EQ(result->stdout_text, "750\npushed\nfrom-the-environment\n");
  EXPECT_EQ(result->stderr_text, "to-stderr\n");

  // A command that does not exist fails the operation itself.
  auto missing = client_->Exec(instance, {{"/no/such/command"}, {}, ""}, absl::Minutes(1));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInternal) << missing.status();
  EXPECT_NE(missing.status().message().find("Command not found"), absl::string_view::npos)
      << missing.status();
}

TEST_F(LxdTest, TheAgentInstallsPostgresInsideTheContainerOfflineAndBecomesReady) {
  const std::string instance = env_["TETHER_LXD_INSTANCE"];
  // Offline for real: the container has no network interface but loopback.
  auto links = client_->Exec(instance, {{"ip", "-o", "link", "show"}, {}, ""}, absl::Minutes(1));
  ASSERT_TRUE(links.ok()) << links.status();
  EXPECT_EQ(std::count(links->stdout_text.begin(), links->stdout_text.end(), '\n'), 1)
      << links->stdout_text;
  EXPECT_NE(links->stdout_text.find(": lo:"), std::string::npos) << links->stdout_text;

  // setup.sh launches a fresh container; a second run against the same one finds PostgreSQL
  // already there, which the script must accept too (it is idempotent).
  auto before = client_->Exec(
      instance, {{"dpkg-query", "-W", "-f=${Status}", "postgresql-15"}, {}, ""}, absl::Minutes(1));
  ASSERT_TRUE(before.ok()) << before.status();
  const bool fresh = before->stdout_text.find("install ok installed") == std::string::npos;

  StartMothership();
  ChildProcess* agent = StartAgent("lxd-agent", instance);
  nlohmann::json entry;
  const bool ready = PollUntil(
      [&] {
        entry = AgentEntry("lxd-agent");
        return !agent->Running() || (entry.is_object() && entry["health"].value("state", "") ==
                                                              "PROVISIONING_STATE_READY");
      },
      absl::Minutes(5));
  ASSERT_TRUE(ready && agent->Running()) << entry.dump(2) << "\n" << agent->Log();
  EXPECT_EQ(entry["health"]["provisioner"], "lxd");
  EXPECT_TRUE(absl::StartsWith(entry["health"].value("postgresVersion", ""), "15."))
      << entry.dump(2);

  // The agent's role answers through the proxy device with the password from its data dir.
  auto password = common::ReadFile(dir_.path() + "/lxd-agent/postgres.password");
  ASSERT_TRUE(password.ok()) << password.status();
  auto ping = common::Ping(
      absl::StrCat("postgresql://tether:", absl::StripAsciiWhitespace(*password), "@",
                   env_["TETHER_LXD_POSTGRES_ADDRESS"], "/tether_agent?connect_timeout=5"));
  ASSERT_TRUE(ping.ok()) << ping.status();
  EXPECT_TRUE(absl::StartsWith(ping->server_version, "15.")) << ping->server_version;
  // A wrong password is refused (scram-sha-256, not trust).
  auto wrong =
      common::Ping(absl::StrCat("postgresql://tether:wrong@", env_["TETHER_LXD_POSTGRES_ADDRESS"],
                                "/postgres?connect_timeout=5"));
  EXPECT_FALSE(wrong.ok());

  // The script's output reached the agent's log, line by line; the secret did not.
  const std::string log = agent->Log();
  EXPECT_NE(log.find("provision: running install-postgres.sh in LXD instance " + instance),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("provision: PostgreSQL 15 is ready on 127.0.0.1:5432 for the role tether"),
            std::string::npos)
      << log;
  if (fresh) {
    EXPECT_NE(log.find("provision: installing postgresql-15 from the bundle"), std::string::npos)
        << log;
    EXPECT_NE(log.find("provision: Setting up postgresql-15 ("), std::string::npos) << log;
  }
  EXPECT_EQ(log.find(std::string(absl::StripAsciiWhitespace(*password))), std::string::npos);
}

TEST_F(LxdTest, AMissingInstanceIsReportedClearlyInTheAgentsHealth) {
  StartMothership();
  const std::string missing = absl::StrCat("tether-missing-", ::getpid());
  ChildProcess* agent = StartAgent("lost-agent", missing);
  nlohmann::json entry;
  const std::string expected = absl::StrCat("LXD instance ", missing, " not found");
  ASSERT_TRUE(PollUntil([&] {
    entry = AgentEntry("lost-agent");
    return entry.is_object() && entry["health"].value("state", "") == "PROVISIONING_STATE_FAILED" &&
           entry["health"].value("reason", "") == expected;
  })) << entry.dump(2)
      << "\n"
      << agent->Log();
  EXPECT_TRUE(agent->Running());  // it keeps retrying with backoff
  EXPECT_NE(agent->Log().find(expected), std::string::npos);
}

}  // namespace
}  // namespace tether
