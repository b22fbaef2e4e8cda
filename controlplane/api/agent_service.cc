// AgentService adapter: Register (synchronous: one short transaction) and Connect (a callback
// reactor per agent stream, so twenty thousand idle streams cost no threads; the protocol
// itself is controlplane/agents/session).
#include <google/protobuf/util/time_util.h>
#include <grpc/grpc.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"

#include <deque>
#include <optional>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/metadata.h"
#include "common/grpc/status.h"
#include "common/grpc/tls.h"
#include "common/text.h"
#include "controlplane/agents/session.h"
#include "controlplane/api/services.h"
#include "controlplane/events/event_log.h"
#include "tether/v1/agent_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

using common::BearerToken;
using common::MetadataValue;
using common::ToGrpcStatus;

const absl::Status kStarting = absl::UnavailableError("mothership is starting; retry shortly");

// A stream's messages read and waiting for the session: past this, reading pauses.
constexpr size_t kInboxLimit = 16;
// Messages one pool job hands over before the stream goes to the back of the pool's queue.
constexpr int kInboxTurn = 4;

// One agent's Connect stream, as transport only: it authenticates the stream, hands every
// message to an AgentSession and writes what the session sends. Messages go to the session in
// order, one at a time, on the blocking pool; heartbeats after the Hello go beside them on the
// heartbeat pool, so an agent whose Ack waits for the database is not thought silent. Owned by
// gRPC until OnDone; deleted by whichever comes last of OnDone and the end of a pool job that
// touches it (jobs_ counts those), so no thread ever uses a deleted reactor. All state is
// under mu_; gRPC calls (StartRead, StartWrite, Finish) are made with it held, which gRPC
// allows, and OnDone takes it before deciding to delete.
class ConnectReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::MothershipMessage>,
      public SessionOutbox {
 public:
  ConnectReactor(const AgentServiceDeps* deps, grpc::CallbackServerContext* context)
      : deps_(deps), context_(context), peer_(context->peer()) {
    if (!deps_->lifecycle->ready.load()) {
      Finish(ToGrpcStatus(kStarting));
      return;
    }
    // A fleet reconnecting at once is let in at the admission rate, the rest told when to return.
    if (deps_->admission != nullptr) {
      if (auto wait = deps_->admission->Admit(); wait.has_value()) {
        deps_->metrics->Deferred();
        const int64_t ms = absl::ToInt64Milliseconds(*wait) + 1;
        context->AddTrailingMetadata(common::kRetryAfterMetadata, absl::StrCat(ms));
        Finish(grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat("this mothership admits ", deps_->admission->rate(),
                         " new agent streams a second; come back in ", ms, " ms")));
        return;
      }
      deps_->metrics->Admitted();
    }
    // Checking the credential reads the database: do it on the blocking pool.
    jobs_ = 1;
    deps_->blocking->Submit([this, agent_id = MetadataValue(context, "x-tether-agent-id"),
                             credential = BearerToken(context),
                             certificate = common::PeerCertificateOf(*context).leaf] {
      auto identity = deps_->agents->Authenticate(agent_id, credential);
      // With TLS the certificate issued at registration must name the same agent.
      if (identity.ok() && deps_->certificates != nullptr) {
        if (auto st = deps_->certificates->Authenticate(certificate, *identity); !st.ok()) {
          spdlog::warn("agent stream refused agent={} peer={} reason=\"{}\"", identity->id, peer_,
                       absl::CHexEscape(st.message()));
          identity = st;
        }
      }
      bool last;
      {
        absl::MutexLock lock(&mu_);
        if (identity.ok()) {
          actor_ = Actor{absl::StrCat("agent:", identity->id), peer_};
          session_ = std::make_shared<AgentSession>(*std::move(identity), deps_->sessions,
                                                    deps_->streams, this, deps_->metrics);
          MaybeReadLocked();
        } else {
          CloseLocked(identity.status());
        }
        last = EndJobLocked();
      }
      if (last) delete this;
    });
  }

  // SessionOutbox: from the session, under its lock, on any thread.
  void Send(std::shared_ptr<const v1::MothershipMessage> message) override {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    // A peer that sends but does not read would otherwise grow this queue without end.
    if (out_.size() >= deps_->stream_queue_limit) {
      spdlog::warn("agent stream closed: it does not read what it is sent peer={} queued={}",
                   context_->peer(), out_.size());
      CloseLocked(absl::ResourceExhaustedError(absl::StrCat(
          "the agent does not read what the mothership sends: ", out_.size(),
          " messages wait unread; the stream is closed")));
      return;
    }
    out_.push_back(std::move(message));
    if (!writing_) WriteNextLocked();
  }

  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    CloseLocked(status);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    reading_ = false;
    if (!ok) {  // the agent half-closed or the stream broke (OnDone tells which)
      // What was read before is still handled, in order: an agent may send its last Ack and
      // then close. The last job to finish closes the stream.
      read_done_ = true;
      MaybeCloseReadDoneLocked();
      return;
    }
    if (closing_) return;
    if (welcomed_ && in_.has_heartbeat() && deps_->heartbeats != nullptr) {
      // A lane of its own: a heartbeat never waits behind this stream's Ack, whose database
      // work may queue behind a whole fleet's. Only the newest waiting one is kept.
      if (heartbeat_busy_) {
        waiting_heartbeat_ = std::move(in_);
      } else {
        heartbeat_busy_ = true;
        ++jobs_;
        deps_->heartbeats->Submit(
            [this, message = std::move(in_), actor = actor_] { HeartbeatJob(message, actor); });
      }
    } else {
      inbox_.push_back(std::move(in_));
      if (!inbox_busy_) {
        inbox_busy_ = true;
        ++jobs_;
        deps_->blocking->Submit([this, actor = actor_] { InboxJob(actor); });
      }
    }
    MaybeReadLocked();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!out_.empty()) out_.pop_front();
    if (!ok) CloseLocked(absl::UnavailableError("write failed"));
    if (closing_) {
      // Also when the stream was closed while this write was stuck: its Finish waited for us.
      MaybeFinishLocked();
      return;
    }
    WriteNextLocked();
  }

  // The call ended without both sides finishing it: a reset, a keepalive unanswered, the
  // agent cancelling.
  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
  }

  void OnDone() override {
    std::shared_ptr<AgentSession> session;
    std::string why;
    {
      absl::MutexLock lock(&mu_);
      session = session_;
      // Ours to say when we closed it; otherwise the agent ended it, or the connection went
      // (a reset, a keepalive unanswered).
      if (closing_ && !final_.ok()) {
        why = absl::StrCat(
            absl::StatusCodeToString(static_cast<absl::StatusCode>(final_.error_code())), ": ",
            final_.error_message());
      } else {
        why = cancelled_ || !closing_ ? "the connection was lost or cancelled"
                                      : "the agent closed it";
      }
    }
    // Before anything can be deleted: no registry or bus call may reach us after this.
    if (session != nullptr) session->Detach(why);
    bool last;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = jobs_ == 0;
    }
    if (last) delete this;
  }

 private:
  // Reads the next message unless one is being read, or the stream is closing, or — before
  // the Hello was handled — anything waits, or the inbox is full (the agent then waits on
  // HTTP/2 flow control until the inbox drains).
  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (reading_ || closing_ || read_done_) return;
    if (welcomed_ ? inbox_.size() >= kInboxLimit : (inbox_busy_ || !inbox_.empty())) return;
    reading_ = true;
    StartRead(&in_);
  }

  // Nothing more will be read, and nothing read waits to be handled: the stream ends.
  void MaybeCloseReadDoneLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (read_done_ && !inbox_busy_ && !heartbeat_busy_) CloseLocked(absl::OkStatus());
  }

  // Hands the inbox's messages to the session one at a time, in the order they came; after a
  // few it yields its thread to the other streams' jobs and queues itself again.
  void InboxJob(const Actor& actor) {
    ScopedActor scoped(actor);  // what it records is the agent's doing
    for (int handled = 0;; ++handled) {
      v1::AgentMessage message;
      {
        absl::MutexLock lock(&mu_);
        if (closing_ || inbox_.empty()) {
          inbox_busy_ = false;
          MaybeCloseReadDoneLocked();
          break;
        }
        if (handled == kInboxTurn) {
          ++jobs_;
          deps_->blocking->Submit([this, actor] { InboxJob(actor); });
          break;
        }
        message = std::move(inbox_.front());
        inbox_.pop_front();
      }
      // The session runs outside our lock: it calls Send/Close, which take it. session_ was
      // set before the first read and never changes.
      absl::Status st = SessionForJob()->OnMessage(message);
      absl::MutexLock lock(&mu_);
      if (!st.ok()) CloseLocked(st);
      welcomed_ = welcomed_ || st.ok();  // the first message is the Hello
      MaybeReadLocked();
    }
    EndJob();
  }

  // Hands heartbeats to the session beside the inbox's messages (AgentSession allows that).
  void HeartbeatJob(v1::AgentMessage message, const Actor& actor) {
    ScopedActor scoped(actor);
    for (;;) {
      absl::Status st = SessionForJob()->OnMessage(message);
      absl::MutexLock lock(&mu_);
      if (!st.ok()) CloseLocked(st);
      if (closing_ || !waiting_heartbeat_.has_value()) {
        heartbeat_busy_ = false;
        MaybeCloseReadDoneLocked();
        break;
      }
      message = *std::move(waiting_heartbeat_);
      waiting_heartbeat_.reset();
    }
    EndJob();
  }

  void EndJob() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = EndJobLocked();
    }
    if (last) delete this;
  }

  void CloseLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closing_) return;
    closing_ = true;
    final_ = ToGrpcStatus(status);
    // Cancelling unblocks a write stuck on flow control (a peer that does not read); Finish
    // follows its OnWriteDone. Cancelled with the status itself, which goes out ahead of the
    // stuck message, so the peer learns why rather than a bare CANCELLED.
    if (writing_) {
      grpc_call_cancel_with_status(context_->c_call(),
                                   static_cast<grpc_status_code>(final_.error_code()),
                                   final_.error_message().c_str(), nullptr);
    }
    MaybeFinishLocked();
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!closing_ || writing_ || finished_) return;
    finished_ = true;
    Finish(final_);
  }

  // Ends a pool job. True when gRPC is done with the reactor and no other job runs: the
  // caller deletes it then, after releasing mu_, as its very last act.
  bool EndJobLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    --jobs_;
    return done_ && jobs_ == 0;
  }

  AgentSession* SessionForJob() ABSL_NO_THREAD_SAFETY_ANALYSIS { return session_.get(); }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (out_.empty()) return;
    writing_ = true;
    StartWrite(out_.front().get());
  }

  const AgentServiceDeps* deps_;
  grpc::CallbackServerContext* context_;
  const std::string peer_;
  v1::AgentMessage in_;
  absl::Mutex mu_;
  std::shared_ptr<AgentSession> session_ ABSL_GUARDED_BY(mu_);
  Actor actor_ ABSL_GUARDED_BY(mu_);  // the authenticated agent, for the events it causes
  std::deque<std::shared_ptr<const v1::MothershipMessage>> out_ ABSL_GUARDED_BY(mu_);
  // Read and not yet handled: in order, on the blocking pool, one job at a time.
  std::deque<v1::AgentMessage> inbox_ ABSL_GUARDED_BY(mu_);
  bool inbox_busy_ ABSL_GUARDED_BY(mu_) = false;
  // Heartbeats after the Hello: on the heartbeat pool, the newest one waiting.
  std::optional<v1::AgentMessage> waiting_heartbeat_ ABSL_GUARDED_BY(mu_);
  bool heartbeat_busy_ ABSL_GUARDED_BY(mu_) = false;
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;  // the Hello was handled
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;  // the last read failed: nothing more comes
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int jobs_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
};

