// MothershipConfig: every setting of tether-mothership, filled from flags, then TETHER_*
// environment variables (DATABASE_URL for the database), then defaults; validated once.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace tether::controlplane {

struct MothershipConfig {
  std::string config_file;  // YAML: long flag names as keys, below flags and environment
  std::string listen = "127.0.0.1:7400";
  std::string data_dir;      // default: /var/lib/tether/mothership as root, else ~/.local/state
  std::string database_url;  // empty: lite mode, own PostgreSQL under data_dir/postgres
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;  // set: operators (tetherctl) must present a certificate it signed
  // The CA that signs agents' client certificates when TLS is on; empty: the database's.
  std::string ca_cert;
  std::string ca_key;
  absl::Duration agent_cert_ttl = absl::Hours(24);  // agents renew at two thirds of it
  std::string log_format = "text";
  std::string log_level = "info";
  absl::Duration heartbeat_ttl = absl::Seconds(15);
  double admit_rate = 1000;  // new agent streams a second (0: no limit)
  int admit_burst = 1000;
  int stream_queue_limit = 4096;  // unwritten messages per agent stream before it is closed
  std::string postgres_bin_dir;  // default: the newest /usr/lib/postgresql/*/bin
  std::string metrics_listen;    // empty: no /metrics
};

// Declares the flags on `app`, writing into `config`.
void AddMothershipFlags(CLI::App& app, MothershipConfig* config);

// Applies the config file (when given), fills defaults and checks combinations. kInvalidArgument names the bad setting.
absl::Status FinishMothershipConfig(CLI::App& app, MothershipConfig* config);

}  // namespace tether::controlplane
