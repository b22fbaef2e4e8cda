// The gRPC face of the mothership: AgentService and ControlService adapters that translate
// proto ↔ domain calls and absl::Status ↔ grpc::Status, and nothing more. Each service gets
// the parts it uses in a struct of its own. Until the database is ready (lite mode provisions
// it after the server is already up) every call answers UNAVAILABLE "mothership is starting".
#pragma once

#include <atomic>
#include <memory>

#include <grpcpp/grpcpp.h>

#include "common/work_pool.h"
#include "controlplane/agents/admission.h"
#include "controlplane/agents/agent_certificates.h"
#include "controlplane/agents/agent_registry.h"
#include "controlplane/agents/reports.h"
#include "controlplane/agents/session.h"
#include "controlplane/agents/stream_registry.h"
#include "controlplane/commands/command_store.h"
#include "controlplane/events/event_log.h"
#include "controlplane/metrics.h"
#include "controlplane/specs/spec_store.h"
#include "controlplane/tokens/token_store.h"

namespace tether::controlplane {

// Set by the mothership as it starts and stops; read by every call.
struct Lifecycle {
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
};

struct AgentServiceDeps {
  const Lifecycle* lifecycle = nullptr;
  AgentRegistry* agents = nullptr;
  StreamRegistry* streams = nullptr;
  AgentSessionBackend* sessions = nullptr;
  // How fast new streams are taken; null: all at once.
  Admission* admission = nullptr;
  // Runs the database work of streams (credential checks, acks) off gRPC's callback threads.
  common::WorkPool* blocking = nullptr;
  // Takes heartbeats, which touch memory only, so that the database work of a fleet connecting
  // at once never delays them past the TTL (at 50,000 agents it did: heartbeating agents were
  // shown lost). Null: `blocking` takes them too.
  common::WorkPool* heartbeats = nullptr;
  // Messages a stream may hold unwritten before its peer counts as not reading and the stream
  // is closed with RESOURCE_EXHAUSTED. An agent reads as it goes; bursts (a reconnect's queued
  // commands) are far below this.
  size_t stream_queue_limit = 4096;
  // With TLS: signs agents' certificates at registration and checks the one every stream
  // presents. Null without TLS (the bearer credential alone, for plain-text development).
  const AgentCertificates* certificates = nullptr;
  MothershipMetrics* metrics = MothershipMetrics::Unexposed();
};

struct ControlServiceDeps {
  const Lifecycle* lifecycle = nullptr;
  AgentRegistry* agents = nullptr;
  AgentReports* reports = nullptr;
  TokenStore* tokens = nullptr;
  EventLog* events = nullptr;
  SpecStore* specs = nullptr;
  CommandStore* commands = nullptr;
  // Followers (WatchEvents, WatchCommand) are woken by the bus and read on the blocking pool.
  ChangeBus* bus = nullptr;
  common::WorkPool* blocking = nullptr;
  // --tls-client-ca's certificates (PEM); set: an operator's call must also present a client
  // certificate that chains to one of them. Set before the server starts.
  std::string operator_ca_pem;
};

// The deps are filled in before `lifecycle->ready` turns true and stay valid until the server
// has shut down.
std::unique_ptr<grpc::Service> MakeAgentService(const AgentServiceDeps* deps);
std::unique_ptr<grpc::Service> MakeControlService(const ControlServiceDeps* deps);

}  // namespace tether::controlplane
