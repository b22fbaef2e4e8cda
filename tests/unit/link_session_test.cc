// The agent's LinkSession over fake outboxes: Hello, Welcome, revisions handed on once (a
// duplicate after a reconnect and a stale one are dropped, a newer one is passed on while the
// last is still being reconciled), and the Ack or Nack of a reconcile sent at once or, when
// the stream died in the middle of the reconcile, on the next stream.
#include "agent/link/session.h"

#include <gtest/gtest.h>

#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_outbox.h"

namespace tether::agent {
namespace {

using testing::FakeOutbox;

class LinkSessionTest : public ::testing::Test {
 protected:
  LinkSessionTest()
      : session_(Identity{"id-1", "cred", 3, "web-1", "shop"}, "1.0", &health_, &clock_,
                 LinkSession::Callbacks{
                     [this](int64_t revision, const v1::ClusterSpec& spec,
                            const std::string& command_id) {
                       received_.push_back(revision);
                       command_ids_.push_back(command_id);
                       EXPECT_EQ(spec.cluster(), "shop");
                     },
                     [this](const v1::Command& command) { commands_.push_back(command.id()); }}) {
  }

  static v1::MothershipMessage Desired(int64_t revision) {
    v1::MothershipMessage m;
    m.mutable_desired_state()->set_revision(revision);
    m.mutable_desired_state()->mutable_spec()->set_cluster("shop");
    return m;
  }
  static v1::MothershipMessage Welcome(const std::string& id = "id-1", int64_t incarnation = 3) {
    v1::MothershipMessage m;
    m.mutable_welcome()->set_agent_id(id);
    m.mutable_welcome()->set_incarnation(incarnation);
    return m;
  }

  HealthState health_;
  testing::FakeClock clock_;
  std::vector<int64_t> received_;
  std::vector<std::string> command_ids_;
  std::vector<std::string> commands_;
  LinkSession session_;
};

TEST_F(LinkSessionTest, OpenSendsHelloWithTheAppliedRevision) {
  session_.SetAppliedRevision(7);
  FakeOutbox out;
  ASSERT_TRUE(session_.Open(&out));
  auto sent = out.Sent();
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].hello().agent_id(), "id-1");
  EXPECT_EQ(sent[0].hello().incarnation(), 3);
  EXPECT_EQ(sent[0].hello().applied_revision(), 7);
  EXPECT_FALSE(session_.welcomed());
  ASSERT_TRUE(session_.OnMessage(Welcome()).ok());
  EXPECT_TRUE(session_.welcomed());
  EXPECT_EQ(session_.OnMessage(Welcome("id-2")).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LinkSessionTest, RevisionsAreHandedOnOnceAndNeverBackwards) {
  FakeOutbox out;
  ASSERT_TRUE(session_.Open(&out));
  ASSERT_TRUE(session_.OnMessage(Desired(2)).ok());
  ASSERT_TRUE(session_.OnMessage(Desired(2)).ok());  // duplicate delivery
  ASSERT_TRUE(session_.OnMessage(Desired(1)).ok());  // stale
  // A newer revision while 2 is still being reconciled: passed on; the reconciler takes the
  // newest when it is free.
  ASSERT_TRUE(session_.OnMessage(Desired(3)).ok());
  EXPECT_EQ(received_, (std::vector<int64_t>{2, 3}));
}

TEST_F(LinkSessionTest, AReconnectInTheMiddleOfAReconcileStillDeliversItsAck) {
  FakeOutbox first;
  ASSERT_TRUE(session_.Open(&first));
  ASSERT_TRUE(session_.OnMessage(Desired(4)).ok());
  first.Break();  // the stream dies while revision 4 is reconciled
  session_.Close();
  ReconcileReport report;
  report.revision = 4;
  report.took = absl::Milliseconds(1500);
  v1::TenantStatus tenant;
  tenant.set_name("acme");
  tenant.set_version(5);
  report.tenants.push_back(tenant);
  session_.Reconciled(report);

  FakeOutbox second;
  ASSERT_TRUE(session_.Open(&second));
  auto sent = second.Sent();
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].hello().applied_revision(), 4);
  ASSERT_TRUE(sent[1].has_ack());
  EXPECT_EQ(sent[1].ack().revision(), 4);
  EXPECT_EQ(sent[1].ack().tenants(0).name(), "acme");
  EXPECT_EQ(sent[1].ack().took().seconds(), 1);
  // The mothership sends revision 4 again after the reconnect: not reconciled twice.
  ASSERT_TRUE(session_.OnMessage(Desired(4)).ok());
  EXPECT_EQ(received_, std::vector<int64_t>{4});
  // And the report is not repeated on a later stream.
  FakeOutbox third;
  ASSERT_TRUE(session_.Open(&third));
  EXPECT_EQ(third.Sent().size(), 1u);
}

