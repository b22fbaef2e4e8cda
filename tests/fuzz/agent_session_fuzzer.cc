// Fuzzes the mothership's AgentSession: what an agent sends on its streams, interleaved with
// what happens around them (new revisions, queued commands, re-registration, deletion), over
// the fake backend and outbox of the unit tests and a real StreamRegistry on an in-process
// ChangeBus. The input is a script, one step a line:
//   recv MSG      the agent sends MSG, an AgentMessage in Protobuf text format, on its newest
//                 stream (one is opened if it has none)
//   open          the agent opens another stream; the older ones stay until they are closed
//   latest N      the cluster's spec reaches revision N (published on the bus)
//   command N     command N is queued for the agent (published on the bus)
//   supersede N   the agent re-registered as incarnation N (published on the bus)
//   delete        the agent was deleted (published on the bus)
//   leader CODE   the backend answers RecordLeader with this status code from now on
// A stream ends, as the reactor ends it, when the session refuses a message or closes it.
//
// Checked after every step, as session.h promises: a stream sends nothing before its Hello is
// accepted, then a Welcome for this agent; the revisions it sends after a Welcome rise, are
// never the one the agent has and exist; commands it sends are the agent's; the first message
// must be a Hello, and one in another agent's name (PERMISSION_DENIED), for another incarnation
// or from a superseded one is refused; an impossible ack or update ends the stream; health is
// bounded before it is kept; each newer leader epoch is recorded once; a certificate goes out
// only as the answer to a request; an ended stream sends nothing more and leaves the registry.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "controlplane/agents/session.h"
#include "controlplane/agents/stream_registry.h"
#include "controlplane/fanout/change_bus.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/testing/fake_session_backend.h"

namespace tether::fuzz {
namespace {

using controlplane::AgentIdentity;
using controlplane::AgentSession;
using controlplane::Change;

const AgentIdentity kAgent{"id-1", "web-1", "shop", 2};
constexpr int64_t kMaxEpoch = int64_t{1} << 53;

struct Stream {
  std::unique_ptr<testing::FakeSessionOutbox> outbox;
  std::shared_ptr<AgentSession> session;
  bool welcomed = false;      // its Hello was accepted
  bool ended = false;         // refused a message or was closed, and detached
  int64_t agent_revision = 0;  // what the agent said it has (Hello, acks)
  int64_t sent_revision = 0;   // the newest revision sent since the last Welcome
  size_t checked = 0;          // messages of the outbox already checked
  int64_t leader_epoch = 0;    // the newest epoch recorded from this stream
  bool not_pro = false;        // RecordLeader said the agent is not in pro mode
};

class Harness {
 public:
  Harness() : streams_(&bus_) {}
  ~Harness() {
    for (auto& s : all_) End(*s);
    Require(!streams_.IsConnected(kAgent.id) && streams_.size() == 0,
            "a stream is registered after every stream ended");
  }

  void Step(const ScriptStep& step) {
    if (step.op == "recv") {
      v1::AgentMessage message;
      if (ParseText(step.arg, &message)) Receive(message);
    } else if (step.op == "open") {
      Open();
    } else if (step.op == "latest") {
      const int64_t revision = std::max<int64_t>(0, IntArg(step.arg));
      backend_.SetLatest(revision);
      latest_ = revision;
      bus_.Publish(Change{Change::Kind::kRevision, kAgent.cluster, "", revision});
    } else if (step.op == "command") {
      const int64_t id = IntArg(step.arg);
      v1::Command command;
      command.set_id(std::to_string(id));
      command.set_revision(latest_);
      command.mutable_migrate()->set_tenant("acme");
      {
        absl::MutexLock lock(&backend_.mu_);
        backend_.commands.push_back(command);
      }
      bus_.Publish(Change{Change::Kind::kCommand, kAgent.cluster, kAgent.id, id});
    } else if (step.op == "supersede") {
      const int64_t incarnation = IntArg(step.arg);
      newest_incarnation_ = std::max(newest_incarnation_, incarnation);
      bus_.Publish(Change{Change::Kind::kIncarnation, kAgent.cluster, kAgent.id, incarnation});
    } else if (step.op == "delete") {
      newest_incarnation_ = 0;
      bus_.Publish(Change{Change::Kind::kAgentDeleted, kAgent.cluster, kAgent.id, 0});
    } else if (step.op == "leader") {
      const auto code = static_cast<absl::StatusCode>(IntArg(step.arg) & 0xf);
      leader_answer_ = absl::Status(code, code == absl::StatusCode::kOk ? "" : "fuzz");
      absl::MutexLock lock(&backend_.mu_);
      backend_.leader_answer = leader_answer_;
    }
    CheckAll();
  }

