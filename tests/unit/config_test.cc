// Configuration precedence (flag > environment > file > default) and validation, for the three
// binaries.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>

#include "agent/config.h"
#include "common/files.h"
#include "controlplane/config.h"
#include "tests/testing/postgres_server.h"
#include "tools/ctl/config.h"

namespace tether {
namespace {

// Sets environment variables for one test and restores them after.
class ScopedEnv {
 public:
  void Set(const std::string& key, const std::string& value) {
    const char* old = std::getenv(key.c_str());
    saved_.emplace_back(key, old ? std::optional<std::string>(old) : std::nullopt);
    ::setenv(key.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() {
    for (auto it = saved_.rbegin(); it != saved_.rend(); ++it) {
      if (it->second) {
        ::setenv(it->first.c_str(), it->second->c_str(), 1);
      } else {
        ::unsetenv(it->first.c_str());
      }
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

template <typename Config, typename AddFlags>
Config Parse(AddFlags add, std::vector<std::string> args) {
  Config config;
  CLI::App app;
  add(app, &config);
  std::reverse(args.begin(), args.end());
  args.push_back("prog");
  std::reverse(args.begin(), args.end());
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return config;
}

ctl::CtlConfig ParseCtl(std::vector<std::string> args) {
  return Parse<ctl::CtlConfig>(ctl::AddCtlFlags, std::move(args));
}

TEST(CtlConfigTest, FlagBeatsEnvironmentBeatsFileBeatsDefault) {
  testing::TempDir dir;
  const std::string file = dir.path() + "/config";
  ASSERT_TRUE(common::WriteFileAtomically(file, "server: file:1\ntoken: file-token\ntls_ca: /ca.pem\n", 0600).ok());
  ScopedEnv env;
  env.Set("TETHER_CONFIG", file);
  env.Set("TETHER_SERVER", "env:2");
  ::unsetenv("TETHER_TOKEN");
  ::unsetenv("TETHER_TLS_CA");

  auto c = ParseCtl({"--server", "flag:3"});
  ASSERT_TRUE(ctl::FinishCtlConfig(&c).ok());
  EXPECT_EQ(c.server, "flag:3");
  EXPECT_EQ(c.token, "file-token");
  EXPECT_EQ(c.tls_ca, "/ca.pem");

  c = ParseCtl({});
  ASSERT_TRUE(ctl::FinishCtlConfig(&c).ok());
  EXPECT_EQ(c.server, "env:2");

  env.Set("TETHER_TOKEN", "env-token");
  c = ParseCtl({});
  ASSERT_TRUE(ctl::FinishCtlConfig(&c).ok());
  EXPECT_EQ(c.token, "env-token");
}

TEST(CtlConfigTest, DefaultServerWhenNothingSaysOtherwise) {
  testing::TempDir dir;
  ScopedEnv env;
  env.Set("HOME", dir.path());  // no ~/.config/tether/config there
  ::unsetenv("TETHER_SERVER");
  ::unsetenv("TETHER_CONFIG");
  auto c = ParseCtl({});
  ASSERT_TRUE(ctl::FinishCtlConfig(&c).ok());
  EXPECT_EQ(c.server, ctl::kDefaultServer);
}

TEST(CtlConfigTest, TokenFileIsRead) {
  testing::TempDir dir;
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/operator.token", "tto_abc\n", 0600).ok());
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/config",
                                          "token_file: " + dir.path() + "/operator.token\n", 0600)
                  .ok());
  ScopedEnv env;
  env.Set("TETHER_CONFIG", dir.path() + "/config");
  ::unsetenv("TETHER_TOKEN");
  auto c = ParseCtl({});
  ASSERT_TRUE(ctl::FinishCtlConfig(&c).ok());
  EXPECT_EQ(c.token, "tto_abc");
}

TEST(CtlConfigTest, UnknownKeysInTheFileAreRejected) {
  testing::TempDir dir;
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/config", "sever: typo:1\n", 0600).ok());
  ScopedEnv env;
  env.Set("TETHER_CONFIG", dir.path() + "/config");
  auto c = ParseCtl({});
  absl::Status st = ctl::FinishCtlConfig(&c);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("unknown key \"sever\""), absl::string_view::npos) << st;
}

TEST(CtlConfigTest, MissingExplicitConfigFileIsAnError) {
  ScopedEnv env;
  env.Set("TETHER_CONFIG", "/nonexistent/tether-config");
  auto c = ParseCtl({});
  EXPECT_EQ(ctl::FinishCtlConfig(&c).code(), absl::StatusCode::kNotFound);
}

// Parses `args` and finishes the config with the same CLI11 app, as main() does.
template <typename Config, typename AddFlags, typename Finish>
std::pair<Config, absl::Status> ParseAndFinish(AddFlags add, Finish finish,
                                               std::vector<std::string> args) {
  Config config;
  CLI::App app;
  add(app, &config);
  args.insert(args.begin(), "prog");
  std::vector<const char*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  absl::Status st = finish(app, &config);
  return {config, st};
}

std::pair<agent::AgentConfig, absl::Status> Agent(std::vector<std::string> args) {
  return ParseAndFinish<agent::AgentConfig>(agent::AddAgentFlags, agent::FinishAgentConfig,
                                            std::move(args));
}

std::pair<controlplane::MothershipConfig, absl::Status> Mothership(std::vector<std::string> args) {
  return ParseAndFinish<controlplane::MothershipConfig>(
      controlplane::AddMothershipFlags, controlplane::FinishMothershipConfig, std::move(args));
}

TEST(AgentConfigTest, DefaultsNameFromHostnameAndInstanceFromName) {
  ScopedEnv env;
  ::unsetenv("TETHER_NAME");
  ::unsetenv("TETHER_LXD_INSTANCE");
  ::unsetenv("DATABASE_URL");
  auto [c, st] = Agent({});
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_FALSE(c.name.empty());
  EXPECT_EQ(c.lxd_instance, c.name);
  EXPECT_EQ(c.provisioner, agent::ProvisionerKind::kLocal);
}

TEST(AgentConfigTest, EnvironmentFillsWhatFlagsLeaveAndDurationsParse) {
  ScopedEnv env;
  env.Set("TETHER_NAME", "from-env");
  env.Set("TETHER_HEARTBEAT_INTERVAL", "250ms");
  ::unsetenv("DATABASE_URL");
  auto [c, st] = Agent({"--reconnect-max", "2s"});
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.name, "from-env");
  EXPECT_EQ(c.heartbeat_interval, absl::Milliseconds(250));
  EXPECT_EQ(c.reconnect_max, absl::Seconds(2));
  EXPECT_EQ(Agent({"--name", "from-flag"}).first.name, "from-flag");
}

TEST(AgentConfigTest, FlagBeatsEnvironmentBeatsConfigFile) {
  testing::TempDir dir;
  const std::string file = dir.path() + "/agent.yaml";
  ASSERT_TRUE(common::WriteFileAtomically(
                  file, "name: from-file\ncluster: shop\nheartbeat-interval: 2s\nmothership: file:1\n",
                  0600)
                  .ok());
  ScopedEnv env;
  ::unsetenv("DATABASE_URL");
  ::unsetenv("TETHER_CLUSTER");
  ::unsetenv("TETHER_HEARTBEAT_INTERVAL");
  env.Set("TETHER_NAME", "from-env");
  env.Set("TETHER_MOTHERSHIP", "env:2");
  auto [c, st] = Agent({"--config", file, "--mothership", "flag:3"});
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.mothership, "flag:3");
  EXPECT_EQ(c.name, "from-env");
  EXPECT_EQ(c.cluster, "shop");
  EXPECT_EQ(c.heartbeat_interval, absl::Seconds(2));
}

TEST(AgentConfigTest, ConfigFileRejectsUnknownKeysAndBadValues) {
  testing::TempDir dir;
  ScopedEnv env;
  ::unsetenv("DATABASE_URL");
  ::unsetenv("TETHER_PROVISIONER");
  ::unsetenv("TETHER_HEARTBEAT_INTERVAL");
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/a.yaml", "nmae: typo\n", 0600).ok());
  auto [c1, st1] = Agent({"--config", dir.path() + "/a.yaml"});
  EXPECT_EQ(st1.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st1.message().find("unknown key \"nmae\""), absl::string_view::npos) << st1;
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/b.yaml", "provisioner: docker\n", 0600).ok());
  EXPECT_EQ(Agent({"--config", dir.path() + "/b.yaml"}).second.code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(
      common::WriteFileAtomically(dir.path() + "/c.yaml", "heartbeat-interval: soon\n", 0600).ok());
  EXPECT_EQ(Agent({"--config", dir.path() + "/c.yaml"}).second.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Agent({"--config", dir.path() + "/missing.yaml"}).second.code(),
            absl::StatusCode::kNotFound);
}

TEST(AgentConfigTest, DatabaseUrlMeansExternalAndLxdUrlNeedsCertificates) {
  ScopedEnv env;
  ::unsetenv("DATABASE_URL");
  auto [c, st] = Agent({"--name", "a", "--database-url", "postgresql://x/y"});
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.provisioner, agent::ProvisionerKind::kExternal);
  EXPECT_EQ(Agent({"--name", "a", "--provisioner", "external"}).second.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Agent({"--name", "a", "--provisioner", "lxd", "--lxd-url", "https://h:8443"}).second.code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(AgentConfigTest, BadDurationsAndProvisionersAreRefusedAtParse) {
  EXPECT_THROW(Agent({"--heartbeat-interval", "soon"}), CLI::ValidationError);
  EXPECT_THROW(Agent({"--provisioner", "docker"}), CLI::ValidationError);
}

TEST(MothershipConfigTest, TlsFlagsGoTogether) {
  ScopedEnv env;
  ::unsetenv("DATABASE_URL");
  EXPECT_EQ(Mothership({"--tls-cert", "/c.pem"}).second.code(), absl::StatusCode::kInvalidArgument);
  auto [c, st] = Mothership({"--heartbeat-ttl", "30s", "--data-dir", "/d"});
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(c.heartbeat_ttl, absl::Seconds(30));
  EXPECT_EQ(c.data_dir, "/d");
  EXPECT_EQ(c.listen, "127.0.0.1:7400");  // the default, not a port any test binds
}

TEST(MothershipConfigTest, DatabaseUrlComesFromTheEnvironmentOrTheFile) {
  testing::TempDir dir;
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/m.yaml",
                                          "database-url: postgresql://file/tether\n", 0600)
                  .ok());
  ScopedEnv env;
  ::unsetenv("DATABASE_URL");
  EXPECT_EQ(Mothership({"--config", dir.path() + "/m.yaml"}).first.database_url,
            "postgresql://file/tether");
  env.Set("DATABASE_URL", "postgresql://env/tether");
  EXPECT_EQ(Mothership({"--config", dir.path() + "/m.yaml"}).first.database_url,
            "postgresql://env/tether");
}

}  // namespace
}  // namespace tether
