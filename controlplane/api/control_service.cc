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
#include "controlplane/api/services.h"
#include "tether/v1/control_service.grpc.pb.h"

namespace tether::controlplane {
namespace {

using common::ToGrpcStatus;

class ControlServiceImpl final : public v1::ControlService::Service {
 public:
  explicit ControlServiceImpl(const ControlServiceDeps* deps) : deps_(deps) {}

  grpc::Status CreateBootstrapToken(grpc::ServerContext* context,
                                    const v1::CreateBootstrapTokenRequest* request,
                                    v1::CreateBootstrapTokenResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    const absl::Duration ttl = absl::Seconds(request->ttl().seconds()) +
                               absl::Nanoseconds(request->ttl().nanos());
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
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto token = deps_->tokens->RevokeBootstrap(request->id());
    if (!token.ok()) return ToGrpcStatus(token.status());
    *response = *std::move(token);
    return grpc::Status::OK;
  }

  grpc::Status ListAgents(grpc::ServerContext* context, const v1::ListAgentsRequest* request,
                          v1::ListAgentsResponse* response) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto agents = deps_->agents->List(request->cluster());
    if (!agents.ok()) return ToGrpcStatus(agents.status());
    for (auto& a : *agents) *response->add_agents() = std::move(a);
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
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    auto agent = deps_->agents->Delete(request->name());
    if (!agent.ok()) return ToGrpcStatus(agent.status());
    *response->mutable_agent() = *std::move(agent);
    return grpc::Status::OK;
  }

  grpc::Status ApplySpec(grpc::ServerContext* context, const v1::ApplySpecRequest* request,
                         v1::ApplySpecResponse* response) override {
    auto who = Authorize(context);
    if (!who.ok()) return ToGrpcStatus(who.status());
    auto applied = deps_->specs->Apply(request->spec(), *who, request->dry_run(),
                                       request->replace_unapplied());
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
    auto events =
        deps_->events->List(request->cluster(), request->after_id(), request->limit());
    if (!events.ok()) return ToGrpcStatus(events.status());
    for (auto& e : *events) *response->add_events() = std::move(e);
    return grpc::Status::OK;
  }

  grpc::Status WatchEvents(grpc::ServerContext* context, const v1::WatchEventsRequest* request,
                           grpc::ServerWriter<v1::Event>* writer) override {
    if (auto who = Authorize(context); !who.ok()) return ToGrpcStatus(who.status());
    int64_t after = request->after_id();
    auto done = [&] { return context->IsCancelled() || deps_->lifecycle->stopping.load(); };
    while (!done()) {
      auto events =
          deps_->events->WaitForNew(request->cluster(), after, absl::Seconds(30), done);
      if (!events.ok()) return ToGrpcStatus(events.status());
      for (const auto& e : *events) {
        if (!writer->Write(e)) return grpc::Status::OK;  // the client went away
        after = e.id();
      }
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "mothership is shutting down");
  }

 private:
  // The calling operator token's id.
  absl::StatusOr<std::string> Authorize(grpc::ServerContext* context) {
    if (!deps_->lifecycle->ready.load()) {
      return absl::UnavailableError("mothership is starting; retry shortly");
    }
    const std::string token = common::BearerToken(context);
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