 private:
  Stream& Open() {
    auto stream = std::make_unique<Stream>();
    stream->outbox = std::make_unique<testing::FakeSessionOutbox>();
    stream->session = std::make_shared<AgentSession>(kAgent, &backend_, &streams_,
                                                     stream->outbox.get());
    all_.push_back(std::move(stream));
    return *all_.back();
  }

  Stream& Newest() {
    if (all_.empty() || all_.back()->ended) return Open();
    return *all_.back();
  }

  void End(Stream& s) {
    if (s.ended) return;
    s.session->Detach();
    s.ended = true;
  }

  void Receive(const v1::AgentMessage& message) {
    Stream& s = Newest();
    const size_t leader_calls_before = LeaderEpochs().size();
    const absl::Status st = s.session->OnMessage(message);
    const absl::StatusCode code = st.code();
    CheckLeaderCalls(s, leader_calls_before);
    if (!s.welcomed && !message.has_hello()) {
      Require(code == absl::StatusCode::kFailedPrecondition, "a stream began without Hello");
    }
    switch (message.kind_case()) {
      case v1::AgentMessage::kHello: {
        const v1::Hello& hello = message.hello();
        if (hello.agent_id() != kAgent.id) {
          Require(code == absl::StatusCode::kPermissionDenied,
                  "a Hello in another agent's name was not refused");
        } else if (hello.incarnation() != kAgent.incarnation) {
          Require(code == absl::StatusCode::kFailedPrecondition,
                  "a Hello for another incarnation was not refused");
        } else if (hello.applied_revision() < 0) {
          Require(code == absl::StatusCode::kInvalidArgument,
                  "a Hello with a negative revision was not refused");
        } else if (!s.welcomed && newest_incarnation_ > kAgent.incarnation) {
          Require(code == absl::StatusCode::kUnauthenticated,
                  "a superseded incarnation was let in");
        } else {
          Require(code == absl::StatusCode::kOk, "a good Hello was refused");
          Require(streams_.IsConnected(kAgent.id), "an accepted Hello left no stream registered");
          newest_incarnation_ = std::max(newest_incarnation_, kAgent.incarnation);
          s.welcomed = true;
          s.agent_revision = hello.applied_revision();
          s.sent_revision = 0;
        }
        break;
      }
      case v1::AgentMessage::kAck:
        if (!s.welcomed) break;
        if (message.ack().revision() > latest_) {
          Require(code == absl::StatusCode::kInvalidArgument, "an impossible ack was taken");
        } else {
          Require(code == absl::StatusCode::kOk, "an ack was refused");
          s.agent_revision = std::max(s.agent_revision, message.ack().revision());
        }
        break;
      case v1::AgentMessage::kCommandUpdate:
        if (!s.welcomed) break;
        Require(code == (message.command_update().state() == v1::COMMAND_STATE_UNSPECIFIED
                             ? absl::StatusCode::kInvalidArgument
                             : absl::StatusCode::kOk),
                "a command update was judged wrongly");
        break;
      default:
        if (s.welcomed) Require(code == absl::StatusCode::kOk, "a message was refused");
        break;
    }
    if (!st.ok()) End(s);
  }

  std::vector<int64_t> LeaderEpochs() {
    absl::MutexLock lock(&backend_.mu_);
    return backend_.leader_epochs;
  }

  void CheckAll() {
    for (auto& s : all_) {
      CheckSent(*s);
      // The reactor ends a stream the session closed.
      if (!s->ended && !s->outbox->closed.empty()) End(*s);
    }
    CheckHealth();
  }

