// The gRPC face of the mothership: AgentService and ControlService adapters that translate
// proto ↔ domain calls and absl::Status ↔ grpc::Status, and nothing more. Until the database is
// ready (lite mode provisions it after the server is already up) every call answers
// UNAVAILABLE "mothership is starting".
#pragma once

#include <atomic>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "common/work_pool.h"
#include "controlplane/agents/agent_registry.h"
#include "controlplane/events/event_log.h"
#include "controlplane/agents/stream_registry.h"
#include "controlplane/tokens/token_store.h"

namespace tether::controlplane {

struct Backend {
  AgentRegistry* agents = nullptr;
  TokenStore* tokens = nullptr;
  EventLog* events = nullptr;
  StreamRegistry* streams = nullptr;
  // Runs the database work of stream set-up off gRPC's callback threads.
  common::WorkPool* blocking = nullptr;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
};

std::unique_ptr<grpc::Service> MakeAgentService(Backend* backend);
std::unique_ptr<grpc::Service> MakeControlService(Backend* backend);

}  // namespace tether::controlplane
