// ControlService adapter: every call is authorised with an operator token first; agents'
// credentials are refused with PERMISSION_DENIED.
#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/grpc/metadata.h"
#include "common/logging.h"
#include "common/grpc/status.h"
#include "common/grpc/tls.h"
#include "common/pki/pki.h"
#include "common/text.h"
#include "controlplane/api/follow_reactor.h"
#include "controlplane/api/services.h"
#include "controlplane/commands/command_state.h"
#include "tether/v1/control_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

using common::ToGrpcStatus;

// A stream refused before it starts (the mothership is not ready).
template <typename Item>
class RefusedStream final : public grpc::ServerWriteReactor<Item> {
 public:
  explicit RefusedStream(const absl::Status& status) { this->Finish(ToGrpcStatus(status)); }
  void OnDone() override { delete this; }
};

const absl::Status kStarting = absl::UnavailableError("mothership is starting; retry shortly");

// Events an operator's request appends name its token and where it came from.
Actor AsOperator(const std::string& token_id, grpc::ServerContext* context) {
  return Actor{absl::StrCat("operator:", token_id), context->peer()};
}

// A listing's filter, its parts bounded.
absl::StatusOr<EventFilter> EventFilterOf(const std::string& cluster, const std::string& kind,
                                          const std::string& actor) {
  constexpr size_t kMaxFilterBytes = 128;
  if (cluster.size() > kMaxFilterBytes || kind.size() > kMaxFilterBytes ||
      actor.size() > kMaxFilterBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster, kind and actor filters are at most ", kMaxFilterBytes, " bytes"));
  }
  return EventFilter{cluster, kind, actor};
}

// `events --follow`: every event after a cursor, then each as it is appended.
class EventsFollower final : public FollowReactor<v1::Event> {
 public:
  EventsFollower(const ControlServiceDeps* deps, std::function<absl::Status()> authorize,
                 v1::WatchEventsRequest request)
      : FollowReactor(deps->bus, deps->blocking),
        events_(deps->events),
        filter_{request.cluster(), request.kind(), request.actor()},
        after_(request.after_id()) {
    Start(std::move(authorize));
  }

 private:
  absl::StatusOr<Batch> Fetch() override {
    constexpr int kBatch = 500;
    auto events = events_->After(filter_, after_, kBatch);
    if (!events.ok()) return events.status();
    Batch batch;
    batch.more = static_cast<int>(events->size()) == kBatch;
    if (!events->empty()) after_ = events->back().id();
    batch.items = *std::move(events);
    return batch;
  }
  bool Wakes(const Change& change) override { return change.kind == Change::Kind::kEvent; }

  EventLog* events_;
  const EventFilter filter_;
  int64_t after_;  // only Fetch touches it, one call at a time
};

// `logs --follow`: a command's stored lines after a cursor, then new ones as they are stored,
// and its status whenever it changes; ends once the command has ended and every line is out.
// Without follow it ends after the stored lines and the status.
class CommandFollower final : public FollowReactor<v1::CommandEvent> {
 public:
  CommandFollower(const ControlServiceDeps* deps, std::function<absl::Status()> authorize,
                  v1::WatchCommandRequest request)
      : FollowReactor(deps->bus, deps->blocking),
        commands_(deps->commands),
        request_(std::move(request)),
        after_(std::max<int64_t>(request_.after_seq(), 0)) {
    id_ = ParseCommandId(request_.id()).value_or(0);
    Start(std::move(authorize));
  }

 private:
  absl::StatusOr<Batch> Fetch() override {
    constexpr int kBatch = 500;
    Batch batch;
    // The status first: every line it counts was stored before it was read, so the read of the
    // lines that follows sees them all, and the status goes out after its last line — a
    // follower's final event is the ended command, never a line.
    auto status = commands_->Get(request_.id());
    if (!status.ok()) return status.status();
    auto lines = commands_->Lines(request_.id(), after_, kBatch);
    if (!lines.ok()) return lines.status();
    for (auto& line : *lines) {
      after_ = line.seq();
      *batch.items.emplace_back().mutable_line() = std::move(line);
    }
    if (static_cast<int>(lines->size()) == kBatch || status->lines() > after_) {
      batch.more = true;  // the status waits for its lines
      return batch;
    }
    std::string digest;
    status->SerializeToString(&digest);
    if (digest != last_status_) {
      last_status_ = digest;
      *batch.items.emplace_back().mutable_status() = *status;
    }
    batch.end = !request_.follow() || IsTerminal(status->state());
    return batch;
  }
  bool Wakes(const Change& change) override {
    return change.kind == Change::Kind::kCommandProgress && change.number == id_;
  }