  void CheckSent(Stream& s) {
    const std::vector<v1::MothershipMessage>& sent = s.outbox->sent;
    if (s.ended) Require(sent.size() == s.checked, "an ended stream sent a message");
    for (; s.checked < sent.size(); ++s.checked) {
      const v1::MothershipMessage& m = sent[s.checked];
      Require(s.welcomed, "a stream sent something before its Hello was accepted");
      switch (m.kind_case()) {
        case v1::MothershipMessage::kWelcome:
          Require(m.welcome().agent_id() == kAgent.id &&
                      m.welcome().incarnation() == kAgent.incarnation,
                  "a Welcome for another identity");
          Require(m.welcome().heartbeat_ttl().seconds() == 15, "a Welcome without the TTL");
          break;
        case v1::MothershipMessage::kDesiredState: {
          const int64_t revision = m.desired_state().revision();
          Require(revision > s.sent_revision, "a revision sent twice, or an older one");
          Require(revision != s.agent_revision, "the revision the agent has was sent");
          Require(revision <= latest_, "a revision the cluster does not have was sent");
          s.sent_revision = revision;
          break;
        }
        case v1::MothershipMessage::kCommand: {
          absl::MutexLock lock(&backend_.mu_);
          bool known = false;
          for (const auto& c : backend_.commands) known = known || c.id() == m.command().id();
          Require(known, "a command the agent does not have was sent");
          break;
        }
        case v1::MothershipMessage::kCertificate:
          // The fake backend signs by echoing: only ever what this agent asked for.
          Require(absl::StartsWith(m.certificate().certificate(), "certificate for "),
                  "a certificate nobody asked for was sent");
          break;
        default:
          Require(false, "an empty message was sent");
      }
    }
  }

  void CheckHealth() {
    absl::MutexLock lock(&backend_.mu_);
    for (; health_checked_ < backend_.seen.size(); ++health_checked_) {
      const v1::Health& h = backend_.seen[health_checked_];
      Require(h.reason().size() <= 1024 + 32, "an unbounded reason was kept");
      Require(h.postgres_version().size() <= 64 + 32, "an unbounded version was kept");
      Require(h.provisioner().size() <= 32 + 32, "an unbounded provisioner was kept");
      Require(v1::ProvisioningState_IsValid(h.state()), "an unknown state was kept");
      Require(v1::AgentRole_IsValid(h.role()), "an unknown role was kept");
      Require(h.attempt() >= 0, "a negative attempt was kept");
      Require(h.epoch() >= 0 && h.epoch() <= kMaxEpoch, "an impossible epoch was kept");
      Require(h.select1_latency().seconds() >= 0 && h.select1_latency().nanos() >= 0 &&
                  h.select1_latency().seconds() <= 3600,
              "an impossible latency was kept");
    }
  }

  // Each newer epoch is recorded once: a call names an epoch above the last one recorded (the
  // same one again only after a failure), and none follows "not in pro mode", after which the
  // agent's health is kept without a role.
  void CheckLeaderCalls(Stream& s, size_t calls_before) {
    const std::vector<int64_t> epochs = LeaderEpochs();
    for (size_t i = calls_before; i < epochs.size(); ++i) {
      Require(!s.not_pro, "a leader was recorded for an agent not in pro mode");
      Require(epochs[i] > s.leader_epoch && epochs[i] <= kMaxEpoch,
              "a leader epoch was recorded twice, out of order or out of range");
      if (leader_answer_.ok()) s.leader_epoch = epochs[i];
      if (absl::IsFailedPrecondition(leader_answer_)) s.not_pro = true;
    }
    absl::MutexLock lock(&backend_.mu_);
    if (s.not_pro && backend_.seen.size() > health_checked_) {
      const v1::Health& h = backend_.seen.back();
      Require(h.role() == v1::AGENT_ROLE_UNSPECIFIED && h.epoch() == 0,
              "an agent not in pro mode is shown with a role");
    }
  }

  testing::FakeSessionBackend backend_;
  controlplane::InProcessChangeBus bus_;
  controlplane::StreamRegistry streams_;
  std::vector<std::unique_ptr<Stream>> all_;
  int64_t latest_ = 0;
  int64_t newest_incarnation_ = 0;
  absl::Status leader_answer_;
  size_t health_checked_ = 0;
};

}  // namespace
}  // namespace tether::fuzz

void tether::fuzz::Setup() {}

bool tether::fuzz::FuzzOne(std::string_view input) {
  Harness harness;
  for (const auto& step : ParseScript(input)) harness.Step(step);
  return true;
}
