// Durable commands against a real PostgreSQL, through the in-process mothership's gRPC port,
// with agents played by raw streams that send what a real agent would — and what it would not:
// a command is delivered on connect and again on every reconnect until its agent finishes it;
// progress lines are stored in order, once each, under concurrent writers; idempotency keys
// make one command of many calls; refused commands write nothing; a follower gets every line
// and ends with the command; the apply command ends with each agent's ack or nack.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <deque>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/files.h"
#include "controlplane/mothership.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/specs.h"
#include "tether/v1/agent_service.grpc.pb.h"
#include "tether/v1/control_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

using testing::PollUntil;

// An agent played by the test: one registration, one stream at a time, every message it
// receives kept in order.
class RawAgent {
 public:
  RawAgent(std::shared_ptr<grpc::Channel> channel, v1::RegisterResponse registration)
      : stub_(v1::AgentService::NewStub(channel)), reg_(std::move(registration)) {}
  ~RawAgent() { Disconnect(); }

  // A new stream; what the old one received is forgotten.
  void Connect() {
    Disconnect();
    {
      absl::MutexLock lock(&mu_);
      received_.clear();
    }
    context_ = std::make_unique<grpc::ClientContext>();
    context_->AddMetadata("authorization", "Bearer " + reg_.credential());
    context_->AddMetadata("x-tether-agent-id", reg_.agent_id());
    stream_ = stub_->Connect(context_.get());
    v1::AgentMessage hello;
    hello.mutable_hello()->set_agent_id(reg_.agent_id());
    hello.mutable_hello()->set_incarnation(reg_.incarnation());
    ASSERT_TRUE(stream_->Write(hello));
    reader_ = std::thread([this] {
      v1::MothershipMessage msg;
      while (stream_->Read(&msg)) {
        absl::MutexLock lock(&mu_);
        received_.push_back(msg);
      }
    });
  }

  void Disconnect() {
    if (stream_ == nullptr) return;
    context_->TryCancel();
    reader_.join();
    (void)stream_->Finish();
    stream_.reset();
  }

  bool Send(const v1::AgentMessage& msg) { return stream_->Write(msg); }
  // Says the agent has nothing more to send (a half-close); the mothership ends the stream.
  bool CloseSend() { return stream_->WritesDone(); }
  // Waits for the mothership to end the stream; its status.
  grpc::Status Ended() {
    reader_.join();
    grpc::Status st = stream_->Finish();
    stream_.reset();
    return st;
  }

  bool Update(const std::string& id, v1::CommandState state, int64_t attempt, int64_t first,
              std::vector<std::string> lines, const std::string& error = "") {
    v1::AgentMessage msg;
    auto* u = msg.mutable_command_update();
    u->set_command_id(id);
    u->set_state(state);
    u->set_attempt(attempt);
    u->set_first_line(first);
    for (auto& l : lines) u->add_progress(std::move(l));
    u->set_error(error);
    return Send(msg);
  }

  // The commands received so far, in order.
  std::vector<v1::Command> Commands() {
    absl::MutexLock lock(&mu_);
    std::vector<v1::Command> out;
    for (const auto& m : received_) {
      if (m.has_command()) out.push_back(m.command());
    }
    return out;
  }
  std::vector<v1::MothershipMessage> Received() {
    absl::MutexLock lock(&mu_);
    return {received_.begin(), received_.end()};
  }

  const v1::RegisterResponse& reg() const { return reg_; }

 private:
  std::unique_ptr<v1::AgentService::Stub> stub_;
  v1::RegisterResponse reg_;
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::MothershipMessage>> stream_;
  std::thread reader_;
  absl::Mutex mu_;
  std::deque<v1::MothershipMessage> received_ ABSL_GUARDED_BY(mu_);
};

class CommandStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    Start();
    v1::CreateBootstrapTokenRequest req;
    req.set_cluster("shop");
    v1::CreateBootstrapTokenResponse resp;
    auto ctx = Operator();
    ASSERT_TRUE(control_->CreateBootstrapToken(ctx.get(), req, &resp).ok());
    bootstrap_ = resp.secret();
  }
  void TearDown() override {
    agents_.clear();
    if (mothership_ != nullptr) mothership_->Shutdown();
  }

  void Start() {
    MothershipConfig config;
    config.listen = "127.0.0.1:0";
    config.data_dir = dir_.path();
    config.database_url = url_;
    mothership_ = std::make_unique<Mothership>(config, &clock_, &runner_);
    ASSERT_TRUE(mothership_->Start().ok());
    token_ = std::string(
        absl::StripAsciiWhitespace(*common::ReadFile(dir_.path() + "/operator.token")));
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", mothership_->port()),
                                   grpc::InsecureChannelCredentials());
    control_ = v1::ControlService::NewStub(channel_);
  }

  std::unique_ptr<grpc::ClientContext> Operator() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token_);
    return ctx;
  }

  RawAgent* AddAgent(const std::string& name) {
    v1::RegisterRequest req;
    req.set_bootstrap_token(bootstrap_);
    req.set_name(name);
    req.set_version("test");
    v1::RegisterResponse resp;
    grpc::ClientContext ctx;
    auto stub = v1::AgentService::NewStub(channel_);
    EXPECT_TRUE(stub->Register(&ctx, req, &resp).ok());
    agents_.push_back(std::make_unique<RawAgent>(channel_, resp));
    return agents_.back().get();
  }

  // Two migrations, the second without a down file; tenants acme and globex.
  v1::ApplySpecResponse ApplySpec(const std::string& key = "",
                                  std::vector<std::string> tenants = {"acme", "globex"}) {
    v1::ClusterSpec spec = testing::BaseSpec();
    for (const auto& t : tenants) spec.add_tenants()->set_name(t);
    testing::AddMigrationFile(&spec, "0001_init.up.sql", "CREATE TABLE t (id int);");
    testing::AddMigrationFile(&spec, "0001_init.down.sql", "DROP TABLE t;");
    testing::AddMigrationFile(&spec, "0002_more.up.sql", "ALTER TABLE t ADD x int;");
    v1::ApplySpecRequest req;
    *req.mutable_spec() = spec;
    req.set_idempotency_key(key);
    v1::ApplySpecResponse resp;
    auto ctx = Operator();
    grpc::Status st = control_->ApplySpec(ctx.get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  grpc::Status Run(const v1::Command& command, v1::CommandStatus* out, const std::string& key = "",
                   const std::string& cluster = "shop", const std::string& agent = "") {
    v1::RunCommandRequest req;
    req.set_cluster(cluster);
    req.set_agent(agent);
    *req.mutable_command() = command;
    req.set_idempotency_key(key);
    auto ctx = Operator();
    return control_->RunCommand(ctx.get(), req, out);
  }
  static v1::Command Migrate(const std::string& tenant = "", int64_t to = 0) {
    v1::Command c;
    c.mutable_migrate()->set_tenant(tenant);
    c.mutable_migrate()->set_to_version(to);
    return c;
  }

  v1::CommandStatus Get(const std::string& id) {
    v1::GetCommandRequest req;
    req.set_id(id);
    v1::CommandStatus out;
    auto ctx = Operator();
    EXPECT_TRUE(control_->GetCommand(ctx.get(), req, &out).ok());
    return out;
  }

  // Every event of a WatchCommand call, and how it ended.
  grpc::Status Watch(const std::string& id, int64_t after, bool follow,
                     std::vector<v1::CommandEvent>* events) {
    v1::WatchCommandRequest req;
    req.set_id(id);
    req.set_after_seq(after);
    req.set_follow(follow);
    auto ctx = Operator();
    auto reader = control_->WatchCommand(ctx.get(), req);
    v1::CommandEvent e;
    while (reader->Read(&e)) events->push_back(e);
    return reader->Finish();
  }
  static std::vector<std::string> Texts(const std::vector<v1::CommandEvent>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) {
      if (e.has_line()) out.push_back(e.line().text());
    }
    return out;
  }

  // Connects `agent` (named `name`), which is sent the apply's `revision`, and has it ack that
  // while `hold` keeps its row locked; returns once the Ack waits for the lock.
  void AckWaitingOnItsRow(RawAgent* agent, const std::string& name, int64_t revision,
                          pqxx::work& hold) {
    agent->Connect();
    ASSERT_TRUE(PollUntil([&] { return agent->Received().size() >= 2; }));
    hold.exec_params("SELECT 1 FROM agents WHERE name = $1 FOR UPDATE", name);
    v1::AgentMessage ack;
    ack.mutable_ack()->set_revision(revision);
    ASSERT_TRUE(agent->Send(ack));
    ASSERT_TRUE(PollUntil([&] { return Count("SELECT count(*) FROM pg_locks WHERE NOT granted") > 0; }))
        << "the Ack never waited for the row";
  }

  int64_t Count(const std::string& sql) {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1(sql)[0].as<int64_t>();
  }

  // A refused command writes no command, target, line or event; its error is one line.
  void ExpectRefusedWithoutWriting(const v1::Command& command, grpc::StatusCode code,
                                   const std::string& part, const std::string& key = "",
                                   const std::string& cluster = "shop",
                                   const std::string& agent = "") {
    const int64_t commands = Count("SELECT count(*) FROM commands");
    const int64_t targets = Count("SELECT count(*) FROM command_targets");
    const int64_t events = Count("SELECT count(*) FROM events");
    v1::CommandStatus out;
    grpc::Status st = Run(command, &out, key, cluster, agent);
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(part), std::string::npos) << st.error_message();
    EXPECT_EQ(st.error_message().find('\n'), std::string::npos) << st.error_message();
    EXPECT_EQ(Count("SELECT count(*) FROM commands"), commands);
    EXPECT_EQ(Count("SELECT count(*) FROM command_targets"), targets);
    EXPECT_EQ(Count("SELECT count(*) FROM events"), events);
  }

  testing::TempDir dir_;
  testing::FakeClock clock_;
  common::RealProcessRunner runner_;
  std::string url_, token_, bootstrap_;
  std::unique_ptr<Mothership> mothership_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ControlService::Stub> control_;
  std::vector<std::unique_ptr<RawAgent>> agents_;
};

