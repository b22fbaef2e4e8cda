// MothershipLink: registration, the stream loop, heartbeats.
#include "agent/link/mothership_link.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "agent/metrics.h"
#include "common/logging.h"

#include <thread>

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/grpc/metadata.h"
#include "common/secrets.h"
#include "common/grpc/status.h"

namespace tether::agent {
namespace {

// A refusal that retrying cannot fix.
bool IsPermanent(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAUTHENTICATED || code == grpc::StatusCode::PERMISSION_DENIED ||
         code == grpc::StatusCode::INVALID_ARGUMENT ||
         code == grpc::StatusCode::FAILED_PRECONDITION || code == grpc::StatusCode::UNIMPLEMENTED;
}

}  // namespace

MothershipLink::MothershipLink(LinkOptions options, std::shared_ptr<grpc::Channel> channel,
                               HealthState* health, common::Clock* clock, common::Random* random)
    : options_(std::move(options)),
      stub_(v1::AgentService::NewStub(channel)),
      health_(health),
      clock_(clock),
      random_(random) {}

bool MothershipLink::connected() const {
  absl::MutexLock lock(&mu_);
  return connected_;
}

std::optional<Identity> MothershipLink::identity() const {
  absl::MutexLock lock(&mu_);
  return identity_;
}

void MothershipLink::Cancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  if (stream_context_ != nullptr) stream_context_->TryCancel();
}

absl::StatusOr<Identity> MothershipLink::Register(const absl::Notification* stop) {
  if (options_.bootstrap_token.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no identity in ", options_.data_dir, " and no --bootstrap-token to register with"));
  }
  // The registration's id outlives a crash before the answer is stored, so the retry after a
  // restart is recognised as the same registration.
  const std::string pending = options_.data_dir + "/registration.pending";
  std::string registration_id;
  if (auto saved = common::ReadFile(pending); saved.ok()) {
    registration_id = std::string(absl::StripAsciiWhitespace(*saved));
  } else {
    registration_id = common::RandomHex(16);
    if (auto st = common::WriteFileAtomically(pending, registration_id + "\n", 0600); !st.ok()) {
      return st;
    }
  }
  common::Backoff backoff(options_.backoff, random_);
  v1::RegisterRequest request;
  request.set_registration_id(registration_id);
  request.set_bootstrap_token(options_.bootstrap_token);
  request.set_name(options_.name);
  request.set_cluster(options_.cluster);
  request.set_mode(options_.mode);
  request.set_version(options_.version);
  if (options_.certificate != nullptr) {
    auto csr = options_.certificate->Request(options_.name);
    if (!csr.ok()) return csr.status();
    request.set_csr(*csr);
  }
  for (;;) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
    v1::RegisterResponse response;
    grpc::Status status = stub_->Register(&context, request, &response);
    if (status.ok()) {
      // The certificate first: an identity without it would register again anyway.
      if (options_.certificate != nullptr) {
        if (response.certificate().empty()) {
          return absl::FailedPreconditionError(
              "the mothership issued no client certificate: it serves without TLS-issued agent "
              "certificates, but this agent was started with --tls-ca");
        }
        if (auto st = options_.certificate->Store(response.certificate()); !st.ok()) return st;
      }
      Identity id{response.agent_id(), response.credential(), response.incarnation(),
                  options_.name, response.cluster()};
      if (auto st = SaveIdentity(options_.data_dir, id); !st.ok()) return st;
      std::remove(pending.c_str());
      spdlog::info("registered name={} id={} cluster={} incarnation={}", id.name, id.agent_id,
                   id.cluster, id.incarnation);
      return id;
    }
    // FAILED_PRECONDITION (the name's agent is still connected, or belongs to another cluster)
    // clears when the old stream ends or an operator acts: keep asking.
    if (IsPermanent(status.error_code()) &&
        status.error_code() != grpc::StatusCode::FAILED_PRECONDITION) {
      const absl::Status refused = common::FromGrpcStatus(status);
      return absl::Status(refused.code(), absl::StrCat("registration refused: ", refused.message()));
    }
    const absl::Duration delay = backoff.Next();
    spdlog::warn("cannot register yet retry_in={} reason=\"{}\"", absl::FormatDuration(delay),
                 status.error_message());
    if (!clock_->SleepFor(delay, stop)) return absl::CancelledError("stopped");
  }
}

void MothershipLink::Reconciled(const ReconcileReport& report) {
  std::shared_ptr<LinkSession> session;
  {
    absl::MutexLock lock(&mu_);
    if (report.status.ok()) applied_revision_ = report.revision;
    session = session_;
    if (session == nullptr) unsent_report_ = report;
  }
  if (session != nullptr) session->Reconciled(report);
}

