// Mutual TLS end to end in-process: a mothership that requires client certificates, tetherctl
// and an agent link that present one, and the refusals when they do not or trust another CA.
#include <gtest/gtest.h>

#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/link/mothership_link.h"
#include "common/files.h"
#include "common/grpc/tls.h"
#include "controlplane/mothership.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/test_pki.h"
#include "tools/ctl/ctl.h"

namespace tether {
namespace {

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::WriteTestPki(dir_.path());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    controlplane::MothershipConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.path() + "/mothership";
    config.database_url = testing::PostgresServer::Get().FreshDatabase();
    config.tls_cert = pki_.server_cert;
    config.tls_key = pki_.server_key;
    config.tls_client_ca = pki_.ca_cert;
    mothership_ = std::make_unique<controlplane::Mothership>(config, common::RealClock::Get(), &runner_);
    ASSERT_TRUE(mothership_->Start().ok());
    server_ = absl::StrCat("127.0.0.1:", mothership_->port());
    token_ = std::string(absl::StripAsciiWhitespace(
        *common::ReadFile(dir_.path() + "/mothership/operator.token")));
  }
  void TearDown() override { mothership_->Shutdown(); }

  // Runs tetherctl in-process with the given TLS flags; returns its exit status.
  int Ctl(std::vector<std::string> tls_flags, std::vector<std::string> command, std::string* out,
          std::string* err) {
    std::vector<std::string> args = {"tetherctl", "--server", server_, "--token", token_,
                                     "--config", dir_.path() + "/no-config"};
    (void)common::WriteFileAtomically(dir_.path() + "/no-config", "", 0600);
    args.insert(args.end(), tls_flags.begin(), tls_flags.end());
    args.insert(args.end(), command.begin(), command.end());
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    std::ostringstream o, e;
    int rc = ctl::RunCtl(static_cast<int>(argv.size()), argv.data(), o, e);
    *out = o.str();
    *err = e.str();
    return rc;
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
  common::RealProcessRunner runner_;
  std::unique_ptr<controlplane::Mothership> mothership_;
  std::string server_;
  std::string token_;
};

TEST_F(TlsTest, TetherctlWithAClientCertificateIsServed) {
  std::string out, err;
  EXPECT_EQ(Ctl({"--tls-ca", pki_.ca_cert, "--tls-client-cert", pki_.client_cert,
                 "--tls-client-key", pki_.client_key},
                {"tokens", "create", "--cluster", "shop"}, &out, &err),
            0)
      << err;
  EXPECT_EQ(out.rfind("ttb_", 0), 0u) << out;
}

TEST_F(TlsTest, NoClientCertificatePlaintextOrAWrongCaAreRefused) {
  std::string out, err;
  EXPECT_EQ(Ctl({"--tls-ca", pki_.ca_cert}, {"get", "agents"}, &out, &err), 1);
  EXPECT_NE(err.find("cannot reach the mothership"), std::string::npos) << err;
  EXPECT_EQ(Ctl({}, {"get", "agents"}, &out, &err), 1);
  EXPECT_EQ(Ctl({"--tls-ca", pki_.other_ca_cert, "--tls-client-cert", pki_.client_cert,
                 "--tls-client-key", pki_.client_key},
                {"get", "agents"}, &out, &err),
            1);
  EXPECT_EQ(Ctl({"--tls-client-cert", pki_.client_cert}, {"get", "agents"}, &out, &err), 2);
  EXPECT_NE(err.find("needs the server's CA"), std::string::npos) << err;
}

TEST_F(TlsTest, AnAgentRegistersAndConnectsOverMutualTls) {
  std::string secret, err;
  ASSERT_EQ(Ctl({"--tls-ca", pki_.ca_cert, "--tls-client-cert", pki_.client_cert,
                 "--tls-client-key", pki_.client_key},
                {"tokens", "create", "--cluster", "shop"}, &secret, &err),
            0)
      << err;
  auto creds = common::MakeChannelCredentials(pki_.ca_cert, pki_.client_cert, pki_.client_key);
  ASSERT_TRUE(creds.ok()) << creds.status();
  agent::LinkOptions options;
  options.name = "secure-1";
  options.bootstrap_token = std::string(absl::StripAsciiWhitespace(secret));
  options.data_dir = dir_.path();
  options.heartbeat_interval = absl::Milliseconds(100);
  options.backoff = {absl::Milliseconds(20), absl::Milliseconds(200), 2.0, 0.5};
  agent::HealthState health;
  common::RealRandom random;
  agent::MothershipLink link(options, grpc::CreateChannel(server_, *creds), &health,
                             common::RealClock::Get(), &random);
  absl::Notification stop;
  absl::Status result;
  std::thread t([&] { result = link.Run(&stop); });
  const bool connected = testing::PollUntil([&] { return link.connected(); });
  stop.Notify();
  link.Cancel();
  t.join();
  ASSERT_TRUE(connected);
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(link.identity()->incarnation, 1);
}

}  // namespace
}  // namespace tether