TEST_F(CommandStoreTest, ACommandIsDeliveredOnConnectAndAgainUntilItsAgentFinishesIt) {
  RawAgent* web1 = AddAgent("web-1");
  RawAgent* web2 = AddAgent("web-2");
  const auto applied = ApplySpec();
  v1::CommandStatus queued;
  ASSERT_TRUE(Run(Migrate(), &queued).ok());
  EXPECT_EQ(queued.state(), v1::COMMAND_STATE_QUEUED);
  EXPECT_EQ(queued.kind(), "migrate");
  ASSERT_EQ(queued.targets_size(), 2);

  web1->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1; }));
  // The desired state (with its apply command) comes first: the command names its revision.
  auto received = web1->Received();
  ASSERT_GE(received.size(), 3u);
  EXPECT_TRUE(received[1].has_desired_state());
  EXPECT_EQ(received[1].desired_state().command_id(), applied.command_id());
  const v1::Command delivered = web1->Commands()[0];
  EXPECT_EQ(delivered.id(), queued.id());
  EXPECT_TRUE(delivered.has_migrate());
  EXPECT_EQ(delivered.revision(), applied.revision());

  // Lines 1–2 stored; after a reconnect the command comes again saying so.
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 1, 1, {"one", "two"}));
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).lines() == 2; }));
  web1->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1; }));
  EXPECT_EQ(web1->Commands()[0].attempt(), 1);
  EXPECT_EQ(web1->Commands()[0].lines_stored(), 2);

  // Finished: not delivered again. web-2, connected now, gets it while it is unfinished.
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_SUCCEEDED, 1, 3, {"three"}));
  ASSERT_TRUE(PollUntil([&] {
    return Get(queued.id()).targets(0).state() == v1::COMMAND_STATE_SUCCEEDED;
  }));
  EXPECT_EQ(Get(queued.id()).state(), v1::COMMAND_STATE_RUNNING);  // web-2 has not started
  web1->Connect();
  web2->Connect();
  ASSERT_TRUE(PollUntil([&] { return web2->Commands().size() == 1; }));
  ASSERT_TRUE(PollUntil([&] {
    for (const auto& m : web1->Received()) if (m.has_welcome()) return true;
    return false;
  }));
  // web-1's stream has seen its Welcome and desired state; it would have had the command next.
  ASSERT_TRUE(PollUntil([&] { return web1->Received().size() >= 2; }));
  EXPECT_TRUE(web1->Commands().empty());

  ASSERT_TRUE(web2->Update(queued.id(), v1::COMMAND_STATE_FAILED, 1, 1, {"broke"}, "boom"));
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).state() == v1::COMMAND_STATE_FAILED; }));
  const v1::CommandStatus done = Get(queued.id());
  EXPECT_EQ(done.error(), "web-2: boom");
  EXPECT_TRUE(done.has_finished_at());
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE kind = 'command.finished'"), 1);
  // A late word of a finished target changes nothing.
  ASSERT_TRUE(web2->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 1, 2, {"late"}));
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).lines() == 5; }));
  EXPECT_EQ(Get(queued.id()).targets(1).state(), v1::COMMAND_STATE_FAILED);
}

TEST_F(CommandStoreTest, LinesAreStoredOnceInOrderUnderConcurrentWriters) {
  RawAgent* web1 = AddAgent("web-1");
  RawAgent* web2 = AddAgent("web-2");
  ApplySpec();
  v1::CommandStatus queued;
  ASSERT_TRUE(Run(Migrate(), &queued).ok());
  web1->Connect();
  web2->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1 && web2->Commands().size() == 1; }));
  // Each agent sends 150 lines one update at a time, every update twice (a re-send after a
  // reconnect), both agents at once.
  constexpr int kLines = 150;
  auto send = [&](RawAgent* agent, const std::string& name) {
    for (int i = 1; i <= kLines; ++i) {
      const std::string text = absl::StrCat(name, " ", i);
      ASSERT_TRUE(agent->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 7, i, {text}));
      ASSERT_TRUE(agent->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 7, i, {text}));
    }
  };
  std::thread a(send, web1, "web-1");
  std::thread b(send, web2, "web-2");
  a.join();
  b.join();
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).lines() == 2 * kLines; }));
  EXPECT_EQ(Count("SELECT count(*) FROM command_lines"), 2 * kLines);
  EXPECT_EQ(Count("SELECT max(seq) FROM command_lines"), 2 * kLines);  // 1…300, no gap

  std::vector<v1::CommandEvent> events;
  ASSERT_TRUE(Watch(queued.id(), 0, /*follow=*/false, &events).ok());
  int64_t expected_seq = 1;
  int next[2] = {1, 1};
  for (const auto& e : events) {
    if (!e.has_line()) continue;
    EXPECT_EQ(e.line().seq(), expected_seq++);
    const int who = e.line().agent() == "web-1" ? 0 : 1;
    EXPECT_EQ(e.line().text(), absl::StrCat(e.line().agent(), " ", next[who]++));
  }
  EXPECT_EQ(expected_seq, 2 * kLines + 1);
  ASSERT_TRUE(events.back().has_status());  // without follow: the lines, then the status

  // A newer attempt (the agent restarted) numbers from 1 again; an older one is ignored.
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 8, 1, {"resumed"}));
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 7, kLines + 1, {"stale"}));
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 8, 3, {"after a gap"}));
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).lines() == 2 * kLines + 3; }));
  events.clear();
  ASSERT_TRUE(Watch(queued.id(), 2 * kLines, false, &events).ok());
  EXPECT_EQ(Texts(events), (std::vector<std::string>{
                               "resumed", "(lines 2–2 of attempt 8 were not received)",
                               "after a gap"}));
}