class AgentServiceImpl final
    : public v1::AgentService::WithCallbackMethod_Connect<v1::AgentService::Service> {
 public:
  explicit AgentServiceImpl(const AgentServiceDeps* deps) : deps_(deps) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override {
    if (!deps_->lifecycle->ready.load()) return ToGrpcStatus(kStarting);
    RegistrationRequest req;
    req.bootstrap_token = request->bootstrap_token();
    req.name = request->name();
    req.cluster = request->cluster();
    req.mode = request->mode();
    req.version = request->version();
    req.registration_id = request->registration_id();
    ScopedActor from(Actor{"", context->peer()});  // the agent is named once registered
    // With TLS the agent gets a certificate for its key: a request that could not be signed is
    // refused before anything is recorded.
    absl::StatusOr<Registration> registration = absl::UnknownError("not registered");
    if (absl::Status csr = deps_->certificates != nullptr
                               ? AgentCertificates::CheckRequest(request->csr())
                               : absl::OkStatus();
        !csr.ok()) {
      registration = csr;
    } else {
      registration = deps_->agents->Register(req);
    }
    if (!registration.ok()) {
      // The name is the client's: escaped and cut, so it can neither forge a log line nor
      // flood the log.
      spdlog::warn("registration refused name=\"{}\" peer={} reason=\"{}\"",
                   absl::CHexEscape(common::CutText(request->name(), 80)), context->peer(),
                   absl::CHexEscape(registration.status().message()));
      deps_->metrics->Registration("refused");
      return ToGrpcStatus(registration.status());
    }
    deps_->metrics->Registration(registration->incarnation > 1 ? "reregistered" : "registered");
    response->set_agent_id(registration->agent_id);
    response->set_credential(registration->credential);
    response->set_incarnation(registration->incarnation);
    response->set_cluster(registration->cluster);
    if (deps_->certificates != nullptr) {
      // Signing cannot fail for a request CheckRequest passed but for a broken CA; the agent
      // retries with the same registration id and is answered again.
      auto certificate = deps_->certificates->Issue(
          request->csr(), AgentIdentity{registration->agent_id, request->name(),
                                        registration->cluster, registration->incarnation});
      if (!certificate.ok()) return ToGrpcStatus(certificate.status());
      response->set_certificate(*certificate);
      response->set_ca_certificate(deps_->certificates->ca_pem());
    }
    return grpc::Status::OK;
  }

  grpc::ServerBidiReactor<v1::AgentMessage, v1::MothershipMessage>* Connect(
      grpc::CallbackServerContext* context) override {
    return new ConnectReactor(deps_, context);
  }

 private:
  const AgentServiceDeps* deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeAgentService(const AgentServiceDeps* deps) {
  return std::make_unique<AgentServiceImpl>(deps);
}

}  // namespace tether::controlplane
