// TLS end to end in-process: a mothership that serves TLS, issues each agent a client
// certificate at registration and requires it on every stream, and requires operators'
// certificates from its client CA; tetherctl and agent links that present theirs; and the
// refusals when a stream presents none, another agent's, a stranger's or an expired one.
#include <gtest/gtest.h>
#include <pqxx/pqxx>

#include <sys/stat.h>

#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "agent/link/client_certificate.h"
#include "agent/link/mothership_link.h"
#include "common/files.h"
#include "common/grpc/tls.h"
#include "common/pki/pki.h"
#include "controlplane/mothership.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/test_pki.h"
#include "tether/v1/agent_service.grpc.pb.h"
#include "tools/ctl/ctl.h"

namespace tether {
namespace {

// The real clock, shifted by an amount a test sets: the agent sees its certificate age while
// everything else runs in real time.
class ShiftedClock final : public common::Clock {
 public:
  absl::Time Now() const override { return absl::Now() + shift_.load(); }
  bool SleepUntil(absl::Time deadline, const absl::Notification* stop) override {
    return common::RealClock::Get()->SleepUntil(deadline - shift_.load(), stop);
  }
  void Shift(absl::Duration by) { shift_.store(by); }

 private:
  std::atomic<absl::Duration> shift_{absl::ZeroDuration()};
};

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = testing::WriteTestPki(dir_.path());
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *pki;
    controlplane::MothershipConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.path() + "/mothership";
    url_ = testing::PostgresServer::Get().FreshDatabase();
    config.database_url = url_;
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

  // A TLS channel to the mothership presenting `cert`/`key` (none when empty).
  std::shared_ptr<grpc::Channel> Channel(const std::string& cert = "", const std::string& key = "") {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = *common::ReadFile(pki_.ca_cert);
    tls.pem_cert_chain = cert;
    tls.pem_private_key = key;
    return grpc::CreateChannel(server_, grpc::SslCredentials(tls));
  }

  std::string NewBootstrapToken() {
    std::string secret, err;
    EXPECT_EQ(Ctl(OperatorTls(), {"tokens", "create", "--cluster", "shop", "--uses", "20"},
                  &secret, &err),
              0)
        << err;
    return std::string(absl::StripAsciiWhitespace(secret));
  }
  std::vector<std::string> OperatorTls() {
    return {"--tls-ca", pki_.ca_cert, "--tls-client-cert", pki_.client_cert, "--tls-client-key",
            pki_.client_key};
  }

  // An agent registered by hand, with its key and the certificate it was issued.
  struct Registered {
    v1::RegisterResponse response;
    std::string key;
  };
  Registered RegisterRaw(const std::string& name) {
    Registered r;
    r.key = *common::GeneratePrivateKey();
    v1::RegisterRequest req;
    req.set_bootstrap_token(NewBootstrapToken());
    req.set_name(name);
    req.set_version("test");
    req.set_csr(*common::MakeCsr(r.key, name));
    grpc::ClientContext ctx;
    grpc::Status st = v1::AgentService::NewStub(Channel())->Register(&ctx, req, &r.response);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return r;
  }

