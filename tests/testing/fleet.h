// Fleet: the real binaries as processes for end-to-end tests — a lite mothership, agents with
// the local provisioner, tetherctl — in one temporary directory, with helpers to read the
// fleet through tetherctl's JSON and to reach an agent's own PostgreSQL. Everything speaks TLS
// as a production fleet does: the mothership serves a test PKI's certificate and requires
// tetherctl's client certificate; agents trust its CA and stream with the certificates the
// mothership issues them at registration. Stops every process and PostgreSQL it started when
// it goes away. Not thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <grpcpp/security/credentials.h>
#include <nlohmann/json.hpp>

#include "grpc/health/v1/health.pb.h"
#include "tests/testing/child_process.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/test_pki.h"

namespace tether::testing {

// grpc.health.v1 status of the server at `address` ("" service: the whole server); UNKNOWN
// when it does not answer.
grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(
    const std::string& address,
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials());

class Fleet {
 public:
  Fleet();
  ~Fleet();

  // Starts the mothership on `listen` (127.0.0.1:0 for any port); false (and a test failure
  // with its log) when it does not come up.
  bool StartMothership(const std::string& listen = "127.0.0.1:0",
                       const std::vector<std::string>& extra_flags = {});
  // SIGKILLs the mothership and waits for it.
  void KillMothership();
  // Starts it again on the same address and data dir (its PostgreSQL, left running by a kill,
  // is reused); false when it does not come back there.
  bool StartMothershipAgain();
  // Starts `count` replicas of a pro mothership on `database_url`, one after the other (the
  // first makes the operator token); the fleet's server becomes the list of their addresses,
  // which agents and tetherctl are given. False (and a test failure) when one does not come up.
  bool StartReplicas(int count, const std::string& database_url);
  // SIGKILLs replica `i` and waits for it.
  void KillReplica(int i);
  const std::string& replica_server(int i) const { return replica_servers_[i]; }
  // What agents started from now on, and tetherctl, are given as the mothership.
  void set_server(std::string server) { server_ = std::move(server); }
  // A bootstrap token of `cluster`.
  std::string CreateToken(const std::string& cluster);
  // Starts agent `name` with its data dir under the fleet's directory.
  ChildProcess* StartAgent(const std::string& name, const std::string& bootstrap_token,
                           const std::vector<std::string>& extra_flags = {});
  // Kills agent `name` with SIGKILL and waits for it.
  void KillAgent(const std::string& name);
  // Stops the agent's PostgreSQL and deletes its data dir: the container was lost.
  void WipeAgent(const std::string& name);

  // Runs tetherctl; returns its exit status, stdout in *out and stderr in *err.
  int Ctl(const std::vector<std::string>& args, std::string* out, std::string* err = nullptr);
  // Starts tetherctl in the background (a follower); its stdout and stderr go to `log_path`.
  std::unique_ptr<ChildProcess> StartCtl(const std::vector<std::string>& args,
                                         const std::string& log_path);
  // `tetherctl -o json ARGS`, parsed; an empty object when it fails.
  nlohmann::json CtlJson(const std::vector<std::string>& args);

  // How many command.finished events the log has for command `id`.
  int FinishedEvents(const std::string& id);

  // Tenant name → (state, version) as agent `agent` of `cluster` reported them (`get tenants`).
  std::map<std::string, std::pair<std::string, int64_t>> Tenants(const std::string& cluster,
                                                                 const std::string& agent);

  // URL of database `db` on agent `name`'s own PostgreSQL.
  std::string AgentDatabaseUrl(const std::string& name, const std::string& db);

  const std::string& dir() const { return dir_.path(); }
  // How a gRPC client of the fleet's mothership connects (TLS, trusting the test CA).
  std::shared_ptr<grpc::ChannelCredentials> credentials() const;
  const TestPki& pki() const { return pki_; }
  const std::string& server() const { return server_; }
  ChildProcess* mothership() { return mothership_.get(); }
  ChildProcess* agent(const std::string& name) { return agents_[name].get(); }
  // The logs of every process, for a failing assertion.
  std::string Logs();

 private:
  void StopPostgres(const std::string& root);
  // The mothership's flags besides --data-dir: `args` and its TLS.
  std::vector<std::string> MothershipFlags(std::vector<std::string> args) const;
  // tetherctl with the fleet's server and its TLS flags, then `args`.
  std::vector<std::string> CtlArgv(const std::vector<std::string>& args) const;

  TempDir dir_;
  TestPki pki_;
  std::unique_ptr<ChildProcess> mothership_;
  std::map<std::string, std::unique_ptr<ChildProcess>> agents_;
  std::vector<std::unique_ptr<ChildProcess>> replicas_;
  std::vector<std::string> replica_servers_;
  std::string server_;
  std::string token_;
};

}  // namespace tether::testing
