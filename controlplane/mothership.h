// Mothership: wires the control plane together. Start() brings up the gRPC skeleton first
// (health NOT_SERVING, every RPC UNAVAILABLE), then the database — its own PostgreSQL in lite
// mode, or DATABASE_URL in pro mode, retried until SELECT 1 answers — then migrations and the
// operator token, and only then serves. A background thread flushes heartbeats and marks lost
// agents. Start/Shutdown from one thread; the rest is thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/service_type.h>

#include <memory>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/metrics/metrics_server.h"
#include "common/pg/local_postgres.h"
#include "common/pg/pool.h"
#include "common/process.h"
#include "common/random.h"
#include "controlplane/config.h"
#include "controlplane/agents/agent_certificates.h"
#include "controlplane/agents/session_backend.h"
#include "controlplane/api/services.h"
#include "controlplane/fanout/change_bus.h"
#include "controlplane/fanout/pg_change_bus.h"
#include "controlplane/metrics.h"

namespace tether::controlplane {

class Mothership {
 public:
  Mothership(MothershipConfig config, common::Clock* clock, common::ProcessRunner* runner);
  ~Mothership();

  // Returns once the mothership serves, or with why it cannot: kInvalidArgument for a bad
  // listen address or TLS file, kCancelled when Shutdown() came first, the database's error
  // when its schema cannot be migrated.
  absl::Status Start();
  // Asks Start() and Wait() to return; safe from any thread, any number of times.
  void RequestStop();
  // Blocks until RequestStop().
  void Wait() { stop_.WaitForNotification(); }
  // Stops serving; in-flight streams end and agents reconnect (to this or another replica).
  void Shutdown();

  int port() const { return port_; }
  const std::string& database_url() const { return database_url_; }

 private:
  absl::Status StartServer();
  absl::StatusOr<std::string> PrepareDatabase();
  absl::Status WaitForDatabase(const std::string& url);
  void Housekeeping();
  // A trivial query: whether the database answers.
  absl::Status ProbeDatabase();
  // Turns gRPC health (and the log) to what the database's state became.
  void FollowDatabase(const absl::Status& reached);

  MothershipConfig config_;
  common::Clock* clock_;
  common::ProcessRunner* runner_;
  common::RealRandom random_;
  absl::Mutex stop_mu_;
  absl::Notification stop_;
  bool shut_down_ = false;
  bool database_up_ = true;  // the housekeeping thread's own
  Lifecycle lifecycle_;
  AgentServiceDeps agent_deps_;
  ControlServiceDeps control_deps_;
  std::unique_ptr<ChangeBus> bus_;  // in-process (lite), or LISTEN/NOTIFY between replicas
  PgChangeBus* pg_bus_ = nullptr;   // bus_, when it is one
  std::unique_ptr<grpc::Service> agent_service_;
  std::unique_ptr<grpc::Service> control_service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string database_url_;
  std::unique_ptr<common::LocalPostgres> local_postgres_;
  std::unique_ptr<common::PgPool> pool_;
  MothershipMetrics metrics_;
  std::unique_ptr<common::MetricsServer> metrics_server_;  // with --metrics-listen
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<StreamRegistry> streams_;
  std::unique_ptr<AgentRegistry> agents_;
  std::unique_ptr<AgentCertificates> certificates_;  // with TLS only
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<AgentReports> reports_;
  std::unique_ptr<SpecStore> specs_;
  std::unique_ptr<CommandStore> commands_;
  std::unique_ptr<StoreSessionBackend> session_backend_;
  std::unique_ptr<common::WorkPool> blocking_;
  std::unique_ptr<common::WorkPool> heartbeats_;
  std::unique_ptr<Admission> admission_;
  std::thread housekeeping_;
};

}  // namespace tether::controlplane