TEST_F(CommandStoreTest, AnUpdateThatCannotBeEndsTheStreamAndStoresNothing) {
  RawAgent* web1 = AddAgent("web-1");
  ApplySpec();
  v1::CommandStatus queued;
  ASSERT_TRUE(Run(Migrate(), &queued).ok());
  struct Case {
    int64_t attempt, first;
    int lines;
    int state;
    std::string part;
  };
  for (const Case& c : {Case{1, int64_t{1} << 62, 1, 2, "first_line"},
                        Case{-1, 1, 1, 2, "attempt"},
                        Case{1, 1, 1001, 2, "at most 1000 lines"},
                        Case{1, 1, 1, 77, "must be a command state"}}) {
    web1->Connect();
    ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1; }));
    (void)web1->Update(queued.id(), static_cast<v1::CommandState>(c.state), c.attempt, c.first,
                       std::vector<std::string>(c.lines, "x"));
    grpc::Status st = web1->Ended();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.part;
    EXPECT_NE(st.error_message().find(c.part), std::string::npos) << st.error_message();
    EXPECT_EQ(Count("SELECT count(*) FROM command_lines"), 0);
    EXPECT_EQ(Get(queued.id()).targets(0).state(), v1::COMMAND_STATE_QUEUED);
  }
}

// An agent that registered after an apply receives that revision with the apply's command id
// and reports its reconcile under it. It has no part in that command: nothing is written, and
// it is no attack — its stream stays open.
TEST_F(CommandStoreTest, AnAgentThatJoinedAfterAnApplyKeepsItsStreamWhenItReportsUnderIt) {
  AddAgent("web-1");
  const auto applied = ApplySpec();
  RawAgent* late = AddAgent("web-late");
  late->Connect();
  ASSERT_TRUE(PollUntil([&] {
    for (const auto& m : late->Received()) {
      if (m.has_desired_state()) return m.desired_state().command_id() == applied.command_id();
    }
    return false;
  }));
  const int64_t lines = Count("SELECT count(*) FROM command_lines");
  ASSERT_TRUE(late->Update(applied.command_id(), v1::COMMAND_STATE_RUNNING, 0, 1,
                           {"reconcile: revision 1"}));
  // A second Hello is answered with a second Welcome only on a stream still open.
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(late->reg().agent_id());
  hello.mutable_hello()->set_incarnation(late->reg().incarnation());
  ASSERT_TRUE(late->Send(hello));
  ASSERT_TRUE(PollUntil([&] {
    int welcomes = 0;
    for (const auto& m : late->Received()) welcomes += m.has_welcome() ? 1 : 0;
    return welcomes == 2;
  }));
  EXPECT_EQ(Count("SELECT count(*) FROM command_lines"), lines);
  const v1::CommandStatus command = Get(applied.command_id());
  ASSERT_EQ(command.targets_size(), 1);
  EXPECT_EQ(command.targets(0).agent(), "web-1");
}