bool MothershipLink::SendCommandUpdate(const v1::CommandUpdate& update) {
  std::shared_ptr<LinkSession> session;
  {
    absl::MutexLock lock(&mu_);
    session = session_;
  }
  return session != nullptr && session->SendCommandUpdate(update);
}

absl::Duration MothershipLink::last_retry_hint() const {
  absl::MutexLock lock(&mu_);
  return retry_hint_;
}

bool MothershipLink::SendHealthNow() {
  std::shared_ptr<LinkSession> session;
  {
    absl::MutexLock lock(&mu_);
    session = session_;
  }
  return session != nullptr && session->SendHeartbeat();
}

void MothershipLink::SetAppliedRevision(int64_t revision) {
  std::shared_ptr<LinkSession> session;
  {
    absl::MutexLock lock(&mu_);
    applied_revision_ = revision;
    session = session_;
  }
  if (session != nullptr) session->SetAppliedRevision(revision);
}

absl::Status MothershipLink::Run(const absl::Notification* stop) {
  std::optional<Identity> id;
  if (auto loaded = LoadIdentity(options_.data_dir); loaded.ok()) {
    if (loaded->name == options_.name) {
      id = *loaded;
      spdlog::info("identity loaded id={} incarnation={}", id->agent_id, id->incarnation);
    } else {
      spdlog::warn("identity in {} is for agent {}, not {}; registering anew", options_.data_dir,
                   loaded->name, options_.name);
    }
  } else if (!absl::IsNotFound(loaded.status())) {
    spdlog::warn("ignoring unreadable identity reason=\"{}\"", loaded.status().message());
  }
  common::Backoff backoff(options_.backoff, random_);
  std::shared_ptr<LinkSession> session;
  bool registered_now = false;  // this turn of the loop registered
  while (!stop->HasBeenNotified()) {
    if (!id.has_value()) {
      auto registered = Register(stop);
      if (absl::IsCancelled(registered.status())) return absl::OkStatus();
      if (!registered.ok()) return registered.status();
      id = *registered;
      session.reset();
      registered_now = true;
    } else {
      registered_now = false;
    }
    if (options_.certificate != nullptr && !UseCurrentCertificate()) {
      if (registered_now) {
        // A certificate issued a moment ago that this machine already holds expired: its
        // clock is ahead of the mothership's by more than a certificate lasts.
        return absl::FailedPreconditionError(
            "the certificate the mothership just issued has already expired by this machine's "
            "clock: set the clock right");
      }
      id.reset();  // registering again is the way to a new certificate
      continue;
    }
    if (session == nullptr) {
      auto on_certificate = [this](const v1::IssuedCertificate& issued) {
        if (auto st = options_.certificate->Store(issued.certificate()); !st.ok()) {
          spdlog::warn("cannot keep the renewed certificate reason=\"{}\"", st.message());
          return;
        }
        spdlog::info("client certificate renewed; the next stream presents it");
      };
      session = std::make_shared<LinkSession>(
          *id, options_.version, health_, clock_,
          LinkSession::Callbacks{options_.on_desired_state, options_.on_command,
                                 options_.certificate != nullptr
                                     ? std::function<void(const v1::IssuedCertificate&)>(
                                           on_certificate)
                                     : nullptr});
      absl::MutexLock lock(&mu_);
      session->SetAppliedRevision(applied_revision_);
      if (unsent_report_.has_value()) {
        session->Reconciled(*unsent_report_);  // no stream yet: kept for the first one
        unsent_report_.reset();
      }
      identity_ = id;
      session_ = session;
    }
    if (options_.on_identity) options_.on_identity(*id);
    grpc::Status ended = RunStream(session.get(), &backoff);
    if (stop->HasBeenNotified()) break;
    if (ended.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      // Our credential was rotated (someone re-registered under our name) or we were deleted.
      spdlog::warn("mothership refused our credential reason=\"{}\"; registering again",
                   ended.error_message());
      id.reset();
    }
    // When the mothership's admission control said when to come back, then, a little later at
    // random: the slot it promised is ours from then on, and waiting a backoff on top of it
    // only made a reconnecting fleet come back later and be told to wait again. Otherwise our
    // own jittered backoff.
    const absl::Duration hint = last_retry_hint();
    const absl::Duration delay = hint > absl::ZeroDuration()
                                     ? hint + hint * (0.1 * random_->Uniform01())
                                     : backoff.Next();
    AgentMetrics::Process().StreamEnded(static_cast<int>(ended.error_code()));
    spdlog::warn("stream ended code={} reason=\"{}\" reconnect_in={}",
                 static_cast<int>(ended.error_code()), ended.error_message(),
                 absl::FormatDuration(delay));
    if (!clock_->SleepFor(delay, stop)) break;
  }
  return absl::OkStatus();
}