TEST_F(LinkSessionTest, ANackKeepsTheLastGoodRevision) {
  session_.SetAppliedRevision(2);
  FakeOutbox out;
  ASSERT_TRUE(session_.Open(&out));
  ReconcileReport report;
  report.revision = 3;
  report.status = absl::FailedPreconditionError("migration 4 (bad) failed");
  session_.Reconciled(report);
  auto sent = out.Sent();
  ASSERT_EQ(sent.size(), 2u);
  ASSERT_TRUE(sent[1].has_nack());
  EXPECT_EQ(sent[1].nack().revision(), 3);
  EXPECT_EQ(sent[1].nack().error(), "migration 4 (bad) failed");
  EXPECT_EQ(session_.applied_revision(), 2);
}

TEST_F(LinkSessionTest, HeartbeatsNeedAnOpenStream) {
  EXPECT_FALSE(session_.SendHeartbeat());
  FakeOutbox out;
  ASSERT_TRUE(session_.Open(&out));
  EXPECT_TRUE(session_.SendHeartbeat());
  session_.Close();
  EXPECT_FALSE(session_.SendHeartbeat());
  EXPECT_EQ(out.Sent().size(), 2u);
}

// Commands are handed on every time they arrive (the dispatcher dedupes them by id); a
// revision carries the apply command that stored it; updates need an open stream.
TEST_F(LinkSessionTest, CommandsAreHandedOnAndUpdatesGoOutOnTheOpenStream) {
  v1::MothershipMessage desired = Desired(4);
  desired.mutable_desired_state()->set_command_id("apply-4");
  ASSERT_TRUE(session_.OnMessage(desired).ok());
  EXPECT_EQ(command_ids_, (std::vector<std::string>{"apply-4"}));

  v1::MothershipMessage command;
  command.mutable_command()->set_id("c-1");
  command.mutable_command()->mutable_reprovision();
  ASSERT_TRUE(session_.OnMessage(command).ok());
  ASSERT_TRUE(session_.OnMessage(command).ok());
  EXPECT_EQ(commands_, (std::vector<std::string>{"c-1", "c-1"}));

  v1::CommandUpdate update;
  update.set_command_id("c-1");
  update.set_state(v1::COMMAND_STATE_RUNNING);
  update.add_progress("provisioning PostgreSQL again");
  EXPECT_FALSE(session_.SendCommandUpdate(update));  // no stream
  FakeOutbox out;
  ASSERT_TRUE(session_.Open(&out));
  EXPECT_TRUE(session_.SendCommandUpdate(update));
  auto sent = out.Sent();
  ASSERT_EQ(sent.size(), 2u);  // Hello, then the update
  EXPECT_EQ(sent[1].command_update().command_id(), "c-1");
  EXPECT_EQ(sent[1].command_update().progress(0), "provisioning PostgreSQL again");
  session_.Close();
  EXPECT_FALSE(session_.SendCommandUpdate(update));
}

}  // namespace
}  // namespace tether::agent