// An agent acts only as itself: with its own valid credential it can neither say Hello as
// another agent nor report progress of another agent's command, of its cluster or another.
// Each ends its stream with PERMISSION_DENIED and writes nothing.
TEST_F(CommandStoreTest, AnAgentCannotSpeakForAnother) {
  RawAgent* web1 = AddAgent("web-1");
  RawAgent* web2 = AddAgent("web-2");
  ApplySpec();
  v1::CommandStatus for_web2;
  ASSERT_TRUE(Run(Migrate(), &for_web2, "", "shop", "web-2").ok());
  web2->Connect();
  ASSERT_TRUE(PollUntil([&] { return web2->Commands().size() == 1; }));
  const int64_t seen2 = Count(absl::StrCat(
      "SELECT coalesce(extract(epoch FROM last_seen_at) * 1000000, 0)::bigint FROM agents "
      "WHERE name = 'web-2'"));

  // Progress of web-2's command, from web-1's stream.
  web1->Connect();
  (void)web1->Update(for_web2.id(), v1::COMMAND_STATE_SUCCEEDED, 1, 1, {"done, says web-1"});
  grpc::Status st = web1->Ended();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "is not this agent's")) << st.error_message();
  EXPECT_EQ(Count("SELECT count(*) FROM command_lines"), 0);
  EXPECT_EQ(Get(for_web2.id()).targets(0).state(), v1::COMMAND_STATE_QUEUED);

  // A Hello as web-2 on web-1's stream (web-1's credential, web-2's id in the message).
  auto stub = v1::AgentService::NewStub(channel_);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + web1->reg().credential());
  ctx.AddMetadata("x-tether-agent-id", web1->reg().agent_id());
  auto stream = stub->Connect(&ctx);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(web2->reg().agent_id());
  hello.mutable_hello()->set_incarnation(web2->reg().incarnation());
  hello.mutable_hello()->set_applied_revision(1);
  (void)stream->Write(hello);
  v1::MothershipMessage msg;
  EXPECT_FALSE(stream->Read(&msg));
  st = stream->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "an agent acts only as itself"));

  // web-1's credential under web-2's id in the metadata is no credential at all.
  grpc::ClientContext ctx2;
  ctx2.AddMetadata("authorization", "Bearer " + web1->reg().credential());
  ctx2.AddMetadata("x-tether-agent-id", web2->reg().agent_id());
  auto stream2 = stub->Connect(&ctx2);
  (void)stream2->Write(hello);
  EXPECT_FALSE(stream2->Read(&msg));
  EXPECT_EQ(stream2->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  // Nothing of web-2 changed: its sighting, its command, its applied revision.
  EXPECT_EQ(Count(absl::StrCat(
                "SELECT coalesce(extract(epoch FROM last_seen_at) * 1000000, 0)::bigint FROM "
                "agents WHERE name = 'web-2'")),
            seen2);
  EXPECT_EQ(Count("SELECT applied_revision FROM agents WHERE name = 'web-2'"), 0);
  EXPECT_EQ(Get(for_web2.id()).targets(0).state(), v1::COMMAND_STATE_QUEUED);

  // Nor does a command of another cluster reach it, or take its report.
  v1::CreateBootstrapTokenRequest bar_req;
  bar_req.set_cluster("bar");
  v1::CreateBootstrapTokenResponse bar_token;
  auto op = Operator();
  ASSERT_TRUE(control_->CreateBootstrapToken(op.get(), bar_req, &bar_token).ok());
  bootstrap_ = bar_token.secret();
  RawAgent* db1 = AddAgent("db-1");
  db1->Connect();
  (void)db1->Update(for_web2.id(), v1::COMMAND_STATE_RUNNING, 1, 1, {"db-1 was here"});
  st = db1->Ended();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  EXPECT_TRUE(db1->Commands().empty());
  EXPECT_EQ(Count("SELECT count(*) FROM command_lines"), 0);
}

TEST_F(CommandStoreTest, AFollowerGetsEveryLineLiveAndEndsWithTheCommand) {
  RawAgent* web1 = AddAgent("web-1");
  ApplySpec();
  v1::CommandStatus queued;
  ASSERT_TRUE(Run(Migrate("acme", 1), &queued).ok());
  web1->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1; }));
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 1, 1, {"before"}));
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).lines() == 1; }));

  std::vector<v1::CommandEvent> events;
  grpc::Status ended;
  std::thread follower([&] { ended = Watch(queued.id(), 0, /*follow=*/true, &events); });
  for (int i = 2; i <= 50; ++i) {
    ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 1, i, {absl::StrCat("line ", i)}));
  }
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_SUCCEEDED, 1, 51, {"done"}));
  follower.join();  // ends by itself once the command has ended
  EXPECT_TRUE(ended.ok()) << ended.error_message();
  const auto texts = Texts(events);
  ASSERT_EQ(texts.size(), 51u);
  EXPECT_EQ(texts.front(), "before");
  EXPECT_EQ(texts[10], "line 11");
  EXPECT_EQ(texts.back(), "done");
  ASSERT_TRUE(events.back().has_status());
  EXPECT_EQ(events.back().status().state(), v1::COMMAND_STATE_SUCCEEDED);

  // An unknown command: NOT_FOUND, not an endless stream.
  events.clear();
  EXPECT_EQ(Watch("999", 0, true, &events).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Watch("x'; DROP", 0, true, &events).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(CommandStoreTest, AFollowerEndsWhenTheMothershipStopsAndResumesAfterItsLastLine) {
  RawAgent* web1 = AddAgent("web-1");
  ApplySpec();
  v1::CommandStatus queued;
  ASSERT_TRUE(Run(Migrate(), &queued).ok());
  web1->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1; }));
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_RUNNING, 1, 1, {"a", "b"}));
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).lines() == 2; }));
  std::vector<v1::CommandEvent> events;
  grpc::Status ended;
  std::thread follower([&] { ended = Watch(queued.id(), 0, true, &events); });
  ASSERT_TRUE(PollUntil([&] { return Texts(events).size() == 2; }));
  agents_.clear();
  mothership_->Shutdown();
  follower.join();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::UNAVAILABLE) << ended.error_message();

  Start();
  RawAgent* again = AddAgent("web-1");  // re-registers: a new incarnation of the agent
  (void)again;
  std::vector<v1::CommandEvent> rest;
  v1::CommandStatus status = Get(queued.id());
  // The run of the old incarnation is gone with it; the follower resumes after line 2.
  EXPECT_EQ(status.state(), v1::COMMAND_STATE_RUNNING);
  again->Connect();
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).state() == v1::COMMAND_STATE_FAILED; }));
  ASSERT_TRUE(Watch(queued.id(), 2, true, &rest).ok());
  EXPECT_TRUE(Texts(rest).empty());
  ASSERT_TRUE(rest.back().has_status());
  EXPECT_NE(rest.back().status().error().find("re-registered"), std::string::npos)
      << rest.back().status().error();
}