bool MothershipLink::UseCurrentCertificate() {
  auto current = options_.certificate->current();
  if (!current.has_value()) {
    spdlog::warn("no client certificate in {}; registering to get one", options_.data_dir);
    return false;
  }
  if (current->not_after <= clock_->Now()) {
    spdlog::warn("the client certificate expired at {}; registering again for a new one",
                 absl::FormatTime(current->not_after));
    return false;
  }
  if (stub_certificate_ != current->generation) {
    stub_ = v1::AgentService::NewStub(
        options_.channel_with_certificate(current->certificate_pem, current->key_pem));
    stub_certificate_ = current->generation;
  }
  return true;
}

void MothershipLink::MaybeRenewCertificate(LinkSession* session, int64_t* asked_for) {
  if (options_.certificate == nullptr || !session->welcomed()) return;
  auto current = options_.certificate->current();
  auto renew_at = options_.certificate->renew_at();
  if (!current.has_value() || !renew_at.has_value() || clock_->Now() < *renew_at ||
      *asked_for == current->generation) {
    return;
  }
  auto csr = options_.certificate->Request(options_.name);
  if (!csr.ok()) {
    spdlog::warn("cannot ask for a new certificate reason=\"{}\"", csr.status().message());
    return;
  }
  if (session->RequestCertificate(*csr)) {
    *asked_for = current->generation;
    spdlog::info("asked the mothership for a new client certificate");
  }
}

namespace {

// The session's messages onto a gRPC stream; writes are serialised by the session's lock.
class StreamOutbox final : public Outbox {
 public:
  explicit StreamOutbox(grpc::ClientReaderWriter<v1::AgentMessage, v1::MothershipMessage>* stream)
      : stream_(stream) {}
  bool Send(const v1::AgentMessage& message) override { return stream_->Write(message); }

 private:
  grpc::ClientReaderWriter<v1::AgentMessage, v1::MothershipMessage>* stream_;
};

}  // namespace

grpc::Status MothershipLink::RunStream(LinkSession* session, common::Backoff* backoff) {
  const Identity& identity = session->identity();
  grpc::ClientContext context;
  // Wait for the channel to connect instead of failing fast: gRPC's own reconnect backoff
  // (capped at --reconnect-max, jittered) then paces attempts while the mothership is away, and
  // the stream opens as soon as it is back.
  context.set_wait_for_ready(true);
  context.AddMetadata("authorization", "Bearer " + identity.credential);
  context.AddMetadata("x-tether-agent-id", identity.agent_id);
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return grpc::Status(grpc::StatusCode::CANCELLED, "stopped");
    stream_context_ = &context;
  }
  auto stream = stub_->Connect(&context);
  StreamOutbox outbox(stream.get());
  absl::Notification stream_done;
  std::thread heartbeats;
  if (session->Open(&outbox)) {
    heartbeats = std::thread([&] {
      int64_t asked_for_certificate = 0;  // the generation a renewal was asked for
      while (clock_->SleepFor(options_.heartbeat_interval, &stream_done)) {
        if (!session->SendHeartbeat()) return;
        MaybeRenewCertificate(session, &asked_for_certificate);
      }
    });
    v1::MothershipMessage in;
    while (stream->Read(&in)) {
      if (absl::Status st = session->OnMessage(in); !st.ok()) {
        spdlog::warn("ending the stream reason=\"{}\"", st.message());
        context.TryCancel();
        break;
      }
      if (in.has_welcome()) {
        absl::MutexLock lock(&mu_);
        connected_ = true;
        backoff->Reset();
        AgentMetrics::Process().Connected();
        spdlog::info("connected to mothership id={} incarnation={}", in.welcome().agent_id(),
                     in.welcome().incarnation());
      }
    }
  }
  session->Close();
  if (options_.on_stream_closed) options_.on_stream_closed();
  stream_done.Notify();
  if (heartbeats.joinable()) heartbeats.join();
  grpc::Status status = stream->Finish();
  // A replica admitting streams at a bounded rate says when to come back.
  absl::Duration hint = absl::ZeroDuration();
  const auto& trailers = context.GetServerTrailingMetadata();
  if (auto it = trailers.find(common::kRetryAfterMetadata); it != trailers.end()) {
    int64_t ms = 0;
    if (absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()), &ms) && ms > 0) {
      hint = std::min(absl::Milliseconds(ms), kMaxRetryHint);
    }
  }
  absl::MutexLock lock(&mu_);
  retry_hint_ = hint;
  stream_context_ = nullptr;
  connected_ = false;
  return status;
}

}  // namespace tether::agent