  // Opens a stream as `agent` over `channel`, says Hello, and returns the first message or how
  // the stream ended.
  grpc::Status Hello(const std::shared_ptr<grpc::Channel>& channel,
                     const v1::RegisterResponse& agent, v1::MothershipMessage* first) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + agent.credential());
    ctx.AddMetadata("x-tether-agent-id", agent.agent_id());
    auto stream = v1::AgentService::NewStub(channel)->Connect(&ctx);
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(agent.agent_id());
    hello.mutable_hello()->set_incarnation(agent.incarnation());
    stream->Write(hello);
    if (stream->Read(first)) {
      ctx.TryCancel();
      stream->Finish();
      return grpc::Status::OK;
    }
    return stream->Finish();
  }

  // The CA the mothership keeps in its database.
  common::CertificateAuthority StoredCa() {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    auto row = tx.exec1("SELECT cert_pem, key_pem FROM agent_ca WHERE id = 1");
    return *common::CertificateAuthority::Load(row[0].as<std::string>(), row[1].as<std::string>());
  }
  int64_t Count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  agent::LinkOptions LinkFor(const std::string& name, const std::string& token,
                             const std::string& data_dir) {
    agent::LinkOptions options;
    options.name = name;
    options.bootstrap_token = token;
    options.data_dir = data_dir;
    options.heartbeat_interval = absl::Milliseconds(50);
    options.backoff = {absl::Milliseconds(20), absl::Milliseconds(200), 2.0, 0.5};
    options.certificate = std::make_shared<agent::ClientCertificate>(data_dir);
    options.channel_with_certificate = [this](const std::string& cert, const std::string& key) {
      return Channel(cert, key);
    };
    return options;
  }

  // Runs `link` until its stream is up, then stops it; whether it came up, and ran without
  // an error.
  static ::testing::AssertionResult RunUntilConnected(agent::MothershipLink& link) {
    absl::Notification stop;
    absl::Status result;
    std::thread t([&] { result = link.Run(&stop); });
    const bool connected = testing::PollUntil([&] { return link.connected(); });
    stop.Notify();
    link.Cancel();
    t.join();
    if (!connected) return ::testing::AssertionFailure() << "the link never connected";
    if (!result.ok()) return ::testing::AssertionFailure() << result;
    return ::testing::AssertionSuccess();
  }

  testing::TempDir dir_;
  testing::TestPki pki_;
  std::string url_;
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
  EXPECT_NE(err.find("requires a client certificate from its client CA"), std::string::npos) << err;
  EXPECT_EQ(Ctl({}, {"get", "agents"}, &out, &err), 1);
  EXPECT_EQ(Ctl({"--tls-ca", pki_.other_ca_cert, "--tls-client-cert", pki_.client_cert,
                 "--tls-client-key", pki_.client_key},
                {"get", "agents"}, &out, &err),
            1);
  EXPECT_EQ(Ctl({"--tls-client-cert", pki_.client_cert}, {"get", "agents"}, &out, &err), 2);
  EXPECT_NE(err.find("needs the server's CA"), std::string::npos) << err;
}

TEST_F(TlsTest, AnAgentsCertificateDoesNotMakeItAnOperator) {
  Registered agent = RegisterRaw("shop-1");
  const std::string cert = dir_.path() + "/agent.crt", key = dir_.path() + "/agent.key";
  ASSERT_TRUE(common::WriteFileAtomically(cert, agent.response.certificate(), 0600).ok());
  ASSERT_TRUE(common::WriteFileAtomically(key, agent.key, 0600).ok());
  std::string out, err;
  EXPECT_EQ(Ctl({"--tls-ca", pki_.ca_cert, "--tls-client-cert", cert, "--tls-client-key", key},
                {"get", "agents"}, &out, &err),
            1);
  EXPECT_NE(err.find("the client certificate is refused"), std::string::npos) << err;
}

TEST_F(TlsTest, AnAgentGetsItsOwnCertificateAtRegistrationAndStreamsWithIt) {
  const std::string data_dir = dir_.path() + "/agent";
  ASSERT_TRUE(common::MakeDirs(data_dir, 0700).ok());
  agent::HealthState health;
  common::RealRandom random;
  agent::MothershipLink link(LinkFor("secure-1", NewBootstrapToken(), data_dir), Channel(),
                             &health, common::RealClock::Get(), &random);
  ASSERT_TRUE(RunUntilConnected(link));
  EXPECT_EQ(link.identity()->incarnation, 1);

  // The key stayed with the agent, readable by it alone; the certificate names it.
  struct stat key_stat {};
  ASSERT_EQ(stat((data_dir + "/agent.key").c_str(), &key_stat), 0);
  EXPECT_EQ(key_stat.st_mode & 0777, 0600u);
  auto cert = common::ReadFile(data_dir + "/agent.crt");
  ASSERT_TRUE(cert.ok());
  auto named = common::ReadAgentIdentity(*cert);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->agent_id, link.identity()->agent_id);
  EXPECT_EQ(named->name, "secure-1");
  EXPECT_EQ(named->cluster, "shop");
  EXPECT_TRUE(StoredCa().Verify(*cert, absl::Now()).ok());
  auto info = common::ReadCertInfo(*cert);
  ASSERT_TRUE(info.ok());
  EXPECT_LE(info->not_after, absl::Now() + absl::Hours(24));  // short-lived: the default TTL
}