TEST_F(CommandStoreTest, AnIdempotencyKeyMakesOneCommandOfManyCalls) {
  AddAgent("web-1");
  const auto first = ApplySpec("apply-key-1");
  ASSERT_FALSE(first.command_id().empty());
  const auto retried = ApplySpec("apply-key-1");
  EXPECT_EQ(retried.command_id(), first.command_id());
  EXPECT_EQ(retried.revision(), first.revision());
  EXPECT_TRUE(retried.stored());
  EXPECT_EQ(Count("SELECT count(*) FROM commands WHERE kind = 'apply'"), 1);
  EXPECT_EQ(Count("SELECT count(*) FROM spec_revisions"), 1);

  v1::CommandStatus a, b;
  ASSERT_TRUE(Run(Migrate("acme"), &a, "migrate-key").ok());
  ASSERT_TRUE(Run(Migrate("acme"), &b, "migrate-key").ok());
  EXPECT_EQ(a.id(), b.id());
  EXPECT_EQ(a.idempotency_key(), "migrate-key");
  EXPECT_EQ(Count("SELECT count(*) FROM commands WHERE kind = 'migrate'"), 1);
  // The key with another request is refused, and writes nothing.
  ExpectRefusedWithoutWriting(Migrate("globex"), grpc::StatusCode::ALREADY_EXISTS,
                              "idempotency key was used for another request", "migrate-key");
  ExpectRefusedWithoutWriting(Migrate(), grpc::StatusCode::INVALID_ARGUMENT, "idempotency key",
                              std::string(200, 'k'));
}

TEST_F(CommandStoreTest, ACommandThatCannotRunIsRefusedWithoutWriting) {
  RawAgent* web1 = AddAgent("web-1");
  v1::CommandStatus out;
  ExpectRefusedWithoutWriting(Migrate(), grpc::StatusCode::FAILED_PRECONDITION, "no spec yet");
  ApplySpec("", {"acme"});
  ExpectRefusedWithoutWriting(Migrate(), grpc::StatusCode::NOT_FOUND, "does not exist", "",
                              "billing");
  ExpectRefusedWithoutWriting(Migrate("nobody"), grpc::StatusCode::NOT_FOUND,
                              "tenant nobody is not in cluster shop");
  ExpectRefusedWithoutWriting(Migrate("acme", 9), grpc::StatusCode::INVALID_ARGUMENT,
                              "above the spec's latest migration (2)");
  ExpectRefusedWithoutWriting(Migrate("acme\"; DROP TABLE commands; --"),
                              grpc::StatusCode::INVALID_ARGUMENT, "tenant");
  ExpectRefusedWithoutWriting(v1::Command(), grpc::StatusCode::INVALID_ARGUMENT,
                              "must name one of");
  v1::Command apply;
  apply.mutable_apply()->set_revision(1);
  ExpectRefusedWithoutWriting(apply, grpc::StatusCode::INVALID_ARGUMENT, "made by ApplySpec");
  v1::Command drop;
  drop.mutable_drop_tenant()->set_tenant("acme");
  ExpectRefusedWithoutWriting(drop, grpc::StatusCode::FAILED_PRECONDITION,
                              "remove it from the spec first");
  v1::Command reprovision;
  reprovision.mutable_reprovision();
  ExpectRefusedWithoutWriting(reprovision, grpc::StatusCode::INVALID_ARGUMENT, "needs an agent");
  ExpectRefusedWithoutWriting(reprovision, grpc::StatusCode::NOT_FOUND,
                              "agent \"web-9\" does not exist", "", "", "web-9");

  // The agent reports acme at version 2; undoing two steps meets 0002, which has no down file.
  web1->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Received().size() >= 2; }));
  v1::AgentMessage ack;
  ack.mutable_ack()->set_revision(1);
  auto* t = ack.mutable_ack()->add_tenants();
  t->set_name("acme");
  t->set_state(v1::TENANT_STATE_READY);
  t->set_version(2);
  ASSERT_TRUE(web1->Send(ack));
  ASSERT_TRUE(PollUntil([&] { return Count("SELECT count(*) FROM agent_tenants") == 1; }));
  v1::Command rollback;
  rollback.mutable_rollback()->set_tenant("acme");
  rollback.mutable_rollback()->set_steps(2);
  ExpectRefusedWithoutWriting(rollback, grpc::StatusCode::FAILED_PRECONDITION,
                              "migration 2 (more) has no down file; nothing was rolled back");
  rollback.mutable_rollback()->set_steps(5000);
  ExpectRefusedWithoutWriting(rollback, grpc::StatusCode::INVALID_ARGUMENT, "--steps");

  // One agent's command goes to that agent only.
  ASSERT_TRUE(Run(reprovision, &out, "", "", "web-1").ok());
  EXPECT_EQ(out.cluster(), "shop");
  EXPECT_EQ(out.summary(), "reprovision web-1");
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1; }));
}

