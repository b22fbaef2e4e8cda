// AgentConfig: every setting of tether-agent, filled from flags, then TETHER_* environment
// variables (DATABASE_URL for the database), then defaults; validated once.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "agent/provision/migration_policy.h"

namespace tether::agent {

// How PostgreSQL is provided.
enum class ProvisionerKind { kLocal, kLxd, kExternal };
const char* ProvisionerName(ProvisionerKind kind);

struct AgentConfig {
  std::string config_file;  // YAML: long flag names as keys, below flags and environment
  std::string mothership = "127.0.0.1:7400";
  std::string bootstrap_token;  // needed for the first registration only
  std::string name;             // default: the hostname
  std::string cluster;          // default: the bootstrap token's cluster
  std::string data_dir;         // default: /var/lib/tether/agent as root, else ~/.local/state
  ProvisionerKind provisioner = ProvisionerKind::kLocal;
  std::string database_url;     // external (pro) mode
  std::string lxd_socket = "/var/lib/lxd/unix.socket";
  std::string lxd_url;
  std::string lxd_cert;
  std::string lxd_key;
  std::string lxd_server_cert;  // LXD's own (self-signed) certificate, or its CA, for --lxd-url
  std::string lxd_instance;     // default: name
  // Where the PostgreSQL installed in the instance answers, seen from the agent: inside its own
  // container loopback; from a host, the listen side of an LXD proxy device.
  std::string lxd_postgres_address = "127.0.0.1:5432";
  // A host directory of .deb / .apk packages pushed into the instance and installed from, for
  // sites with no network; empty: the instance's package manager fetches them.
  std::string lxd_bundle;
  // gRPC health service of the agent itself (SERVING once PostgreSQL is ready); empty: off.
  std::string health_listen;
  std::string metrics_listen;  // empty: no /metrics
  // CA of the mothership's certificate; set: use TLS, presenting the client certificate the
  // mothership issues the agent at registration (key and certificate in data_dir).
  std::string tls_ca;
  std::string log_format = "text";
  std::string log_level = "info";
  // When the agent's own schema migrations run: auto (when provisioning finds them pending) or
  // manual (reported, applied only when an operator asks).
  MigrationPolicy migrations = MigrationPolicy::kAuto;
  absl::Duration heartbeat_interval = absl::Seconds(5);
  absl::Duration reconnect_max = absl::Seconds(5);
  std::string postgres_bin_dir;
};

void AddAgentFlags(CLI::App& app, AgentConfig* config);

// Applies the config file (when given), fills defaults (name from the hostname, data dir, LXD instance) and checks combinations.
// kInvalidArgument names the bad setting.
absl::Status FinishAgentConfig(CLI::App& app, AgentConfig* config);

}  // namespace tether::agent
