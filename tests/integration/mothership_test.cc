// The mothership in-process on port 0 against a real PostgreSQL: registration with every kind
// of bootstrap token, re-registration, authorisation of ControlService, heartbeats → healthy →
// lost on a fake clock, and an agent link reconnecting after a mothership restart.
#include "controlplane/mothership.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <limits>

#include <pqxx/pqxx>
#include <functional>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "agent/link/mothership_link.h"
#include "common/files.h"
#include "common/process.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tether/v1/agent_service.grpc.pb.h"
#include "tether/v1/control_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

using google::protobuf::util::TimeUtil;
using testing::PollUntil;

class MothershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    StartMothership("127.0.0.1:0");
  }

  void StartMothership(const std::string& listen) {
    MothershipConfig config;
    config.listen = listen;
    config.data_dir = dir_.path();
    config.database_url = url_;
    config.heartbeat_ttl = absl::Seconds(10);
    config.admit_rate = admit_rate_;
    config.admit_burst = 1;
    config.stream_queue_limit = stream_queue_limit_;
    mothership_ = std::make_unique<Mothership>(config, &clock_, &runner_);
    absl::Status st = mothership_->Start();
    ASSERT_TRUE(st.ok()) << st;
    auto token = common::ReadFile(dir_.path() + "/operator.token");
    ASSERT_TRUE(token.ok());
    operator_token_ = std::string(absl::StripAsciiWhitespace(*token));
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", mothership_->port()),
                                   grpc::InsecureChannelCredentials());
    agents_ = v1::AgentService::NewStub(channel_);
    control_ = v1::ControlService::NewStub(channel_);
  }

  void TearDown() override {
    if (mothership_ != nullptr) mothership_->Shutdown();
  }

  std::unique_ptr<grpc::ClientContext> Operator() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + operator_token_);
    return ctx;
  }

  // Every agent ListAgents returns for `req`, page after page (at most 100), each page no
  // larger than asked.
  std::vector<v1::Agent> AllPages(v1::ListAgentsRequest req) {
    std::vector<v1::Agent> agents;
    int calls = 0;
    do {
      v1::ListAgentsResponse page;
      auto ctx = Operator();
      grpc::Status st = control_->ListAgents(ctx.get(), req, &page);
      EXPECT_TRUE(st.ok()) << st.error_message();
      EXPECT_LE(page.agents_size(), req.page_size() == 0 ? 200 : req.page_size());
      for (const auto& a : page.agents()) agents.push_back(a);
      req.set_page_token(page.next_page_token());
    } while (!req.page_token().empty() && ++calls < 100);
    return agents;
  }

  v1::CreateBootstrapTokenResponse CreateToken(const std::string& cluster, absl::Duration ttl = {},
                                               int uses = 0) {
    v1::CreateBootstrapTokenRequest req;
    req.set_cluster(cluster);
    *req.mutable_ttl() = TimeUtil::SecondsToDuration(absl::ToInt64Seconds(ttl));
    req.set_uses(uses);
    v1::CreateBootstrapTokenResponse resp;
    auto ctx = Operator();
    grpc::Status st = control_->CreateBootstrapToken(ctx.get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  grpc::Status Register(const std::string& token, const std::string& name,
                        v1::RegisterResponse* resp, const std::string& cluster = "",
                        const std::string& registration_id = "") {
    v1::RegisterRequest req;
    req.set_registration_id(registration_id);
    req.set_bootstrap_token(token);
    req.set_name(name);
    req.set_cluster(cluster);
    req.set_version("test");
    grpc::ClientContext ctx;
    return agents_->Register(&ctx, req, resp);
  }

  // A raw Connect stream with the agent's credential that has sent Hello for `incarnation`.
  struct RawStream {
    std::unique_ptr<grpc::ClientContext> context;
    std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::MothershipMessage>> stream;
  };
  // `refused`: the mothership may end the stream before Hello is written.
  RawStream OpenStream(const v1::RegisterResponse& agent, int64_t incarnation,
                       bool refused = false) {
    RawStream raw;
    raw.context = std::make_unique<grpc::ClientContext>();
    raw.context->AddMetadata("authorization", "Bearer " + agent.credential());
    raw.context->AddMetadata("x-tether-agent-id", agent.agent_id());
    raw.stream = agents_->Connect(raw.context.get());
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(agent.agent_id());
    hello.mutable_hello()->set_incarnation(incarnation);
    const bool written = raw.stream->Write(hello);
    if (!refused) {
      EXPECT_TRUE(written);
    }
    return raw;
  }

  int64_t Count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  // The agent as the operator sees it; an empty Agent (status UNSPECIFIED) until it exists.
  v1::Agent GetAgent(const std::string& name) {
    v1::GetAgentRequest req;
    req.set_name(name);
    v1::Agent agent;
    auto ctx = Operator();
    (void)control_->GetAgent(ctx.get(), req, &agent);
    return agent;
  }

  grpc::Status DeleteAgent(const std::string& name, v1::DeleteAgentResponse* resp) {
    v1::DeleteAgentRequest req;
    req.set_name(name);
    auto ctx = Operator();
    return control_->DeleteAgent(ctx.get(), req, resp);
  }

  std::vector<std::string> EventKinds() {
    v1::ListEventsRequest req;
    req.set_limit(1000);
    v1::ListEventsResponse resp;
    auto ctx = Operator();
    EXPECT_TRUE(control_->ListEvents(ctx.get(), req, &resp).ok());
    std::vector<std::string> kinds;
    for (const auto& e : resp.events()) kinds.push_back(e.kind());
    return kinds;
  }

  // A refused registration must leave no trace: no agent, no event, no use of the token, no
  // change to any agent's credential or incarnation; and its error is one line.
  void ExpectRefusedWithoutWriting(const std::function<grpc::Status()>& call,
                                   grpc::StatusCode code, const std::string& message_part) {
    const int64_t agents = Count("SELECT count(*) FROM agents");
    const int64_t events = Count("SELECT count(*) FROM events");
    const int64_t uses = Count("SELECT count(*) FROM bootstrap_token_uses");
    const int64_t incarnations = Count("SELECT coalesce(sum(incarnation), 0) FROM agents");
    const int64_t credentials =
        Count("SELECT coalesce(sum(hashtext(credential_hash)::bigint), 0) FROM agents");
    grpc::Status st = call();
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(message_part), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find('\n'), std::string::npos);
    EXPECT_EQ(Count("SELECT count(*) FROM agents"), agents);
    EXPECT_EQ(Count("SELECT count(*) FROM events"), events);
    EXPECT_EQ(Count("SELECT count(*) FROM bootstrap_token_uses"), uses);
    EXPECT_EQ(Count("SELECT coalesce(sum(incarnation), 0) FROM agents"), incarnations);
    EXPECT_EQ(Count("SELECT coalesce(sum(hashtext(credential_hash)::bigint), 0) FROM agents"),
              credentials);
  }
  void ExpectRefusedWithoutWriting(const std::string& token, const std::string& cluster,
                                   grpc::StatusCode code, const std::string& message_part) {
    ExpectRefusedWithoutWriting(
        [&] {
          v1::RegisterResponse resp;
          return Register(token, "refused-agent", &resp, cluster);
        },
        code, message_part);
  }

  // True when the stream still answers: a repeated Hello gets a Welcome.
  bool StreamAnswers(RawStream& raw, const v1::RegisterResponse& agent) {
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(agent.agent_id());
    hello.mutable_hello()->set_incarnation(agent.incarnation());
    if (!raw.stream->Write(hello)) return false;
    v1::MothershipMessage msg;
    while (raw.stream->Read(&msg)) {
      if (msg.has_welcome()) return true;
    }
    return false;
  }

  // Opens a stream with the agent's credential and waits for the Welcome.
  RawStream Connected(const v1::RegisterResponse& agent) {
    RawStream raw = OpenStream(agent, agent.incarnation());
    v1::MothershipMessage msg;
    EXPECT_TRUE(raw.stream->Read(&msg));
    EXPECT_TRUE(msg.has_welcome());
    return raw;
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  common::RealProcessRunner runner_;
  std::string url_;
  double admit_rate_ = 0;  // no limit unless a test sets one
  int stream_queue_limit_ = 4096;
  std::unique_ptr<Mothership> mothership_;
  std::string operator_token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> agents_;
  std::unique_ptr<v1::ControlService::Stub> control_;
};

TEST_F(MothershipTest, OperatorTokenIsWrittenOwnerOnlyAndStoredHashed) {
  struct stat st;
  ASSERT_EQ(::stat((dir_.path() + "/operator.token").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  EXPECT_EQ(Count("SELECT count(*) FROM operator_tokens"), 1);
  pqxx::connection c(url_);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec_params("SELECT 1 FROM operator_tokens WHERE secret_hash = $1", operator_token_)
                .size(),
            0u);
}

TEST_F(MothershipTest, RegistersAndReRegistersUnderTheSameName) {
  auto token = CreateToken("shop");
  v1::RegisterResponse first;
  ASSERT_TRUE(Register(token.secret(), "web-1", &first).ok());
  EXPECT_EQ(first.incarnation(), 1);
  EXPECT_EQ(first.cluster(), "shop");

  v1::RegisterResponse second;
  ASSERT_TRUE(Register(token.secret(), "web-1", &second).ok());
  EXPECT_EQ(second.agent_id(), first.agent_id());
  EXPECT_EQ(second.incarnation(), 2);
  EXPECT_NE(second.credential(), first.credential());
  EXPECT_EQ(Count("SELECT count(*) FROM agents"), 1);
  // Only hashes are stored.
  EXPECT_EQ(Count(absl::StrCat("SELECT count(*) FROM agents WHERE credential_hash = '",
                               second.credential(), "'")),
            0);

  // The old credential no longer opens a stream.
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + first.credential());
  ctx.AddMetadata("x-tether-agent-id", first.agent_id());
  auto stream = agents_->Connect(&ctx);
  v1::MothershipMessage msg;
  EXPECT_FALSE(stream->Read(&msg));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(MothershipTest, ARetriedRegistrationIsNotCountedTwice) {
  auto token = CreateToken("shop", {}, 1);  // one use only
  v1::RegisterResponse first, retry;
  ASSERT_TRUE(Register(token.secret(), "web-1", &first, "", "reg-1").ok());
  // The answer was lost; the agent asks again with the same registration id.
  grpc::Status st = Register(token.secret(), "web-1", &retry, "", "reg-1");
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(retry.agent_id(), first.agent_id());
  EXPECT_EQ(retry.incarnation(), 1);
  EXPECT_NE(retry.credential(), first.credential());
  EXPECT_EQ(Count("SELECT count(*) FROM bootstrap_token_uses"), 1);
  // One registration, and the retry is recorded as such.
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE kind = 'agent.registered'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE kind = 'agent.registration_retried'"), 1);
  // A new registration (another id) is a new incarnation and needs a use the token lacks.
  v1::RegisterResponse again;
  EXPECT_EQ(Register(token.secret(), "web-1", &again, "", "reg-2").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
}

TEST_F(MothershipTest, ANameWhoseAgentIsConnectedCannotBeTakenOver) {
  auto token = CreateToken("shop");
  v1::RegisterResponse first;
  ASSERT_TRUE(Register(token.secret(), "web-1", &first).ok());
  RawStream raw = Connected(first);

  // Anyone else holding a token of the cluster: refused, nothing written, the stream stays.
  ExpectRefusedWithoutWriting(
      [&] {
        v1::RegisterResponse resp;
        return Register(token.secret(), "web-1", &resp, "", "intruder-registration");
      },
      grpc::StatusCode::FAILED_PRECONDITION, "tetherctl delete agent web-1");
  EXPECT_TRUE(StreamAnswers(raw, first));

  // Once the real agent's stream is gone (its container was recreated), the name registers at
  // once as the next incarnation, and that is an event.
  raw.context->TryCancel();
  v1::MothershipMessage msg;
  while (raw.stream->Read(&msg)) {
  }
  (void)raw.stream->Finish();
  v1::RegisterResponse second;
  ASSERT_TRUE(PollUntil([&] { return Register(token.secret(), "web-1", &second).ok(); }));
  EXPECT_EQ(second.agent_id(), first.agent_id());
  EXPECT_EQ(second.incarnation(), 2);
  auto kinds = EventKinds();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "agent.reregistered"), 1);
}

TEST_F(MothershipTest, ARetryIsCheckedLikeAFirstRegistration) {
  auto shop = CreateToken("shop", absl::Hours(1));
  auto billing = CreateToken("billing");
  v1::RegisterResponse first;
  ASSERT_TRUE(Register(shop.secret(), "web-1", &first, "", "reg-1").ok());

  // The same registration id with another cluster's token is no retry of it.
  ExpectRefusedWithoutWriting(
      [&] {
        v1::RegisterResponse resp;
        return Register(billing.secret(), "web-1", &resp, "", "reg-1");
      },
      grpc::StatusCode::FAILED_PRECONDITION, "belongs to cluster \"shop\"");
  // Nor with a token that is used up.
  auto spent = CreateToken("shop", {}, 1);
  v1::RegisterResponse other;
  ASSERT_TRUE(Register(spent.secret(), "web-2", &other).ok());
  ExpectRefusedWithoutWriting(
      [&] {
        v1::RegisterResponse resp;
        return Register(spent.secret(), "web-1", &resp, "", "reg-1");
      },
      grpc::StatusCode::PERMISSION_DENIED, "used up");
  // Its own token, once expired, no longer re-issues the credential.
  clock_.Advance(absl::Hours(2));
  ExpectRefusedWithoutWriting(
      [&] {
        v1::RegisterResponse resp;
        return Register(shop.secret(), "web-1", &resp, "", "reg-1");
      },
      grpc::StatusCode::PERMISSION_DENIED, "expired");
  // The real agent's credential still works.
  RawStream raw = Connected(first);
  EXPECT_TRUE(StreamAnswers(raw, first));
}

TEST_F(MothershipTest, TheRegistrationIdIsStoredHashedAndForgottenOnceConnected) {
  auto token = CreateToken("shop");
  v1::RegisterResponse first, retry;
  ASSERT_TRUE(Register(token.secret(), "web-1", &first, "", "reg-secret-1").ok());
  EXPECT_EQ(Count("SELECT count(*) FROM agents WHERE registration_id_hash = 'reg-secret-1'"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM agents WHERE registration_id_hash <> ''"), 1);
  ASSERT_TRUE(Register(token.secret(), "web-1", &retry, "", "reg-secret-1").ok());
  EXPECT_EQ(retry.incarnation(), 1);
  auto kinds = EventKinds();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "agent.registration_retried"), 1);

  RawStream raw = Connected(retry);
  EXPECT_EQ(Count("SELECT count(*) FROM agents WHERE registration_id_hash <> ''"), 0);
  // With the id forgotten, the same id is an ordinary re-registration: refused while connected.
  ExpectRefusedWithoutWriting(
      [&] {
        v1::RegisterResponse resp;
        return Register(token.secret(), "web-1", &resp, "", "reg-secret-1");
      },
      grpc::StatusCode::FAILED_PRECONDITION, "is connected");
}

TEST_F(MothershipTest, ATokenScopedToNamesRegistersOnlyThose) {
  v1::CreateBootstrapTokenRequest req;
  req.set_cluster("shop");
  req.add_names("web-*");
  v1::CreateBootstrapTokenResponse token;
  {
    auto ctx = Operator();
    ASSERT_TRUE(control_->CreateBootstrapToken(ctx.get(), req, &token).ok());
  }
  ASSERT_EQ(token.token().names_size(), 1);
  ExpectRefusedWithoutWriting(
      [&] {
        v1::RegisterResponse resp;
        return Register(token.secret(), "db-1", &resp);
      },
      grpc::StatusCode::PERMISSION_DENIED, "only for agents named web-*");
  v1::RegisterResponse web;
  ASSERT_TRUE(Register(token.secret(), "web-7", &web).ok());

  // A pattern that is not a name pattern is refused when the token is made.
  req.clear_names();
  req.add_names("web-[a]");
  auto ctx = Operator();
  EXPECT_EQ(control_->CreateBootstrapToken(ctx.get(), req, &token).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(MothershipTest, HelloMustMatchTheCredentialsIncarnation) {
  auto token = CreateToken("shop");
  v1::RegisterResponse agent;
  ASSERT_TRUE(Register(token.secret(), "web-1", &agent).ok());
  RawStream raw = OpenStream(agent, 7);
  auto& stream = raw.stream;
  v1::MothershipMessage msg;
  EXPECT_FALSE(stream->Read(&msg));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(MothershipTest, WrongTokenIsRefusedAndNothingIsWritten) {
  CreateToken("shop");
  ExpectRefusedWithoutWriting("ttb_000000000000.nope", "", grpc::StatusCode::UNAUTHENTICATED,
                              "bootstrap token is not valid");
  ExpectRefusedWithoutWriting("", "", grpc::StatusCode::UNAUTHENTICATED, "missing bootstrap token");
}

TEST_F(MothershipTest, ExpiredTokenIsRefused) {
  auto token = CreateToken("shop", absl::Hours(1));
  clock_.Advance(absl::Hours(1) + absl::Seconds(1));
  ExpectRefusedWithoutWriting(token.secret(), "", grpc::StatusCode::PERMISSION_DENIED, "expired");
}

TEST_F(MothershipTest, RevokedTokenIsRefused) {
  auto token = CreateToken("shop");
  v1::RevokeBootstrapTokenRequest req;
  req.set_id(token.token().id());
  v1::BootstrapToken revoked;
  auto ctx = Operator();
  ASSERT_TRUE(control_->RevokeBootstrapToken(ctx.get(), req, &revoked).ok());
  EXPECT_EQ(revoked.state(), v1::TOKEN_STATE_REVOKED);
  ExpectRefusedWithoutWriting(token.secret(), "", grpc::StatusCode::PERMISSION_DENIED, "revoked");
}

TEST_F(MothershipTest, UsedUpTokenIsRefused) {
  auto token = CreateToken("shop", {}, 1);
  v1::RegisterResponse resp;
  ASSERT_TRUE(Register(token.secret(), "only-one", &resp).ok());
  ExpectRefusedWithoutWriting(token.secret(), "", grpc::StatusCode::PERMISSION_DENIED, "used up");
}

// Registrations with one token do not wait on its row, but a use-limited token still admits
// exactly its number of uses when many race for them.
TEST_F(MothershipTest, AUseLimitedTokenAdmitsExactlyItsUsesUnderARace) {
  auto token = CreateToken("shop", {}, 3);
  constexpr int kRacers = 16;
  std::vector<grpc::Status> results(kRacers);
  {
    std::vector<std::thread> racers;
    absl::Notification go;
    for (int i = 0; i < kRacers; ++i) {
      racers.emplace_back([&, i] {
        go.WaitForNotification();
        v1::RegisterResponse resp;
        results[i] = Register(token.secret(), absl::StrCat("racer-", i), &resp);
      });
    }
    go.Notify();
    for (auto& t : racers) t.join();
  }
  int admitted = 0;
  for (const auto& st : results) {
    if (st.ok()) {
      ++admitted;
      continue;
    }
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
    EXPECT_TRUE(absl::StrContains(st.error_message(), "used up")) << st.error_message();
  }
  EXPECT_EQ(admitted, 3);
  EXPECT_EQ(Count("SELECT count(*) FROM agents"), 3);
  EXPECT_EQ(Count("SELECT count(*) FROM bootstrap_token_uses"), 3);
  v1::ListBootstrapTokensResponse listed;
  auto ctx = Operator();
  ASSERT_TRUE(control_->ListBootstrapTokens(ctx.get(), v1::ListBootstrapTokensRequest(), &listed)
                  .ok());
  ASSERT_EQ(listed.tokens_size(), 1);
  EXPECT_EQ(listed.tokens(0).uses(), 3);
  EXPECT_EQ(listed.tokens(0).state(), v1::TOKEN_STATE_USED_UP);
}

TEST_F(MothershipTest, TokenOfAnotherClusterIsRefused) {
  auto token = CreateToken("shop");
  ExpectRefusedWithoutWriting(token.secret(), "billing", grpc::StatusCode::PERMISSION_DENIED,
                              "is for cluster \"shop\"");
}

TEST_F(MothershipTest, ATokenTtlBeyondTenYearsIsRefusedAndWritesNothing) {
  const int64_t tokens = Count("SELECT count(*) FROM bootstrap_tokens");
  const int64_t events = Count("SELECT count(*) FROM events");
  for (int64_t seconds : {int64_t{250'000'000'000}, std::numeric_limits<int64_t>::max(),
                          int64_t{-1}, int64_t{3650} * 86400 + 1}) {
    v1::CreateBootstrapTokenRequest req;
    req.set_cluster("shop");
    req.mutable_ttl()->set_seconds(seconds);
    v1::CreateBootstrapTokenResponse created;
    auto ctx = Operator();
    grpc::Status st = control_->CreateBootstrapToken(ctx.get(), req, &created);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << seconds;
    EXPECT_EQ(st.error_message(), "ttl must be between 0 (never expires) and 3650 days");
  }
  v1::CreateBootstrapTokenRequest req;
  req.set_cluster("shop");
  req.mutable_ttl()->set_seconds(1);
  req.mutable_ttl()->set_nanos(-5);
  v1::CreateBootstrapTokenResponse created;
  auto ctx = Operator();
  EXPECT_EQ(control_->CreateBootstrapToken(ctx.get(), req, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Count("SELECT count(*) FROM bootstrap_tokens"), tokens);
  EXPECT_EQ(Count("SELECT count(*) FROM events"), events);
  // Ten years is fine.
  req.mutable_ttl()->set_seconds(int64_t{3650} * 86400);
  req.mutable_ttl()->set_nanos(0);
  auto ok = Operator();
  EXPECT_TRUE(control_->CreateBootstrapToken(ok.get(), req, &created).ok());
}

TEST_F(MothershipTest, ATokenDescriptionAndNamePatternsAreBounded) {
  const int64_t tokens = Count("SELECT count(*) FROM bootstrap_tokens");
  const int64_t events = Count("SELECT count(*) FROM events");
  auto create = [&](const std::string& description, int patterns) {
    v1::CreateBootstrapTokenRequest req;
    req.set_cluster("shop");
    req.set_description(description);
    for (int i = 0; i < patterns; ++i) req.add_names(absl::StrCat("web-", i));
    v1::CreateBootstrapTokenResponse created;
    auto ctx = Operator();
    return control_->CreateBootstrapToken(ctx.get(), req, &created);
  };
  for (const std::string& description :
       {std::string(257, 'd'), std::string("line\nforged"), std::string("\x1b[2J")}) {
    grpc::Status st = create(description, 0);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(st.error_message(), "description must be at most 256 bytes of printable UTF-8");
  }
  grpc::Status st = create("", 65);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "a token takes at most 64 name patterns");
  EXPECT_EQ(Count("SELECT count(*) FROM bootstrap_tokens"), tokens);
  EXPECT_EQ(Count("SELECT count(*) FROM events"), events);
  EXPECT_TRUE(create(std::string(256, 'd'), 64).ok());
}

TEST_F(MothershipTest, AnOversizedOrControlCharacterVersionIsRefusedAndWritesNothing) {
  auto token = CreateToken("shop");
  const int64_t events = Count("SELECT count(*) FROM events");
  for (const std::string& version :
       {std::string(3'900'000, 'v'), std::string(65, 'v'), std::string("1.0\n2.0"),
        std::string("1.0\x1b[2J")}) {
    v1::RegisterRequest req;
    req.set_bootstrap_token(token.secret());
    req.set_name("web-1");
    req.set_version(version);
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    grpc::Status st = agents_->Register(&ctx, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << version.size();
    EXPECT_EQ(st.error_message(), "version must be at most 64 bytes of printable UTF-8");
  }
  EXPECT_EQ(Count("SELECT count(*) FROM agents"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM bootstrap_token_uses"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM events"), events);
  v1::RegisterRequest req;
  req.set_bootstrap_token(token.secret());
  req.set_name("web-1");
  req.set_version(std::string(64, 'v'));
  v1::RegisterResponse resp;
  grpc::ClientContext ctx;
  EXPECT_TRUE(agents_->Register(&ctx, req, &resp).ok());
}

TEST_F(MothershipTest, BadNamesAreRefusedWithInvalidArgument) {
  auto token = CreateToken("shop");
  v1::RegisterResponse resp;
  grpc::Status st = Register(token.secret(), "Robert'); DROP TABLE agents;--", &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // Hostnames have no empty label and no label that starts or ends with '-'.
  for (const std::string& name :
       std::vector<std::string>{"a..b", "a.-b", "a-.b", ".a", "a.", "-a", std::string(64, 'a')}) {
    st = Register(token.secret(), name, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_TRUE(absl::StrContains(st.error_message(), "invalid agent name")) << st.error_message();
  }
  EXPECT_EQ(Count("SELECT count(*) FROM agents"), 0);
  for (const char* name : {"web-1", "web-1.shop.internal", "a", "0.1"}) {
    EXPECT_TRUE(Register(token.secret(), name, &resp).ok()) << name;
  }
  EXPECT_EQ(Count("SELECT count(*) FROM agents"), 4);
  v1::CreateBootstrapTokenRequest req;
  req.set_cluster("Bad Cluster");
  v1::CreateBootstrapTokenResponse created;
  auto ctx = Operator();
  EXPECT_EQ(control_->CreateBootstrapToken(ctx.get(), req, &created).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

// A proto3 string that is not UTF-8 fails to parse before any handler runs; the answer names the
// method and the problem instead of gRPC's empty INTERNAL.
TEST_F(MothershipTest, ANameThatIsNotUtf8IsInvalidArgumentAndWritesNothing) {
  auto token = CreateToken("shop");
  const int64_t events = Count("SELECT count(*) FROM events");
  v1::RegisterResponse resp;
  grpc::Status st = Register(token.secret(), "web-\xff\xfe", &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(),
            "the request to /tether.v1.AgentService/Register cannot be parsed: a text field is "
            "not valid UTF-8, or the message is malformed");
  v1::GetAgentRequest get;
  get.set_name("web-\xc3");
  v1::Agent agent;
  auto ctx = Operator();
  st = control_->GetAgent(ctx.get(), get, &agent);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "/tether.v1.ControlService/GetAgent"))
      << st.error_message();
  EXPECT_EQ(Count("SELECT count(*) FROM agents"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM bootstrap_token_uses"), 0);
  EXPECT_EQ(Count("SELECT count(*) FROM events"), events);
}

TEST_F(MothershipTest, AgentsAndEventsComeInPagesThatNeverRepeatOrSkip) {
  auto shop = CreateToken("shop");
  auto bar = CreateToken("bar");
  v1::RegisterResponse resp;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Register(shop.secret(), absl::StrCat("web-", i), &resp).ok());
    ASSERT_TRUE(Register(bar.secret(), absl::StrCat("db-", i), &resp).ok());
  }
  auto all_pages = [&](const std::string& cluster, int page_size) {
    v1::ListAgentsRequest req;
    req.set_cluster(cluster);
    req.set_page_size(page_size);
    std::vector<std::string> names;
    for (const auto& a : AllPages(req)) names.push_back(a.cluster() + "/" + a.name());
    return names;
  };
  const std::vector<std::string> bar_names = {"bar/db-0", "bar/db-1", "bar/db-2", "bar/db-3",
                                              "bar/db-4"};
  std::vector<std::string> everyone = bar_names;
  for (int i = 0; i < 5; ++i) everyone.push_back(absl::StrCat("shop/web-", i));
  EXPECT_EQ(all_pages("", 3), everyone);
  EXPECT_EQ(all_pages("", 10), everyone);
  EXPECT_EQ(all_pages("bar", 2), bar_names);
  EXPECT_EQ(all_pages("", 0), everyone);  // the default page holds them all

  for (const auto& [size, token] : std::vector<std::pair<int, std::string>>{
           {501, ""}, {-1, ""}, {0, "not-a-token"}, {0, std::string(300, 'A')},
           {0, "c2hvcC8n"} /* "shop/'" */}) {
    v1::ListAgentsRequest req;
    req.set_page_size(size);
    req.set_page_token(token);
    v1::ListAgentsResponse page;
    auto ctx = Operator();
    grpc::Status st = control_->ListAgents(ctx.get(), req, &page);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << size << " " << token;
  }

  // Events: the newest first page, then the ones before it.
  v1::ListEventsRequest events;
  events.set_limit(4);
  v1::ListEventsResponse newest, older;
  auto ctx = Operator();
  ASSERT_TRUE(control_->ListEvents(ctx.get(), events, &newest).ok());
  ASSERT_EQ(newest.events_size(), 4);
  events.set_before_id(newest.events(0).id());
  auto ctx2 = Operator();
  ASSERT_TRUE(control_->ListEvents(ctx2.get(), events, &older).ok());
  ASSERT_EQ(older.events_size(), 4);
  // Nothing skipped or repeated: the two pages are the newest eight, in order.
  v1::ListEventsRequest eight;
  eight.set_limit(8);
  v1::ListEventsResponse both;
  auto ctx4 = Operator();
  ASSERT_TRUE(control_->ListEvents(ctx4.get(), eight, &both).ok());
  ASSERT_EQ(both.events_size(), 8);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(older.events(i).id(), both.events(i).id());
    EXPECT_EQ(newest.events(i).id(), both.events(i + 4).id());
  }
  events.set_limit(1001);
  v1::ListEventsResponse too_many;
  auto ctx3 = Operator();
  grpc::Status st = control_->ListEvents(ctx3.get(), events, &too_many);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "limit must be between 0 (100) and 1000"));
}

// Every operator action and registration says who did it and from where, and the log filters
// by kind and by actor.
TEST_F(MothershipTest, EventsSayWhoDidWhatFromWhereAndFilterByKindAndActor) {
  auto token = CreateToken("shop");
  v1::RegisterResponse agent;
  ASSERT_TRUE(Register(token.secret(), "web-1", &agent).ok());
  v1::DeleteAgentResponse deleted;
  ASSERT_TRUE(DeleteAgent("web-1", &deleted).ok());

  auto list = [&](const std::string& kind, const std::string& actor) {
    v1::ListEventsRequest req;
    req.set_kind(kind);
    req.set_actor(actor);
    v1::ListEventsResponse resp;
    auto c = Operator();
    grpc::Status st = control_->ListEvents(c.get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  };
  auto created = list("token.created", "");
  ASSERT_EQ(created.events_size(), 1);
  const std::string op = created.events(0).actor();
  EXPECT_TRUE(absl::StartsWith(op, "operator:")) << op;
  EXPECT_TRUE(absl::StartsWith(created.events(0).peer(), "ipv4:127.0.0.1:"))
      << created.events(0).peer();

  auto registered = list("agent.registered", "");
  ASSERT_EQ(registered.events_size(), 1);
  EXPECT_EQ(registered.events(0).actor(), "agent:" + agent.agent_id());
  EXPECT_TRUE(absl::StartsWith(registered.events(0).peer(), "ipv4:127.0.0.1:"));

  // By kind prefix: the agent's two events, nothing else.
  const v1::ListEventsResponse of_agents = list("agent.*", "");
  std::vector<std::string> kinds;
  for (const auto& e : of_agents.events()) kinds.push_back(e.kind());
  EXPECT_EQ(kinds, (std::vector<std::string>{"agent.registered", "agent.deleted"}));
  // By actor, whole or its id alone: the operator made the token and deleted the agent.
  for (const std::string& actor : {op, op.substr(std::string("operator:").size())}) {
    kinds.clear();
    const v1::ListEventsResponse by_actor = list("", actor);
    for (const auto& e : by_actor.events()) kinds.push_back(e.kind());
    EXPECT_EQ(kinds, (std::vector<std::string>{"token.created", "agent.deleted"})) << actor;
  }
  EXPECT_EQ(list("", agent.agent_id()).events_size(), 1);
  EXPECT_EQ(list("agent_%", "").events_size(), 0);  // LIKE's wildcards are literal
  v1::ListEventsRequest long_filter;
  long_filter.set_kind(std::string(129, 'k'));
  v1::ListEventsResponse none;
  auto c2 = Operator();
  EXPECT_EQ(control_->ListEvents(c2.get(), long_filter, &none).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(MothershipTest, ControlServiceNeedsAnOperatorTokenAndRefusesAgents) {
  auto token = CreateToken("shop");
  v1::RegisterResponse agent;
  ASSERT_TRUE(Register(token.secret(), "web-1", &agent).ok());
  v1::ListAgentsResponse resp;
  {
    grpc::ClientContext ctx;
    EXPECT_EQ(control_->ListAgents(&ctx, {}, &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer tto_wrong");
    EXPECT_EQ(control_->ListAgents(&ctx, {}, &resp).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + agent.credential());
    EXPECT_EQ(control_->ListAgents(&ctx, {}, &resp).error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
  }
  v1::GetAgentRequest get;
  get.set_name("nobody");
  v1::Agent out;
  auto ctx = Operator();
  grpc::Status st = control_->GetAgent(ctx.get(), get, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(st.error_message(), "no agent named \"nobody\"");
}

TEST_F(MothershipTest, DeleteForgetsTheAgentAndItsCredential) {
  auto token = CreateToken("shop");
  v1::RegisterResponse agent;
  ASSERT_TRUE(Register(token.secret(), "web-1", &agent).ok());
  v1::DeleteAgentResponse resp;
  ASSERT_TRUE(DeleteAgent("web-1", &resp).ok());
  EXPECT_EQ(resp.agent().id(), agent.agent_id());
  EXPECT_EQ(Count("SELECT count(*) FROM agents"), 0);
  EXPECT_EQ(DeleteAgent("web-1", &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(MothershipTest, WhatOneAgentSendsCannotKeepOthersFromBeingSeen) {
  auto token = CreateToken("shop");
  v1::RegisterResponse hostile, good;
  ASSERT_TRUE(Register(token.secret(), "hostile", &hostile).ok());
  ASSERT_TRUE(Register(token.secret(), "good", &good).ok());
  // A Hello with an applied revision no cluster has, and a health a JSON cannot carry.
  RawStream bad;
  bad.context = std::make_unique<grpc::ClientContext>();
  bad.context->AddMetadata("authorization", "Bearer " + hostile.credential());
  bad.context->AddMetadata("x-tether-agent-id", hostile.agent_id());
  bad.stream = agents_->Connect(bad.context.get());
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(hostile.agent_id());
  hello.mutable_hello()->set_incarnation(hostile.incarnation());
  hello.mutable_hello()->set_applied_revision(1'000'000'000'000'000);
  hello.mutable_hello()->mutable_status()->mutable_select1_latency()->set_seconds(315576000001);
  hello.mutable_hello()->mutable_status()->set_reason(std::string(1 << 20, 'r'));
  ASSERT_TRUE(bad.stream->Write(hello));
  v1::MothershipMessage msg;
  ASSERT_TRUE(bad.stream->Read(&msg));
  RawStream ok = Connected(good);
  ASSERT_TRUE(PollUntil([&] {
    clock_.Advance(absl::Milliseconds(250));  // lets the housekeeping loop flush
    return GetAgent("good").status() == v1::AGENT_STATUS_HEALTHY &&
           GetAgent("hostile").status() == v1::AGENT_STATUS_HEALTHY;
  }));
  v1::Agent seen = GetAgent("hostile");
  EXPECT_EQ(seen.applied_revision(), 0);  // no revision exists: nothing to inflate
  EXPECT_LE(seen.health().reason().size(), 1100u);
  EXPECT_FALSE(seen.health().has_select1_latency());
}

TEST_F(MothershipTest, AReportThatCannotBeTrueEndsTheStreamAndWritesNothing) {
  auto token = CreateToken("shop");
  v1::RegisterResponse agent;
  ASSERT_TRUE(Register(token.secret(), "web-1", &agent).ok());
  RawStream raw = Connected(agent);
  const int64_t tenants = Count("SELECT count(*) FROM agent_tenants");
  v1::AgentMessage ack;
  ack.mutable_ack()->set_revision(1);  // the cluster has no revision
  ASSERT_TRUE(raw.stream->Write(ack));
  v1::MothershipMessage msg;
  while (raw.stream->Read(&msg)) {
  }
  grpc::Status ended = raw.stream->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ended.error_message();
  EXPECT_NE(ended.error_message().find("is not a revision of cluster"), std::string::npos);
  EXPECT_EQ(Count("SELECT count(*) FROM agent_tenants"), tenants);
  EXPECT_EQ(GetAgent("web-1").applied_revision(), 0);
}

// How a tenant was onboarded reaches the operator's table: only known methods and real
// SHA-256 fingerprints are stored; anything else ends the stream and writes nothing.
TEST_F(MothershipTest, AReportedOnboardingMustBeAKnownMethodAndAFingerprint) {
  auto token = CreateToken("shop");
  v1::RegisterResponse agent;
  ASSERT_TRUE(Register(token.secret(), "web-1", &agent).ok());
  const int64_t tenants = Count("SELECT count(*) FROM agent_tenants");
  struct Case {
    std::string onboarding, fingerprint, error;
  };
  for (const Case& c : std::vector<Case>{
           {"\x1b[31mtemplate", std::string(64, 'a'), "has an unknown onboarding method"},
           {"template", "0123", "not 64 lower-case hex digits"},
           {"snapshot", std::string(64, 'A'), "not 64 lower-case hex digits"},
           {"warm_pool", std::string(63, 'a') + "\n", "not 64 lower-case hex digits"},
           {"template", "", "an onboarding that was not proved"},
           {"", std::string(64, 'a'), "an onboarding that was not proved"}}) {
    RawStream raw = Connected(agent);
    v1::AgentMessage ack;
    ack.mutable_ack()->set_revision(1);
    v1::TenantStatus* t = ack.mutable_ack()->add_tenants();
    t->set_name("acme");
    t->set_state(v1::TENANT_STATE_READY);
    t->set_onboarding(c.onboarding);
    t->set_fingerprint(c.fingerprint);
    t->set_replay_fingerprint(c.fingerprint);
    ASSERT_TRUE(raw.stream->Write(ack));
    v1::MothershipMessage msg;
    while (raw.stream->Read(&msg)) {
    }
    grpc::Status ended = raw.stream->Finish();
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ended.error_message();
    EXPECT_NE(ended.error_message().find(c.error), std::string::npos) << ended.error_message();
    EXPECT_EQ(ended.error_message().find('\x1b'), std::string::npos);  // not echoed raw
    EXPECT_EQ(Count("SELECT count(*) FROM agent_tenants"), tenants);
  }
  // Fingerprints that differ, and a name only the agent itself uses.
  for (const auto& [name, replay, error] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"acme", std::string(64, 'b'), "an onboarding that was not proved"},
           {"tether_pool_1", std::string(64, 'a'), "has a reserved name"}}) {
    RawStream raw = Connected(agent);
    v1::AgentMessage ack;
    ack.mutable_ack()->set_revision(1);
    v1::TenantStatus* t = ack.mutable_ack()->add_tenants();
    t->set_name(name);
    t->set_state(v1::TENANT_STATE_READY);
    t->set_onboarding("template");
    t->set_fingerprint(std::string(64, 'a'));
    t->set_replay_fingerprint(replay);
    ASSERT_TRUE(raw.stream->Write(ack));
    v1::MothershipMessage msg;
    while (raw.stream->Read(&msg)) {
    }
    grpc::Status ended = raw.stream->Finish();
    EXPECT_EQ(ended.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << ended.error_message();
    EXPECT_NE(ended.error_message().find(error), std::string::npos) << ended.error_message();
    EXPECT_EQ(Count("SELECT count(*) FROM agent_tenants"), tenants);
  }
}

// Runs a real MothershipLink (real clock, fast heartbeats) against the test's mothership.
class LinkRunner {
 public:
  LinkRunner(const std::string& target, const std::string& token, const std::string& data_dir,
             const std::string& name = "web-1")
      : channel_(grpc::CreateChannel(target, grpc::InsecureChannelCredentials())) {
    agent::LinkOptions options;
    options.name = name;
    options.bootstrap_token = token;
    options.data_dir = data_dir;
    options.version = "test";
    options.heartbeat_interval = absl::Milliseconds(50);
    options.backoff = {absl::Milliseconds(20), absl::Milliseconds(200), 2.0, 0.5};
    link_ = std::make_unique<agent::MothershipLink>(options, channel_, &health_,
                                                    common::RealClock::Get(), &random_);
    thread_ = std::thread([this] { result_ = link_->Run(&stop_); });
  }
  ~LinkRunner() { Stop(); }
  void Stop() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
    link_->Cancel();
    if (thread_.joinable()) thread_.join();
  }
  agent::MothershipLink& link() { return *link_; }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  agent::HealthState health_;
  common::RealRandom random_;
  absl::Notification stop_;
  std::unique_ptr<agent::MothershipLink> link_;
  absl::Status result_;
  std::thread thread_;
};

// `get agents --status`: the filter is applied by the mothership, page by page, and the pages
// neither repeat nor skip an agent.
TEST_F(MothershipTest, AgentsFilterByStatusAcrossPages) {
  auto token = CreateToken("shop");
  v1::RegisterResponse resp;
  for (const char* name : {"web-0", "web-2", "web-3", "web-4", "web-5"}) {
    ASSERT_TRUE(Register(token.secret(), name, &resp).ok());
  }
  testing::TempDir agent_dir;
  LinkRunner runner(absl::StrCat("127.0.0.1:", mothership_->port()), token.secret(),
                    agent_dir.path());
  ASSERT_TRUE(PollUntil([&] {
    clock_.Advance(absl::Milliseconds(250));
    return GetAgent("web-1").status() == v1::AGENT_STATUS_HEALTHY;
  }));
  auto names = [&](v1::AgentStatus status, int page_size) {
    v1::ListAgentsRequest req;
    req.set_status(status);
    req.set_page_size(page_size);
    std::vector<std::string> out;
    for (const auto& a : AllPages(req)) {
      EXPECT_EQ(a.status(), status) << a.name();
      out.push_back(a.name());
    }
    return out;
  };
  EXPECT_EQ(names(v1::AGENT_STATUS_HEALTHY, 1), std::vector<std::string>{"web-1"});
  EXPECT_EQ(names(v1::AGENT_STATUS_REGISTERED, 2),
            (std::vector<std::string>{"web-0", "web-2", "web-3", "web-4", "web-5"}));
  EXPECT_EQ(names(v1::AGENT_STATUS_LOST, 3), std::vector<std::string>{});
  runner.Stop();

  v1::ListAgentsRequest req;
  req.set_status(static_cast<v1::AgentStatus>(42));
  v1::ListAgentsResponse page;
  auto ctx = Operator();
  grpc::Status st = control_->ListAgents(ctx.get(), req, &page);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "status 42 is not an agent status");
}

TEST_F(MothershipTest, HeartbeatsMakeAnAgentHealthyAndSilenceMakesItLost) {
  auto token = CreateToken("shop");
  testing::TempDir agent_dir;
  LinkRunner runner(absl::StrCat("127.0.0.1:", mothership_->port()), token.secret(), agent_dir.path());
  // Heartbeats are written by the housekeeping loop, which runs on the mothership's clock.
  ASSERT_TRUE(PollUntil([&] {
    clock_.Advance(absl::Milliseconds(250));
    return GetAgent("web-1").status() == v1::AGENT_STATUS_HEALTHY;
  }));
  runner.Stop();
  // The TTL passes on the mothership's clock with no heartbeat.
  clock_.Advance(absl::Seconds(11));
  EXPECT_EQ(GetAgent("web-1").status(), v1::AGENT_STATUS_LOST);
  ASSERT_TRUE(PollUntil([&] {
    clock_.Advance(absl::Milliseconds(250));  // lets the housekeeping loop run its sweep
    auto kinds = EventKinds();
    return std::find(kinds.begin(), kinds.end(), "agent.lost") != kinds.end();
  }));
}

TEST_F(MothershipTest, ARestartedMothershipJudgesNoAgentLostBeforeOneTtlHasPassed) {
  auto token = CreateToken("shop");
  testing::TempDir dir_a, dir_b;
  const int port = mothership_->port();
  const std::string target = absl::StrCat("127.0.0.1:", port);
  auto a = std::make_unique<LinkRunner>(target, token.secret(), dir_a.path(), "web-a");
  auto b = std::make_unique<LinkRunner>(target, token.secret(), dir_b.path(), "web-b");
  ASSERT_TRUE(PollUntil([&] {
    clock_.Advance(absl::Milliseconds(250));
    return GetAgent("web-a").status() == v1::AGENT_STATUS_HEALTHY &&
           GetAgent("web-b").status() == v1::AGENT_STATUS_HEALTHY;
  }));
  b->Stop();  // web-b stays away after the restart

  // The mothership is down for an hour: nobody could heartbeat to it.
  mothership_->Shutdown();
  mothership_.reset();
  clock_.Advance(absl::Hours(1));
  const absl::Time restarted = clock_.Now();
  StartMothership(target);
  EXPECT_EQ(GetAgent("web-b").status(), v1::AGENT_STATUS_UNKNOWN);

  // web-a comes back and heartbeats; web-b does not. Step the mothership's clock until web-b
  // is judged lost, noting when.
  absl::Time judged = absl::InfiniteFuture();
  ASSERT_TRUE(PollUntil([&] {
    clock_.Advance(absl::Milliseconds(250));
    auto kinds = EventKinds();
    if (std::count(kinds.begin(), kinds.end(), "agent.lost") == 0) return false;
    judged = clock_.Now();
    return true;
  }));
  // Not before one TTL (10 s) had passed since the restart, and only web-b: web-a was heard.
  EXPECT_GT(judged - restarted, absl::Seconds(10));
  EXPECT_EQ(GetAgent("web-b").status(), v1::AGENT_STATUS_LOST);
  EXPECT_EQ(GetAgent("web-a").status(), v1::AGENT_STATUS_HEALTHY);
  auto kinds = EventKinds();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "agent.lost"), 1);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "agent.recovered"), 0);
}

TEST_F(MothershipTest, LinkReconnectsAfterARestartWithoutRegisteringAgain) {
  auto token = CreateToken("shop");
  testing::TempDir agent_dir;
  const int port = mothership_->port();
  LinkRunner runner(absl::StrCat("127.0.0.1:", port), token.secret(), agent_dir.path());
  ASSERT_TRUE(PollUntil([&] { return runner.link().connected(); }));
  const std::string id = runner.link().identity()->agent_id;

  mothership_->Shutdown();
  mothership_.reset();
  ASSERT_TRUE(PollUntil([&] { return !runner.link().connected(); }));
  StartMothership(absl::StrCat("127.0.0.1:", port));
  ASSERT_TRUE(PollUntil([&] { return runner.link().connected(); }));
  ASSERT_TRUE(PollUntil([&] {
    clock_.Advance(absl::Milliseconds(250));
    return GetAgent("web-1").status() == v1::AGENT_STATUS_HEALTHY;
  }));
  v1::Agent agent = GetAgent("web-1");
  EXPECT_EQ(agent.id(), id);
  EXPECT_EQ(agent.incarnation(), 1);
  auto kinds = EventKinds();
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "agent.registered"), 1);
  EXPECT_EQ(std::count(kinds.begin(), kinds.end(), "agent.reregistered"), 0);
}

TEST_F(MothershipTest, StreamsBeyondTheAdmissionRateAreToldWhenToComeBackOneSlotApart) {
  mothership_->Shutdown();
  admit_rate_ = 1;  // a stream a second, one at a time; the clock stands still
  StartMothership("127.0.0.1:0");
  auto token = CreateToken("shop");
  v1::RegisterResponse a, b;
  ASSERT_TRUE(Register(token.secret(), "web-1", &a).ok());
  ASSERT_TRUE(Register(token.secret(), "web-2", &b).ok());

  RawStream first = OpenStream(a, a.incarnation());
  v1::MothershipMessage msg;
  ASSERT_TRUE(first.stream->Read(&msg));
  EXPECT_TRUE(msg.has_welcome());

  // The next ones are refused, each told a later slot.
  std::vector<int64_t> hints;
  for (int i = 0; i < 2; ++i) {
    RawStream refused = OpenStream(b, b.incarnation(), /*refused=*/true);
    EXPECT_FALSE(refused.stream->Read(&msg));
    grpc::Status st = refused.stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_TRUE(absl::StrContains(st.error_message(), "admits 1 new agent streams a second"))
        << st.error_message();
    const auto& trailers = refused.context->GetServerTrailingMetadata();
    auto it = trailers.find("x-tether-retry-after-ms");
    ASSERT_NE(it, trailers.end());
    int64_t ms = 0;
    ASSERT_TRUE(absl::SimpleAtoi(std::string(it->second.data(), it->second.size()), &ms));
    hints.push_back(ms);
  }
  EXPECT_EQ(hints[0], 1001);
  EXPECT_EQ(hints[1], 2001);
  EXPECT_EQ(GetAgent("web-2").status(), v1::AGENT_STATUS_REGISTERED);  // never on a stream

  // The agent's link waits as it is told; once the slot comes, it is let in.
  testing::TempDir agent_dir;
  LinkRunner runner(absl::StrCat("127.0.0.1:", mothership_->port()), token.secret(),
                    agent_dir.path(), "web-3");
  ASSERT_TRUE(PollUntil([&] { return runner.link().last_retry_hint() >= absl::Seconds(3); }));
  EXPECT_FALSE(runner.link().connected());
}

// An agent that keeps sending Hellos but never reads their Welcomes fills its stream's queue
// once HTTP/2 flow control stops the writes; the stream is then closed with RESOURCE_EXHAUSTED
// instead of the queue growing without end, and the agent can connect again.
TEST_F(MothershipTest, AStreamWhosePeerDoesNotReadIsClosedWithResourceExhausted) {
  mothership_->Shutdown();
  stream_queue_limit_ = 8;
  StartMothership("127.0.0.1:0");
  auto token = CreateToken("shop");
  v1::RegisterResponse agent;
  ASSERT_TRUE(Register(token.secret(), "web-1", &agent).ok());
  // A peer with a small receive window and no window growth: a few unread Welcomes stop the
  // mothership's writes.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  auto stub = v1::AgentService::NewStub(grpc::CreateCustomChannel(
      absl::StrCat("127.0.0.1:", mothership_->port()), grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext context;
  context.AddMetadata("authorization", "Bearer " + agent.credential());
  context.AddMetadata("x-tether-agent-id", agent.agent_id());
  auto stream = stub->Connect(&context);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(agent.agent_id());
  hello.mutable_hello()->set_incarnation(agent.incarnation());
  int64_t written = 0;
  while (written < 1'000'000 && stream->Write(hello)) ++written;
  EXPECT_LT(written, 1'000'000) << "the mothership kept taking Hellos it could not answer";
  // The status comes after what reached the peer before the mothership gave up on it.
  v1::MothershipMessage unread;
  while (stream->Read(&unread)) {
  }
  grpc::Status st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "does not read what the mothership sends"))
      << st.error_message();
  RawStream again = Connected(agent);
  EXPECT_TRUE(StreamAnswers(again, agent));
}

TEST_F(MothershipTest, ARecreatedAgentGetsANewIncarnationAndTheOldStreamIsClosed) {
  auto token = CreateToken("shop");
  testing::TempDir old_disk;
  LinkRunner old_agent(absl::StrCat("127.0.0.1:", mothership_->port()), token.secret(), old_disk.path());
  ASSERT_TRUE(PollUntil([&] { return old_agent.link().connected(); }));
  const std::string id = old_agent.link().identity()->agent_id;
  old_agent.Stop();

  testing::TempDir new_disk;  // the container was recreated with an empty disk
  LinkRunner new_agent(absl::StrCat("127.0.0.1:", mothership_->port()), token.secret(), new_disk.path());
  ASSERT_TRUE(PollUntil([&] { return new_agent.link().connected(); }));
  EXPECT_EQ(new_agent.link().identity()->agent_id, id);
  EXPECT_EQ(new_agent.link().identity()->incarnation, 2);
}

}  // namespace
}  // namespace tether::controlplane