  CommandStore* commands_;
  const v1::WatchCommandRequest request_;
  int64_t id_ = 0;
  // Only Fetch touches these, one call at a time.
  int64_t after_;
  std::string last_status_;
};

class ControlServiceImpl final
    : public v1::ControlService::WithCallbackMethod_WatchEvents<
          v1::ControlService::WithCallbackMethod_WatchCommand<v1::ControlService::Service>> {
 public:
  explicit ControlServiceImpl(const ControlServiceDeps* deps) : deps_(deps) {}

  grpc::Status CreateBootstrapToken(grpc::ServerContext* context,
                                    const v1::CreateBootstrapTokenRequest* request,
                                    v1::CreateBootstrapTokenResponse* response) override {
    auto who = Authorize(context);
    if (!who.ok()) return ToGrpcStatus(who.status());
    ScopedActor actor(AsOperator(*who, context));
    // Checked before it is added up: a seconds field near int64's end would overflow.
    const auto& asked = request->ttl();
    if (asked.seconds() < 0 || asked.seconds() > absl::ToInt64Seconds(kMaxBootstrapTtl) ||
        asked.nanos() < 0 || asked.nanos() > 999'999'999) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("ttl must be between 0 (never expires) and ",
                                       absl::ToInt64Hours(kMaxBootstrapTtl) / 24, " days"));
    }
    const absl::Duration ttl = absl::Seconds(asked.seconds()) + absl::Nanoseconds(asked.nanos());
    const std::vector<std::string> names(request->names().begin(), request->names().end());
    auto created = deps_->tokens->CreateBootstrap(request->cluster(), ttl, request->uses(),
                                                     request->description(), names);
    if (!created.ok()) return ToGrpcStatus(created.status());
    *response->mutable_token() = created->token;
    response->set_secret(created->secret);
    return grpc::Status::OK;
  }

  grpc::Status ListBootstrapTokens(grpc::ServerContext* context,
                                   const v1::ListBootstrapTokensRequest*,
                                   v1::ListBootstrapTokensResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto tokens = deps_->tokens->ListBootstrap();
    if (!tokens.ok()) return ToGrpcStatus(tokens.status());
    for (auto& t : *tokens) *response->add_tokens() = std::move(t);
    return grpc::Status::OK;
  }

  grpc::Status RevokeBootstrapToken(grpc::ServerContext* context,
                                    const v1::RevokeBootstrapTokenRequest* request,
                                    v1::BootstrapToken* response) override {
    auto who = Authorize(context);
    if (!who.ok()) return ToGrpcStatus(who.status());
    ScopedActor actor(AsOperator(*who, context));
    auto token = deps_->tokens->RevokeBootstrap(request->id());
    if (!token.ok()) return ToGrpcStatus(token.status());
    *response = *std::move(token);
    return grpc::Status::OK;
  }

  grpc::Status ListAgents(grpc::ServerContext* context, const v1::ListAgentsRequest* request,
                          v1::ListAgentsResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    if (request->page_size() < 0 || request->page_size() > kMaxAgentsPage) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("page_size must be between 0 (", kDefaultAgentsPage,
                                       ") and ", kMaxAgentsPage));
    }
    if (!v1::AgentStatus_IsValid(request->status())) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("status ", request->status(), " is not an agent status"));
    }
    auto after = AgentPageToken::Decode(request->page_token());
    if (!after.ok()) return ToGrpcStatus(after.status());
    auto page = deps_->agents->List(
        request->cluster(), request->status(), *after,
        request->page_size() == 0 ? kDefaultAgentsPage : request->page_size());
    if (!page.ok()) return ToGrpcStatus(page.status());
    for (auto& a : page->agents) *response->add_agents() = std::move(a);
    if (page->more) response->set_next_page_token(page->next.Encode());
    return grpc::Status::OK;
  }

  grpc::Status GetAgent(grpc::ServerContext* context, const v1::GetAgentRequest* request,
                        v1::Agent* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto agent = deps_->agents->Get(request->name());
    if (!agent.ok()) return ToGrpcStatus(agent.status());
    *response = *std::move(agent);
    return grpc::Status::OK;
  }

  grpc::Status DeleteAgent(grpc::ServerContext* context, const v1::DeleteAgentRequest* request,
                           v1::DeleteAgentResponse* response) override {
    auto who = Authorize(context);
    if (!who.ok()) return ToGrpcStatus(who.status());
    ScopedActor actor(AsOperator(*who, context));
    auto agent = deps_->agents->Delete(request->name());
    if (!agent.ok()) return ToGrpcStatus(agent.status());
    // A deleted agent never answers: its part in unfinished commands ends now.
    if (auto st = deps_->commands->AgentDeleted(agent->id(), agent->name()); !st.ok()) {
      spdlog::warn("cannot end the commands of deleted agent={} reason=\"{}\"", agent->name(),
                   st.message());
    }
    *response->mutable_agent() = *std::move(agent);
    return grpc::Status::OK;
  }

  grpc::Status ApplySpec(grpc::ServerContext* context, const v1::ApplySpecRequest* request,
                         v1::ApplySpecResponse* response) override {
    auto who = Authorize(context);
    if (!who.ok()) return ToGrpcStatus(who.status());
    ScopedActor actor(AsOperator(*who, context));
    auto applied = deps_->specs->Apply(request->spec(), *who, request->dry_run(),
                                       request->replace_unapplied(), request->idempotency_key());
    if (!applied.ok()) {
      spdlog::warn("spec refused cluster={} reason=\"{}\"", absl::CEscape(request->spec().cluster().substr(0, 64)),
                   applied.status().message());
      return ToGrpcStatus(applied.status());
    }
    response->set_cluster(request->spec().cluster());
    response->set_revision(applied->revision);
    response->set_previous_revision(applied->previous_revision);
    for (auto& c : applied->changes) response->add_changes(std::move(c));
    response->set_stored(applied->stored);
    response->set_command_id(applied->command_id);
    return grpc::Status::OK;
  }

  grpc::Status GetSpec(grpc::ServerContext* context, const v1::GetSpecRequest* request,
                       v1::SpecRevision* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto revision =
        deps_->specs->Get(request->cluster(), request->revision(), request->with_files());
    if (!revision.ok()) return ToGrpcStatus(revision.status());
    *response = *std::move(revision);
    return grpc::Status::OK;
  }

  grpc::Status ListSpecRevisions(grpc::ServerContext* context,
                                 const v1::ListSpecRevisionsRequest* request,
                                 v1::ListSpecRevisionsResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto history = deps_->specs->History(request->cluster(), request->limit());
    if (!history.ok()) return ToGrpcStatus(history.status());
    for (auto& r : *history) *response->add_revisions() = std::move(r);
    return grpc::Status::OK;
  }

  grpc::Status ListTenants(grpc::ServerContext* context, const v1::ListTenantsRequest* request,
                           v1::ListTenantsResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto tenants = deps_->reports->ListTenants(request->cluster(), request->tenant());
    if (!tenants.ok()) return ToGrpcStatus(tenants.status());
    for (auto& t : *tenants) *response->add_tenants() = std::move(t);
    return grpc::Status::OK;
  }

  grpc::Status ListEvents(grpc::ServerContext* context, const v1::ListEventsRequest* request,
                          v1::ListEventsResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    if (request->limit() < 0 || request->limit() > EventLog::kMaxPage) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("limit must be between 0 (100) and ", EventLog::kMaxPage,
                                       "; page back with before_id for more"));
    }
    if (request->after_id() < 0 || request->before_id() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "after_id and before_id must not be negative");
    }
    auto filter = EventFilterOf(request->cluster(), request->kind(), request->actor());
    if (!filter.ok()) return ToGrpcStatus(filter.status());
    auto events = deps_->events->List(*filter, request->after_id(), request->limit(),
                                      request->before_id());
    if (!events.ok()) return ToGrpcStatus(events.status());
    for (auto& e : *events) *response->add_events() = std::move(e);
    return grpc::Status::OK;
  }

  grpc::ServerWriteReactor<v1::Event>* WatchEvents(grpc::CallbackServerContext* context,
                                                   const v1::WatchEventsRequest* request) override {
    if (!deps_->lifecycle->ready.load()) return new RefusedStream<v1::Event>(kStarting);
    if (auto filter = EventFilterOf(request->cluster(), request->kind(), request->actor());
        !filter.ok()) {
      return new RefusedStream<v1::Event>(filter.status());
    }
    // The context is gone once the call is; the token is read now, checked on the pool.
    return new EventsFollower(
        deps_,
        [this, token = common::MetadataValue(context, "authorization"),
         peer = common::PeerCertificateOf(*context)] { return AuthorizeToken(token, peer).status(); },
        *request);
  }

  grpc::Status RunCommand(grpc::ServerContext* context, const v1::RunCommandRequest* request,
                          v1::CommandStatus* response) override {
    auto who = Authorize(context);
    if (!who.ok()) return ToGrpcStatus(who.status());
    ScopedActor actor(AsOperator(*who, context));
    CommandRequest req;
    req.cluster = request->cluster();
    req.agent = request->agent();
    req.command = request->command();
    req.idempotency_key = request->idempotency_key();
    req.who = *who;
    auto queued = deps_->commands->Queue(req);
    if (!queued.ok()) {
      spdlog::warn("command refused cluster=\"{}\" reason=\"{}\"",
                   absl::CHexEscape(common::CutText(request->cluster(), 64)),
                   absl::CHexEscape(queued.status().message()));
      return ToGrpcStatus(queued.status());
    }
    *response = *std::move(queued);
    return grpc::Status::OK;
  }

  grpc::Status GetCommand(grpc::ServerContext* context, const v1::GetCommandRequest* request,
                          v1::CommandStatus* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto command = deps_->commands->Get(request->id());
    if (!command.ok()) return ToGrpcStatus(command.status());
    *response = *std::move(command);
    return grpc::Status::OK;
  }

  grpc::Status ListCommands(grpc::ServerContext* context, const v1::ListCommandsRequest* request,
                            v1::ListCommandsResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto commands =
        deps_->commands->List(request->cluster(), request->state(), request->limit());
    if (!commands.ok()) return ToGrpcStatus(commands.status());
    for (auto& c : *commands) *response->add_commands() = std::move(c);
    return grpc::Status::OK;
  }

  grpc::Status CancelCommand(grpc::ServerContext* context, const v1::CancelCommandRequest* request,
                             v1::CommandStatus* response) override {
    auto who = Authorize(context);
    if (!who.ok()) return ToGrpcStatus(who.status());
    ScopedActor actor(AsOperator(*who, context));
    auto command = deps_->commands->Cancel(request->id(), *who);
    if (!command.ok()) return ToGrpcStatus(command.status());
    *response = *std::move(command);
    return grpc::Status::OK;
  }

  grpc::ServerWriteReactor<v1::CommandEvent>* WatchCommand(
      grpc::CallbackServerContext* context, const v1::WatchCommandRequest* request) override {
    if (!deps_->lifecycle->ready.load()) return new RefusedStream<v1::CommandEvent>(kStarting);
    return new CommandFollower(
        deps_,
        [this, token = common::MetadataValue(context, "authorization"),
         peer = common::PeerCertificateOf(*context)] { return AuthorizeToken(token, peer).status(); },
        *request);
  }

 private:
  // The calling operator token's id.
  absl::StatusOr<std::string> Authorize(grpc::ServerContext* context) {
    return AuthorizeToken(common::MetadataValue(context, "authorization"),
                          common::PeerCertificateOf(*context));
  }
  // `header`: the call's authorization metadata, which must be "Bearer <operator token>".
  absl::StatusOr<std::string> AuthorizeToken(const std::string& header,
                                             const common::PeerCertificate& peer) {
    if (!deps_->lifecycle->ready.load()) return kStarting;
    // With --tls-client-ca an operator also proves who it is with a certificate of that CA
    // (an agent's, signed by the mothership's own CA, does not do).
    if (!deps_->operator_ca_pem.empty()) {
      if (peer.leaf.empty()) {
        return absl::UnauthenticatedError(
            "this mothership requires a client certificate from its client CA "
            "(tetherctl --tls-client-cert and --tls-client-key)");
      }
      if (auto st = common::VerifyCertificate(peer.leaf, peer.chain, deps_->operator_ca_pem,
                                              absl::Now());
          !st.ok()) {
        return absl::UnauthenticatedError(
            absl::StrCat("the client certificate is refused: ", st.message()));
      }
    }
    constexpr absl::string_view kBearer = "Bearer ";
    if (!header.empty() && !absl::StartsWith(header, kBearer)) {
      return absl::UnauthenticatedError(
          "the authorization header must be \"Bearer <operator token>\"");
    }
    const std::string token = header.substr(std::min(header.size(), kBearer.size()));
    if (token.empty()) {
      return absl::UnauthenticatedError(
          "missing operator token (use --token, TETHER_TOKEN or the config file)");
    }
    if (absl::StartsWith(token, kAgentCredentialPrefix)) {
      return absl::PermissionDeniedError("agent credentials cannot call ControlService");
    }
    return deps_->tokens->VerifyOperator(token);
  }

  const ControlServiceDeps* deps_;
};

}  // namespace

std::unique_ptr<grpc::Service> MakeControlService(const ControlServiceDeps* deps) {
  return std::make_unique<ControlServiceImpl>(deps);
}

}  // namespace tether::controlplane