TEST_F(TlsTest, AStreamMustPresentTheCertificateOfTheAgentItClaimsToBe) {
  Registered a = RegisterRaw("shop-a");
  Registered b = RegisterRaw("shop-b");
  const auto seen = [&] {
    return Count("SELECT count(*) FROM agents WHERE last_seen_at IS NOT NULL") * 1000 +
           Count("SELECT count(*) FROM events");
  };
  const int64_t before = seen();
  v1::MothershipMessage first;

  grpc::Status st = Hello(Channel(), a.response, &first);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("must present the client certificate"), std::string::npos)
      << st.error_message();

  st = Hello(Channel(b.response.certificate(), b.key), a.response, &first);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_NE(st.error_message().find("an agent acts only as itself"), std::string::npos)
      << st.error_message();

  // A stranger's CA can write whatever names it likes; the mothership trusts only its own.
  auto stranger = common::CertificateAuthority::Create("stranger", absl::Now(), absl::Hours(1));
  ASSERT_TRUE(stranger.ok());
  auto forged = stranger->SignAgent(*common::MakeCsr(a.key, "shop-a"),
                                    {a.response.agent_id(), "shop-a", "shop"}, absl::Now(),
                                    absl::Hours(1));
  ASSERT_TRUE(forged.ok());
  st = Hello(Channel(*forged, a.key), a.response, &first);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("not one this mothership issued"), std::string::npos)
      << st.error_message();

  // Its own CA's, but expired.
  auto expired = StoredCa().SignAgent(*common::MakeCsr(a.key, "shop-a"),
                                      {a.response.agent_id(), "shop-a", "shop"},
                                      absl::Now() - absl::Hours(48), absl::Hours(24));
  ASSERT_TRUE(expired.ok());
  st = Hello(Channel(*expired, a.key), a.response, &first);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  EXPECT_NE(st.error_message().find("expired"), std::string::npos) << st.error_message();

  EXPECT_EQ(seen(), before);  // no refused stream was heard from

  st = Hello(Channel(a.response.certificate(), a.key), a.response, &first);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(first.has_welcome());
}

