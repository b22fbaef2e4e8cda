// AgentService adapter: Register (synchronous: one short transaction) and Connect (a callback
// reactor per agent stream, so twenty thousand idle streams cost no threads).
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"

#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/status.h"
#include "controlplane/api/services.h"
#include "tether/v1/agent_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

using common::ToGrpcStatus;

const absl::Status kStarting = absl::UnavailableError("mothership is starting; retry shortly");

std::string MetadataValue(const grpc::ServerContextBase* context, const std::string& key) {
  const auto& md = context->client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

std::string BearerToken(const grpc::ServerContextBase* context) {
  std::string value = MetadataValue(context, "authorization");
  constexpr char kBearer[] = "Bearer ";
  if (absl::StartsWith(value, kBearer)) return value.substr(sizeof(kBearer) - 1);
  return "";
}

// One agent's Connect stream. Owned by gRPC; deletes itself in OnDone. Reads run one at a time
// on gRPC's threads; writes are queued under mu_ and may be enqueued from any thread.
class ConnectReactor final
    : public grpc::ServerBidiReactor<v1::AgentMessage, v1::MothershipMessage>,
      public AgentStream {
 public:
  ConnectReactor(Backend* backend, grpc::CallbackServerContext* context)
      : backend_(backend), context_(context) {
    if (!backend_->ready.load()) {
      Finish(ToGrpcStatus(kStarting));
      return;
    }
    // Checking the credential reads the database: do it on the blocking pool. The reactor lives
    // until OnDone, which cannot come before the Finish that either branch below leads to.
    backend_->blocking->Submit([this, agent_id = MetadataValue(context, "x-tether-agent-id"),
                                credential = BearerToken(context)] {
      // This thread is not one of gRPC's reactions, so nothing keeps the reactor alive once it
      // has called Finish or started a read: that call must be the last thing it does here,
      // and no lock of ours may be held across it. Until then nothing else can touch the
      // reactor: it is in no registry and has no read or write in flight.
      auto identity = backend_->agents->Authenticate(agent_id, credential);
      if (!identity.ok()) {
        {
          absl::MutexLock lock(&mu_);
          finished_ = true;
        }
        Finish(ToGrpcStatus(identity.status()));
        return;
      }
      identity_ = *std::move(identity);
      StartRead(&in_);
    });
  }

  // Called from reactions (OnReadDone) or by StreamRegistry with its lock held; either way
  // OnDone, which deletes the reactor, cannot run until the caller is done with it (reactions
  // complete before OnDone, and OnDone takes the registry's lock to remove the stream).
  void Close(const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    finished_ = true;
    if (writing_) {
      // Finish waits for the write; cancelling unblocks a write stuck on flow control.
      finish_after_write_ = ToGrpcStatus(status);
      context_->TryCancel();
    } else {
      Finish(ToGrpcStatus(status));
    }
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the agent half-closed or the stream broke
      Close(absl::OkStatus());
      return;
    }
    absl::Status st = Handle(in_);
    if (!st.ok()) {
      Close(st);
      return;
    }
    absl::MutexLock lock(&mu_);
    if (!finished_) StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!out_.empty()) out_.pop_front();
    if (finish_after_write_.has_value()) {
      Finish(*finish_after_write_);
      finish_after_write_.reset();
      return;
    }
    if (!ok || finished_) return;
    WriteNextLocked();
  }

  void OnDone() override {
    if (handle_ != 0) {
      backend_->streams->Remove(identity_.id, handle_);
      spdlog::info("agent stream closed name={} id={}", identity_.name, identity_.id);
    }
    delete this;
  }

 private:
  absl::Status Handle(const v1::AgentMessage& msg) {
    if (handle_ == 0 && !msg.has_hello()) {
      return absl::FailedPreconditionError("the first message on a stream must be Hello");
    }
    switch (msg.kind_case()) {
      case v1::AgentMessage::kHello: {
        const v1::Hello& hello = msg.hello();
        if (hello.agent_id() != identity_.id || hello.incarnation() != identity_.incarnation) {
          return absl::FailedPreconditionError(absl::StrCat(
              "Hello is for agent ", hello.agent_id(), " incarnation ", hello.incarnation(),
              ", but the credential is of incarnation ", identity_.incarnation));
        }
        backend_->agents->RecordSeen(identity_, hello.status(), hello.applied_revision());
        if (handle_ == 0) {
          handle_ = backend_->streams->Add(identity_.id, identity_.incarnation, this);
          if (handle_ == 0) {
            return absl::UnauthenticatedError(absl::StrCat(
                "incarnation ", identity_.incarnation, " was superseded by a newer registration"));
          }
          spdlog::info("agent connected name={} id={} incarnation={}", identity_.name,
                       identity_.id, identity_.incarnation);
        }
        v1::MothershipMessage welcome;
        welcome.mutable_welcome()->set_agent_id(identity_.id);
        welcome.mutable_welcome()->set_incarnation(identity_.incarnation);
        *welcome.mutable_welcome()->mutable_heartbeat_ttl() =
            google::protobuf::util::TimeUtil::MillisecondsToDuration(
                absl::ToInt64Milliseconds(backend_->agents->heartbeat_ttl()));
        Send(std::move(welcome));
        return absl::OkStatus();
      }
      case v1::AgentMessage::kHeartbeat:
        backend_->agents->RecordSeen(identity_, msg.heartbeat().health(), std::nullopt);
        return absl::OkStatus();
      default:
        // Acks, nacks and command updates are handled once desired state and commands exist.
        return absl::OkStatus();
    }
  }

  void Send(v1::MothershipMessage msg) {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    out_.push_back(std::move(msg));
    if (!writing_) WriteNextLocked();
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (out_.empty()) return;
    writing_ = true;
    StartWrite(&out_.front());
  }

  Backend* backend_;
  grpc::CallbackServerContext* context_;
  AgentIdentity identity_;
  uint64_t handle_ = 0;  // set once Hello registered the stream
  v1::AgentMessage in_;
  absl::Mutex mu_;
  std::deque<v1::MothershipMessage> out_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> finish_after_write_ ABSL_GUARDED_BY(mu_);
};

class AgentServiceImpl final
    : public v1::AgentService::WithCallbackMethod_Connect<v1::AgentService::Service> {
 public:
  explicit AgentServiceImpl(Backend* backend) : backend_(backend) {}

  grpc::Status Register(grpc::ServerContext* context, const v1::RegisterRequest* request,
                        v1::RegisterResponse* response) override {
    if (!backend_->ready.load()) return ToGrpcStatus(kStarting);
    RegistrationRequest req;
    req.bootstrap_token = request->bootstrap_token();
    req.name = request->name();
    req.cluster = request->cluster();
    req.mode = request->mode();
    req.version = request->version();
    req.registration_id = request->registration_id();
    auto registration = backend_->agents->Register(req);
    if (!registration.ok()) {
      spdlog::warn("registration refused name={} peer={} reason=\"{}\"", request->name(),
                   context->peer(), registration.status().message());
      return ToGrpcStatus(registration.status());
    }
    response->set_agent_id(registration->agent_id);
    response->set_credential(registration->credential);
    response->set_incarnation(registration->incarnation);
    response->set_cluster(registration->cluster);
    return grpc::Status::OK;
  }

  grpc::ServerBidiReactor<v1::AgentMessage, v1::MothershipMessage>* Connect(
      grpc::CallbackServerContext* context) override {
    return new ConnectReactor(backend_, context);
  }

 private:
  Backend* backend_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeAgentService(Backend* backend) {
  return std::make_unique<AgentServiceImpl>(backend);
}

}  // namespace tether::controlplane