TEST_F(CommandStoreTest, CancelReachesTheAgentAndAFinishedCommandCannotBeCancelled) {
  RawAgent* web1 = AddAgent("web-1");
  ApplySpec();
  v1::CommandStatus queued;
  ASSERT_TRUE(Run(Migrate(), &queued).ok());
  web1->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 1; }));
  v1::CancelCommandRequest req;
  req.set_id(queued.id());
  v1::CommandStatus cancelled;
  auto ctx = Operator();
  ASSERT_TRUE(control_->CancelCommand(ctx.get(), req, &cancelled).ok());
  EXPECT_TRUE(cancelled.cancel_requested());
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 2; }));
  EXPECT_TRUE(web1->Commands()[1].cancel());
  ASSERT_TRUE(web1->Update(queued.id(), v1::COMMAND_STATE_CANCELLED, 1, 1, {"stopped"}));
  ASSERT_TRUE(PollUntil([&] { return Get(queued.id()).state() == v1::COMMAND_STATE_CANCELLED; }));
  auto again = Operator();
  v1::CommandStatus out;
  ASSERT_TRUE(control_->CancelCommand(again.get(), req, &out).ok());  // asked twice: fine

  // A deleted agent's part ends at once: it would never answer.
  RawAgent* gone = AddAgent("web-9");
  v1::CommandStatus orphaned;
  ASSERT_TRUE(Run(Migrate("acme"), &orphaned).ok());
  ASSERT_EQ(orphaned.targets_size(), 2);
  v1::DeleteAgentRequest del;
  del.set_name("web-9");
  v1::DeleteAgentResponse deleted;
  auto del_ctx = Operator();
  ASSERT_TRUE(control_->DeleteAgent(del_ctx.get(), del, &deleted).ok());
  (void)gone;
  EXPECT_EQ(Get(orphaned.id()).targets(1).state(), v1::COMMAND_STATE_CANCELLED);
  EXPECT_EQ(Get(orphaned.id()).targets(1).error(), "agent web-9 was deleted");
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 3; }));
  ASSERT_TRUE(web1->Update(orphaned.id(), v1::COMMAND_STATE_SUCCEEDED, 1, 1, {"ok"}));
  ASSERT_TRUE(PollUntil([&] { return Get(orphaned.id()).state() == v1::COMMAND_STATE_CANCELLED; }));

  v1::CommandStatus other;
  ASSERT_TRUE(Run(Migrate("acme"), &other).ok());
  ASSERT_TRUE(PollUntil([&] { return web1->Commands().size() == 4; }));
  ASSERT_TRUE(web1->Update(other.id(), v1::COMMAND_STATE_SUCCEEDED, 1, 1, {"ok"}));
  ASSERT_TRUE(PollUntil([&] { return Get(other.id()).state() == v1::COMMAND_STATE_SUCCEEDED; }));
  req.set_id(other.id());
  auto third = Operator();
  grpc::Status st = control_->CancelCommand(third.get(), req, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("already succeeded"), std::string::npos);
}

