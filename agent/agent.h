// Agent: wires tether-agent together — the link to the mothership, the provisioning loop and
// the reconcile loop, each on its own thread, sharing HealthState; commands from the link go
// through the CommandDispatcher and run on the reconcile thread between reconciles. The agent registers and keeps
// its stream while PostgreSQL is still being provisioned (skeleton boot); revisions the link
// receives wait in the reconcile loop until PostgreSQL is ready. A pro agent (external
// provisioner) also runs a leadership thread: it acts (reconciles, runs commands) only while it
// leads, every write it makes carries its fence, and its role travels with its health.
// Start/Stop from one thread.
#pragma once

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "agent/commands/command_dispatch.h"
#include "agent/config.h"
#include "agent/health_state.h"
#include "agent/environment.h"
#include "agent/leadership/leadership_loop.h"
#include "agent/leadership/write_fence.h"
#include "agent/link/mothership_link.h"
#include "agent/reconcile/reconcile_loop.h"
#include "agent/provision/provisioner.h"
#include "agent/provision/provisioning.h"
#include "common/metrics/metrics_server.h"
#include "common/clock.h"
#include "common/process.h"
#include "common/random.h"

namespace tether::agent {

class Agent {
 public:
  Agent(AgentConfig config, common::Clock* clock, common::ProcessRunner* runner);
  ~Agent();

  // Starts both loops (and the health endpoint when configured). kInvalidArgument when the
  // configuration cannot work (a TLS file that cannot be read, a health address that cannot
  // be bound, a data dir that cannot be made).
  absl::Status Start();
  // Blocks until the link gives up (a refused registration) or Stop(); returns why.
  absl::Status Wait();
  // Asks both loops to end; safe from any thread (a signal handler thread), any number of times.
  void RequestStop();
  // RequestStop() and join the loops.
  void Stop();

  MothershipLink* link() { return link_.get(); }
  ReconcileLoop* reconcile() { return reconcile_.get(); }
  ProvisioningLoop* provisioning() { return provisioning_.get(); }

 private:
  // Runs one command on the reconcile thread, with the newest spec the loop knows.
  CommandResult RunCommand(const CommandRecord& record, const CommandIo& io, CommandStops stops);
  // Once PostgreSQL is ready: the dispatcher gets its records and resumes what was under way.
  void StartCommands();
  // Pro mode: the leadership thread says what this agent now is.
  void OnRole(v1::AgentRole role, int64_t epoch);

  AgentConfig config_;
  common::Clock* clock_;
  common::ProcessRunner* runner_;
  common::RealRandom random_;
  HealthState health_;
  absl::Mutex stop_mu_;
  absl::Notification stop_;
  absl::Notification link_done_;
  absl::Status link_status_;
  std::unique_ptr<Provisioner> provisioner_;
  std::unique_ptr<ProvisioningLoop> provisioning_;
  std::unique_ptr<MothershipLink> link_;
  std::unique_ptr<AgentEnvironment> environment_;
  std::unique_ptr<ReconcileLoop> reconcile_;
  std::unique_ptr<CommandDispatcher> commands_;
  std::unique_ptr<WriteFence> fence_;             // pro mode only
  std::unique_ptr<LeadershipLoop> leadership_;    // pro mode only
  std::thread link_thread_;
  std::thread leadership_thread_;
  std::thread provisioning_thread_;
  std::thread reconcile_thread_;
  std::unique_ptr<grpc::CallbackGenericService> health_generic_;
  std::unique_ptr<grpc::Server> health_server_;
  std::unique_ptr<common::MetricsServer> metrics_server_;  // with --metrics-listen
};

// Builds the provisioner the config asks for.
absl::StatusOr<std::unique_ptr<Provisioner>> MakeProvisioner(const AgentConfig& config,
                                                             common::ProcessRunner* runner,
                                                             common::Clock* clock);

}  // namespace tether::agent
