// Fuzzes the agent's LinkSession: what a mothership (or something in its place) sends, with
// the agent's own events between (streams opening, breaking and closing, heartbeats, the end
// of a reconcile, command updates), over the fake outbox of the unit tests. Each desired state
// handed on goes where the agent sends it: the spec's rules, its migrations, and a reconcile
// plan against a fixed observed state. The input is a script, one step a line:
//   recv MSG          the mothership sends MSG, a MothershipMessage in Protobuf text format
//   open | open_broken  a stream opens (one whose sends fail)
//   break | close     the open stream breaks (its sends fail) | ends
//   heartbeat         the heartbeat thread sends one
//   ack N | nack N    a reconcile of revision N ended, well or not
//   update MSG        a command's update, a CommandUpdate in text format
//   applied N         the agent's records say it acked N (at start-up)
//
// Checked, as session.h promises: revisions are handed on once each and only ever upwards; a
// Welcome for another identity is refused, one for this agent welcomes the stream until it
// closes; a stream opens with a Hello of this agent and its applied revision, followed by the
// last reconcile's report if no stream carried it; an Ack moves the applied revision, a Nack
// does not; nothing is sent without an open stream. A spec handed on that passes its rules
// has parseable migrations and a plan with one action per tenant, none beyond the target.
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent/link/session.h"
#include "agent/reconcile/plan.h"
#include "common/pg/sql_split.h"
#include "common/spec/commands.h"
#include "common/spec/spec.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_outbox.h"

namespace tether::fuzz {
namespace {

const agent::Identity kIdentity{"id-1", "credential", 3, "web-1", "shop"};

// What the agent does with a desired state before it touches PostgreSQL.
void Consider(const v1::ClusterSpec& received) {
  // Files whose sha256 does not match are refused; set them right to reach what follows.
  v1::ClusterSpec spec = received;
  for (auto& f : *spec.mutable_migrations()->mutable_files()) {
    f.set_sha256(common::FileSha256(f.contents()));
  }
  for (auto& h : *spec.mutable_hooks()) {
    h.mutable_file()->set_sha256(common::FileSha256(h.file().contents()));
  }
  if (!common::ValidateSpec(spec).ok()) return;
  auto migrations = common::SpecMigrations(spec);
  Require(migrations.ok(), "a valid spec's migrations do not parse");
  const int64_t target = migrations->empty() ? 0 : migrations->back().version;
  for (const auto& m : *migrations) {
    if (!m.transactional) (void)common::SplitSqlStatements(m.up_sql);
  }
  agent::ObservedState observed;
  observed.tenants["acme"] = {true, true, v1::TENANT_STATE_READY, 1, false};
  observed.tenants["legacy"] = {true, true, v1::TENANT_STATE_READY, target, false};
  const agent::Plan plan = agent::PlanReconcile(spec, target, observed);
  std::set<std::string> tenants;
  for (const auto& t : spec.tenants()) tenants.insert(t.name());
  std::set<std::string> planned;
  for (const agent::Action& a : plan.actions) {
    Require(planned.insert(a.tenant).second, "two actions for one tenant");
    Require(tenants.count(a.tenant) != 0 || observed.tenants.count(a.tenant) != 0,
            "an action for a tenant nobody knows");
    Require(a.to_version <= target, "an action beyond the target version");
  }
}

class Harness {
 public:
  Harness()
      : session_(kIdentity, "1.0", &health_, &clock_,
                 agent::LinkSession::Callbacks{
                     [this](int64_t revision, const v1::ClusterSpec& spec, const std::string&) {
                       Require(revision > newest_handed_on_,
                               "a revision handed on twice or backwards");
                       newest_handed_on_ = revision;
                       Consider(spec);
                     },
                     [](const v1::Command& command) { (void)common::CommandKind(command); }}) {}

