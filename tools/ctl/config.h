// CtlConfig: where tetherctl finds the mothership and its operator token. Precedence: flags,
// then TETHER_SERVER / TETHER_TOKEN / TETHER_TLS_CA, then the config file (TETHER_CONFIG or
// ~/.config/tether/config, YAML with keys server, token, token_file, tls_ca, tls_client_cert, tls_client_key), then defaults.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "absl/status/status.h"

namespace tether::ctl {

struct CtlConfig {
  std::string server;
  std::string token;
  std::string tls_ca;
  std::string tls_client_cert;
  std::string tls_client_key;
  std::string output = "table";
  std::string config_file;  // from TETHER_CONFIG; empty: ~/.config/tether/config
};

inline constexpr char kDefaultServer[] = "127.0.0.1:7400";

// Declares the global flags on `app`.
void AddCtlFlags(CLI::App& app, CtlConfig* config);

// Fills what flags and environment left empty from the config file, then defaults.
// kInvalidArgument for a config file that is not valid YAML or has unknown keys; a missing
// default config file is fine, a missing TETHER_CONFIG file is kNotFound.
absl::Status FinishCtlConfig(CtlConfig* config);

}  // namespace tether::ctl