TEST_F(CommandStoreTest, AnApplyCommandEndsWithEachAgentsAckOrNack) {
  RawAgent* web1 = AddAgent("web-1");
  RawAgent* web2 = AddAgent("web-2");
  const auto applied = ApplySpec();
  v1::CommandStatus status = Get(applied.command_id());
  EXPECT_EQ(status.kind(), "apply");
  ASSERT_EQ(status.targets_size(), 2);
  web1->Connect();
  web2->Connect();
  ASSERT_TRUE(PollUntil([&] { return web1->Received().size() >= 2 && web2->Received().size() >= 2; }));
  // The reconcile's lines are the command's; an apply is never sent as a Command.
  EXPECT_TRUE(web1->Commands().empty());
  ASSERT_TRUE(web1->Update(applied.command_id(), v1::COMMAND_STATE_SUCCEEDED, 5, 1,
                           {"acme: created at version 2"}));
  ASSERT_TRUE(PollUntil([&] { return Get(applied.command_id()).lines() == 1; }));
  EXPECT_EQ(Get(applied.command_id()).targets(0).state(), v1::COMMAND_STATE_RUNNING);
  v1::AgentMessage ack;
  ack.mutable_ack()->set_revision(applied.revision());
  ASSERT_TRUE(web1->Send(ack));
  v1::AgentMessage nack;
  nack.mutable_nack()->set_revision(applied.revision());
  nack.mutable_nack()->set_error("globex: syntax error");
  ASSERT_TRUE(web2->Send(nack));
  ASSERT_TRUE(PollUntil([&] { return Get(applied.command_id()).state() == v1::COMMAND_STATE_FAILED; }));
  status = Get(applied.command_id());
  EXPECT_EQ(status.targets(0).state(), v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_EQ(status.targets(1).state(), v1::COMMAND_STATE_FAILED);
  EXPECT_EQ(status.error(), "web-2: globex: syntax error");
  // An apply is not cancelled: the operator applies the spec they want instead.
  v1::CancelCommandRequest req;
  req.set_id(applied.command_id());
  v1::CommandStatus out;
  auto ctx = Operator();
  EXPECT_EQ(control_->CancelCommand(ctx.get(), req, &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// Every agent of a cluster acks an apply at the same moment: the command ends once, when the
// last ack is in, with every part's end and one command.finished event.
TEST_F(CommandStoreTest, AnApplyAckedByManyAgentsAtOnceEndsOnce) {
  constexpr int kAgents = 24;
  std::vector<RawAgent*> agents;
  for (int i = 0; i < kAgents; ++i) agents.push_back(AddAgent(absl::StrCat("web-", i)));
  const auto applied = ApplySpec();
  for (RawAgent* a : agents) a->Connect();
  ASSERT_TRUE(PollUntil([&] {
    for (RawAgent* a : agents) {
      if (a->Received().size() < 2) return false;
    }
    return true;
  }));
  EXPECT_EQ(Get(applied.command_id()).state(), v1::COMMAND_STATE_QUEUED);
  std::vector<std::thread> acks;
  for (int i = 0; i < kAgents; ++i) {
    acks.emplace_back([&, i] {
      v1::AgentMessage message;
      if (i == 7) {
        message.mutable_nack()->set_revision(applied.revision());
        message.mutable_nack()->set_error("globex: syntax error");
      } else {
        message.mutable_ack()->set_revision(applied.revision());
      }
      EXPECT_TRUE(agents[i]->Send(message));
    });
  }
  for (auto& t : acks) t.join();
  ASSERT_TRUE(PollUntil([&] {
    return Get(applied.command_id()).state() == v1::COMMAND_STATE_FAILED;
  }));
  const v1::CommandStatus status = Get(applied.command_id());
  int succeeded = 0;
  for (const auto& t : status.targets()) succeeded += t.state() == v1::COMMAND_STATE_SUCCEEDED;
  EXPECT_EQ(succeeded, kAgents - 1);
  EXPECT_EQ(status.error(), "web-7: globex: syntax error");
  EXPECT_EQ(Count("SELECT count(*) FROM events WHERE kind = 'command.finished'"), 1);
}

// An agent's Ack waits for the database (here: its row locked by another session); the
// heartbeats it sends meanwhile are heard all the same, so it is not thought silent, and the
// Ack is recorded once the row is free.
TEST_F(CommandStoreTest, AHeartbeatIsHeardWhileTheAgentsAckWaitsForTheDatabase) {
  RawAgent* web1 = AddAgent("web-1");
  const auto applied = ApplySpec();
  pqxx::connection holder(url_);
  pqxx::work hold(holder);
  ASSERT_NO_FATAL_FAILURE(AckWaitingOnItsRow(web1, "web-1", applied.revision(), hold));
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->mutable_health()->set_state(v1::PROVISIONING_STATE_READY);
  beat.mutable_heartbeat()->mutable_health()->set_reason("heard while the ack waits");
  ASSERT_TRUE(web1->Send(beat));
  auto agent = [&] {
    v1::GetAgentRequest req;
    req.set_name("web-1");
    v1::Agent a;
    auto ctx = Operator();
    EXPECT_TRUE(control_->GetAgent(ctx.get(), req, &a).ok());
    return a;
  };
  EXPECT_TRUE(PollUntil([&] { return agent().health().reason() == "heard while the ack waits"; }))
      << "the heartbeat waited behind the Ack";
  EXPECT_EQ(agent().applied_revision(), 0);  // the Ack still waits
  EXPECT_EQ(Get(applied.command_id()).state(), v1::COMMAND_STATE_QUEUED);
  hold.abort();
  ASSERT_TRUE(PollUntil([&] {
    return Get(applied.command_id()).state() == v1::COMMAND_STATE_SUCCEEDED;
  }));
  EXPECT_EQ(agent().applied_revision(), applied.revision());
}

// An agent sends its Ack and a Nack and closes its side while the Ack still waits for the
// database: both are handled, in order, before the stream ends.
TEST_F(CommandStoreTest, WhatAnAgentSentBeforeClosingIsHandledBeforeTheStreamEnds) {
  RawAgent* web1 = AddAgent("web-1");
  const auto applied = ApplySpec();
  pqxx::connection holder(url_);
  pqxx::work hold(holder);
  ASSERT_NO_FATAL_FAILURE(AckWaitingOnItsRow(web1, "web-1", applied.revision(), hold));
  v1::AgentMessage nack;
  nack.mutable_nack()->set_revision(applied.revision());
  nack.mutable_nack()->set_error("acme: the last word");
  ASSERT_TRUE(web1->Send(nack));
  ASSERT_TRUE(web1->CloseSend());
  hold.abort();
  EXPECT_TRUE(web1->Ended().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM agents WHERE name = 'web-1' AND "
                  "nack_error = 'acme: the last word'"),
            1);
}

// A heartbeat sent just before the agent closes its side is heard before the stream ends.
TEST_F(CommandStoreTest, AHeartbeatSentBeforeClosingIsHeard) {
  RawAgent* web1 = AddAgent("web-1");
  web1->Connect();
  ASSERT_TRUE(PollUntil([&] { return !web1->Received().empty(); }));  // the Welcome
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->mutable_health()->set_state(v1::PROVISIONING_STATE_READY);
  beat.mutable_heartbeat()->mutable_health()->set_reason("the last heartbeat");
  ASSERT_TRUE(web1->Send(beat));
  ASSERT_TRUE(web1->CloseSend());
  EXPECT_TRUE(web1->Ended().ok());
  v1::GetAgentRequest req;
  req.set_name("web-1");
  v1::Agent agent;
  auto ctx = Operator();
  ASSERT_TRUE(control_->GetAgent(ctx.get(), req, &agent).ok());
  EXPECT_EQ(agent.health().reason(), "the last heartbeat");
}

}  // namespace
}  // namespace tether::controlplane