  void Step(const ScriptStep& step) {
    if (step.op == "recv") {
      v1::MothershipMessage message;
      if (ParseText(step.arg, &message)) Receive(message);
    } else if (step.op == "open" || step.op == "open_broken") {
      Open(step.op == "open_broken");
    } else if (step.op == "break") {
      if (outbox_ != nullptr) outbox_->Break();
      broken_ = true;
    } else if (step.op == "close") {
      session_.Close();
      open_ = false;
      welcomed_ = false;
    } else if (step.op == "heartbeat") {
      const size_t before = Sent();
      const bool sent = session_.SendHeartbeat();
      Require(sent == (open_ && !broken_),
              "a heartbeat went out without a stream, or not with one");
      if (sent) Require(outbox_->Sent().back().has_heartbeat(), "the heartbeat was not sent");
      Require(Sent() == before + (sent ? 1 : 0), "a heartbeat sent the wrong number of messages");
    } else if (step.op == "ack" || step.op == "nack") {
      Reconciled(IntArg(step.arg), step.op == "ack");
    } else if (step.op == "update") {
      v1::CommandUpdate update;
      if (!ParseText(step.arg, &update)) return;
      const bool sent = session_.SendCommandUpdate(update);
      Require(sent == (open_ && !broken_), "an update went out without a stream, or not with one");
    } else if (step.op == "applied") {
      applied_ = IntArg(step.arg);
      session_.SetAppliedRevision(applied_);
    }
    Require(session_.welcomed() == welcomed_, "welcomed() does not say what happened");
    Require(session_.applied_revision() == applied_, "the applied revision went astray");
  }

 private:
  size_t Sent() { return outbox_ == nullptr ? 0 : outbox_->Sent().size(); }

  void Open(bool broken) {
    outboxes_.push_back(std::make_unique<testing::FakeOutbox>());
    outbox_ = outboxes_.back().get();
    if (broken) outbox_->Break();
    broken_ = broken;
    open_ = true;
    welcomed_ = false;
    const bool ok = session_.Open(outbox_);
    Require(ok == !broken, "Open does not say whether the Hello went out");
    if (broken) return;
    const std::vector<v1::AgentMessage> sent = outbox_->Sent();
    Require(!sent.empty() && sent[0].has_hello(), "a stream did not open with Hello");
    const v1::Hello& hello = sent[0].hello();
    Require(hello.agent_id() == kIdentity.agent_id && hello.incarnation() == kIdentity.incarnation,
            "a Hello for another identity");
    Require(hello.applied_revision() == applied_, "a Hello with the wrong applied revision");
    if (report_unsent_) {
      Require(sent.size() == 2 && (sent[1].has_ack() || sent[1].has_nack()),
              "the unsent report did not follow the Hello");
      const int64_t revision =
          sent[1].has_ack() ? sent[1].ack().revision() : sent[1].nack().revision();
      Require(revision == report_revision_, "the report sent is not the last one");
      report_unsent_ = false;
    } else {
      Require(sent.size() == 1, "a stream opened with more than a Hello");
    }
  }

  void Receive(const v1::MothershipMessage& message) {
    const absl::Status st = session_.OnMessage(message);
    if (message.has_welcome()) {
      const bool ours = message.welcome().agent_id() == kIdentity.agent_id &&
                        message.welcome().incarnation() == kIdentity.incarnation;
      Require(st.ok() == ours, "a Welcome was judged wrongly");
      // A Welcome welcomes whatever stream it arrives on; the link only feeds an open one.
      if (ours) welcomed_ = true;
    } else {
      Require(st.ok(), "a message other than a Welcome was refused");
    }
  }

  void Reconciled(int64_t revision, bool ok) {
    agent::ReconcileReport report;
    report.revision = revision;
    if (!ok) report.status = absl::FailedPreconditionError("migration 0002_add failed");
    report.took = absl::Milliseconds(1500);
    const size_t before = Sent();
    session_.Reconciled(report);
    if (ok) applied_ = revision;
    report_revision_ = revision;
    report_unsent_ = !(open_ && !broken_);
    Require(Sent() == before + (report_unsent_ ? 0 : 1), "the report was not sent at once");
  }

  agent::HealthState health_;
  testing::FakeClock clock_;
  agent::LinkSession session_;
  std::vector<std::unique_ptr<testing::FakeOutbox>> outboxes_;
  testing::FakeOutbox* outbox_ = nullptr;
  bool open_ = false;
  bool broken_ = false;
  bool welcomed_ = false;
  int64_t applied_ = 0;
  int64_t newest_handed_on_ = 0;
  int64_t report_revision_ = 0;
  bool report_unsent_ = false;
};

}  // namespace
}  // namespace tether::fuzz

void tether::fuzz::Setup() {}

bool tether::fuzz::FuzzOne(std::string_view input) {
  Harness harness;
  for (const auto& step : ParseScript(input)) harness.Step(step);
  return true;
}
