// The mothership's AgentSession over a fake outbox and backend: the handshake, heartbeats, and
// which revisions it sends when (on Hello, on a new revision, never twice, never the one the
// agent has); acks and nacks reach the backend, an impossible ack ends the stream.
#include "controlplane/agents/session.h"

#include <gtest/gtest.h>

#include "tests/testing/fake_session_backend.h"

namespace tether::controlplane {
namespace {

using testing::FakeSessionBackend;
using testing::FakeSessionOutbox;

class AgentSessionTest : public ::testing::Test {
 protected:
  AgentSessionTest()
      : session_(std::make_shared<AgentSession>(AgentIdentity{"id-1", "web-1", "shop", 2},
                                                &backend_, &streams_, &outbox_)) {}
  ~AgentSessionTest() override { session_->Detach(); }

  static v1::AgentMessage Hello(int64_t applied, const std::string& id = "id-1",
                                int64_t incarnation = 2) {
    v1::AgentMessage m;
    m.mutable_hello()->set_agent_id(id);
    m.mutable_hello()->set_incarnation(incarnation);
    m.mutable_hello()->set_applied_revision(applied);
    return m;
  }

  FakeSessionBackend backend_;
  FakeSessionOutbox outbox_;
  StreamRegistry streams_;
  std::shared_ptr<AgentSession> session_;
};

TEST_F(AgentSessionTest, HelloIsAnsweredWithWelcomeAndRegistersTheStream) {
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  ASSERT_EQ(outbox_.sent.size(), 1u);
  EXPECT_EQ(outbox_.sent[0].welcome().incarnation(), 2);
  EXPECT_EQ(outbox_.sent[0].welcome().heartbeat_ttl().seconds(), 15);
  EXPECT_TRUE(streams_.IsConnected("id-1"));
  session_->Detach();
  EXPECT_FALSE(streams_.IsConnected("id-1"));
}

TEST_F(AgentSessionTest, TheFirstMessageMustBeAHelloOfTheCredentialsIdentity) {
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat();
  EXPECT_EQ(session_->OnMessage(heartbeat).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(session_->OnMessage(Hello(0, "id-1", 1)).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(session_->OnMessage(Hello(0, "id-2", 2)).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(outbox_.sent.empty());
  EXPECT_FALSE(streams_.IsConnected("id-1"));
}

TEST_F(AgentSessionTest, HeartbeatsAreRecorded) {
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  v1::AgentMessage heartbeat;
  heartbeat.mutable_heartbeat()->mutable_health()->set_reason("fine");
  ASSERT_TRUE(session_->OnMessage(heartbeat).ok());
  ASSERT_EQ(backend_.seen.size(), 2u);
  EXPECT_EQ(backend_.seen[1].reason(), "fine");
}

// A Hello or heartbeat whose health says LEADER: each newer epoch is recorded once, before the
// health is kept; an epoch that cannot be one never is.
TEST_F(AgentSessionTest, ANewerLeaderEpochIsRecordedOnceAndANonsenseOneNever) {
  v1::AgentMessage hello = Hello(0);
  hello.mutable_hello()->mutable_status()->set_role(v1::AGENT_ROLE_LEADER);
  hello.mutable_hello()->mutable_status()->set_epoch(3);
  ASSERT_TRUE(session_->OnMessage(hello).ok());
  auto beat = [&](int64_t epoch, int role = v1::AGENT_ROLE_LEADER) {
    v1::AgentMessage m;
    m.mutable_heartbeat()->mutable_health()->set_role(static_cast<v1::AgentRole>(role));
    m.mutable_heartbeat()->mutable_health()->set_epoch(epoch);
    return session_->OnMessage(m);
  };
  ASSERT_TRUE(beat(3).ok());
  ASSERT_TRUE(beat(4).ok());
  ASSERT_TRUE(beat(2).ok());
  ASSERT_TRUE(beat(-1).ok());
  ASSERT_TRUE(beat(int64_t{1} << 62).ok());
  ASSERT_TRUE(beat(9, 77).ok());  // no role this build knows
  EXPECT_EQ(backend_.leader_epochs, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(backend_.seen[5].epoch(), 0);
  EXPECT_EQ(backend_.seen[6].role(), v1::AGENT_ROLE_UNSPECIFIED);
}

TEST_F(AgentSessionTest, AnAgentNotInProModeThatClaimsToLeadIsShownWithoutARole) {
  backend_.leader_answer = absl::FailedPreconditionError("not in pro mode");
  v1::AgentMessage hello = Hello(0);
  hello.mutable_hello()->mutable_status()->set_role(v1::AGENT_ROLE_LEADER);
  hello.mutable_hello()->mutable_status()->set_epoch(3);
  ASSERT_TRUE(session_->OnMessage(hello).ok());
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->mutable_health()->set_role(v1::AGENT_ROLE_LEADER);
  beat.mutable_heartbeat()->mutable_health()->set_epoch(4);
  ASSERT_TRUE(session_->OnMessage(beat).ok());
  EXPECT_EQ(backend_.leader_epochs, (std::vector<int64_t>{3}));  // asked once
  ASSERT_EQ(backend_.seen.size(), 2u);
  for (const auto& h : backend_.seen) {
    EXPECT_EQ(h.role(), v1::AGENT_ROLE_UNSPECIFIED);
    EXPECT_EQ(h.epoch(), 0);
  }
}

TEST_F(AgentSessionTest, AStaleIncarnationIsRefused) {
  streams_.Supersede("id-1", 3, absl::UnauthenticatedError("re-registered"));
  EXPECT_EQ(session_->OnMessage(Hello(0)).code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(AgentSessionTest, TheLatestRevisionIsSentOnHelloUnlessTheAgentHasIt) {
  backend_.SetLatest(3);
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  EXPECT_EQ(outbox_.Revisions(), std::vector<int64_t>{3});
  // A repeated Hello that says it has 3: nothing more to send.
  ASSERT_TRUE(session_->OnMessage(Hello(3)).ok());
  EXPECT_EQ(outbox_.Revisions(), std::vector<int64_t>{3});
}

TEST_F(AgentSessionTest, ANewRevisionIsSentOnceAndNeverAnOlderOne) {
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  EXPECT_TRUE(outbox_.Revisions().empty());
  backend_.SetLatest(4);
  session_->OnRevision(4);
  session_->OnRevision(4);  // delivered twice
  session_->OnRevision(2);  // a late notice of an older revision
  EXPECT_EQ(outbox_.Revisions(), std::vector<int64_t>{4});
  // Revisions that came while the agent was not connected wait for its Hello.
  auto other = std::make_shared<AgentSession>(AgentIdentity{"id-9", "web-9", "shop", 1},
                                              &backend_, &streams_, &outbox_);
  other->OnRevision(4);
  EXPECT_EQ(outbox_.Revisions(), std::vector<int64_t>{4});
  other->Detach();
}

TEST_F(AgentSessionTest, AcksAndNacksReachTheBackendAndAnImpossibleAckEndsTheStream) {
  backend_.SetLatest(5);
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  v1::AgentMessage ack;
  ack.mutable_ack()->set_revision(5);
  ASSERT_TRUE(session_->OnMessage(ack).ok());
  v1::AgentMessage nack;
  nack.mutable_nack()->set_revision(5);
  nack.mutable_nack()->set_error("boom");
  ASSERT_TRUE(session_->OnMessage(nack).ok());
  ASSERT_EQ(backend_.acks.size(), 1u);
  ASSERT_EQ(backend_.nacks.size(), 1u);
  EXPECT_EQ(backend_.nacks[0].error(), "boom");
  ack.mutable_ack()->set_revision(99);
  EXPECT_EQ(session_->OnMessage(ack).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(AgentSessionTest, ADetachedSessionSendsNothing) {
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  session_->Detach();
  backend_.SetLatest(1);
  session_->OnRevision(1);
  session_->Close(absl::UnavailableError("gone"));
  EXPECT_EQ(outbox_.sent.size(), 1u);  // the Welcome only
  EXPECT_TRUE(outbox_.closed.empty());
}

TEST_F(AgentSessionTest, ACertificateRequestIsAnsweredOrEndsTheStream) {
  v1::AgentMessage request;
  request.mutable_certificate_request()->set_csr("csr-1");
  // Not before Hello.
  EXPECT_EQ(session_->OnMessage(request).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  const size_t before = outbox_.sent.size();
  ASSERT_TRUE(session_->OnMessage(request).ok());
  ASSERT_EQ(outbox_.sent.size(), before + 1);
  EXPECT_EQ(outbox_.sent.back().certificate().certificate(), "certificate for csr-1");
  backend_.certificate_answer =
      absl::InvalidArgumentError("the CSR is not a PEM certificate request");
  EXPECT_EQ(session_->OnMessage(request).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(outbox_.sent.size(), before + 1);
}

TEST_F(AgentSessionTest, ARevisionPublishedWhileAHelloRegistersGoesOutAfterTheWelcomeOnce) {
  // A revision is published (and fanned out to this session) in the middle of its Hello.
  backend_.while_reading_ttl = [this] {
    backend_.while_reading_ttl = nullptr;
    backend_.SetLatest(5);
    session_->OnRevision(5);
  };
  ASSERT_TRUE(session_->OnMessage(Hello(0)).ok());
  ASSERT_FALSE(outbox_.sent.empty());
  EXPECT_TRUE(outbox_.sent[0].has_welcome());
  EXPECT_EQ(outbox_.Revisions(), std::vector<int64_t>{5});
}

}  // namespace
}  // namespace tether::controlplane