TEST_F(TlsTest, ARegistrationWithoutAUsableCsrIsRefusedAndWritesNothing) {
  const std::string token = NewBootstrapToken();
  const auto state = [&] {
    return std::make_tuple(Count("SELECT count(*) FROM agents"), Count("SELECT count(*) FROM events"),
                           Count("SELECT count(*) FROM bootstrap_token_uses"));
  };
  const auto before = state();
  const std::string key = *common::GeneratePrivateKey();
  std::string tampered = *common::MakeCsr(key, "shop-x");
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  struct Case {
    std::string what, csr, phrase;
  } cases[] = {
      {"none", "", "needs a csr"},
      {"junk", "hello", "not a PEM certificate request"},
      {"tampered", tampered, "CSR"},
      {"oversized", std::string(20000, 'x'), "at most"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    v1::RegisterRequest req;
    req.set_bootstrap_token(token);
    req.set_name("shop-x");
    req.set_csr(c.csr);
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = v1::AgentService::NewStub(Channel())->Register(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find(c.phrase), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find('\n'), std::string::npos);
  }
  EXPECT_EQ(state(), before);
}

TEST_F(TlsTest, AnAgentRenewsItsCertificateOverItsStreamBeforeItExpires) {
  const std::string data_dir = dir_.path() + "/agent";
  ASSERT_TRUE(common::MakeDirs(data_dir, 0700).ok());
  ShiftedClock clock;
  agent::HealthState health;
  common::RealRandom random;
  agent::LinkOptions options = LinkFor("renewing-1", NewBootstrapToken(), data_dir);
  auto certificate = options.certificate;
  agent::MothershipLink link(options, Channel(), &health, &clock, &random);
  absl::Notification stop;
  std::thread t([&] { (void)link.Run(&stop); });
  ASSERT_TRUE(testing::PollUntil([&] { return link.connected(); }));
  const auto issued = certificate->current();
  ASSERT_TRUE(issued.has_value());
  EXPECT_EQ(issued->generation, 1);

  // Seventeen hours on, two thirds of the day it was valid for have passed: the agent asks.
  clock.Shift(absl::Hours(17));
  const bool renewed = testing::PollUntil([&] { return certificate->current()->generation > 1; });
  clock.Shift(absl::ZeroDuration());
  stop.Notify();
  link.Cancel();
  t.join();
  ASSERT_TRUE(renewed);
  const auto now = certificate->current();
  EXPECT_NE(common::ReadCertInfo(now->certificate_pem)->serial,
            common::ReadCertInfo(issued->certificate_pem)->serial);
  EXPECT_EQ(common::ReadAgentIdentity(now->certificate_pem)->agent_id, link.identity()->agent_id);
  EXPECT_EQ(*common::ReadFile(data_dir + "/agent.crt"), now->certificate_pem);
  EXPECT_EQ(link.identity()->incarnation, 1);  // renewed, not registered again

  // The renewed certificate opens the next stream.
  v1::RegisterResponse as_registered;
  as_registered.set_agent_id(link.identity()->agent_id);
  as_registered.set_credential(link.identity()->credential);
  as_registered.set_incarnation(link.identity()->incarnation);
  v1::MothershipMessage first;
  grpc::Status st = Hello(Channel(now->certificate_pem, now->key_pem), as_registered, &first);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

TEST_F(TlsTest, AnAgentWhoseCertificateExpiredRegistersAgain) {
  const std::string data_dir = dir_.path() + "/agent";
  ASSERT_TRUE(common::MakeDirs(data_dir, 0700).ok());
  const std::string token = NewBootstrapToken();
  agent::HealthState health;
  common::RealRandom random;
  std::string agent_id;
  {
    agent::MothershipLink link(LinkFor("sleeper-1", token, data_dir), Channel(), &health,
                               common::RealClock::Get(), &random);
    ASSERT_TRUE(RunUntilConnected(link));
    agent_id = link.identity()->agent_id;
  }
  // The agent was off for longer than its certificate lasts: what it holds has expired.
  auto expired = StoredCa().SignAgent(
      *common::MakeCsr(*common::ReadFile(data_dir + "/agent.key"), "sleeper-1"),
      {agent_id, "sleeper-1", "shop"}, absl::Now() - absl::Hours(48), absl::Hours(24));
  ASSERT_TRUE(expired.ok());
  ASSERT_TRUE(common::WriteFileAtomically(data_dir + "/agent.crt", *expired, 0644).ok());

  // On start it registers again (with its bootstrap token) instead of presenting it.
  agent::MothershipLink link(LinkFor("sleeper-1", token, data_dir), Channel(), &health,
                             common::RealClock::Get(), &random);
  ASSERT_TRUE(RunUntilConnected(link));
  EXPECT_EQ(link.identity()->agent_id, agent_id);
  EXPECT_EQ(link.identity()->incarnation, 2);
  EXPECT_TRUE(StoredCa().Verify(*common::ReadFile(data_dir + "/agent.crt"), absl::Now()).ok());
}

TEST_F(TlsTest, AnAgentWhoseClockIsADayAheadStopsWithWhyInsteadOfRegisteringInALoop) {
  const std::string data_dir = dir_.path() + "/agent";
  ASSERT_TRUE(common::MakeDirs(data_dir, 0700).ok());
  ShiftedClock clock;
  clock.Shift(absl::Hours(25));
  agent::HealthState health;
  common::RealRandom random;
  agent::MothershipLink link(LinkFor("ahead-1", NewBootstrapToken(), data_dir), Channel(),
                             &health, &clock, &random);
  absl::Notification stop;
  absl::Status result = link.Run(&stop);
  EXPECT_EQ(result.code(), absl::StatusCode::kFailedPrecondition) << result;
  EXPECT_NE(result.message().find("clock"), std::string::npos) << result;
  EXPECT_EQ(Count("SELECT coalesce(max(incarnation), 0) FROM agents"), 1);  // registered once
}

}  // namespace
}  // namespace tether
