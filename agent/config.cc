// Flags of tether-agent.
#include "agent/config.h"

#include <unistd.h>

#include <cstdlib>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/config/flags.h"
#include "common/process.h"

namespace tether::agent {

const char* ProvisionerName(ProvisionerKind kind) {
  switch (kind) {
    case ProvisionerKind::kLocal: return "local";
    case ProvisionerKind::kLxd: return "lxd";
    case ProvisionerKind::kExternal: return "external";
  }
  return "?";
}

void AddAgentFlags(CLI::App& app, AgentConfig* c) {
  app.add_option("--config", c->config_file,
                 "YAML file of settings (keys are the long flag names); flags and environment win")
      ->envname("TETHER_AGENT_CONFIG");
  app.add_option("--mothership", c->mothership,
                 "the mothership's HOST:PORT, or replicas' IP:PORT,IP:PORT (the agent moves to "
                 "another when its replica goes away)")
      ->envname("TETHER_MOTHERSHIP")
      ->capture_default_str();
  app.add_option("--bootstrap-token", c->bootstrap_token,
                 "token from `tetherctl tokens create`; needed to register the first time")
      ->envname("TETHER_BOOTSTRAP_TOKEN");
  app.add_option("--name", c->name, "this agent's name (default: the hostname)")
      ->envname("TETHER_NAME");
  app.add_option("--cluster", c->cluster, "cluster to join (default: the token's)")
      ->envname("TETHER_CLUSTER");
  app.add_option("--data-dir", c->data_dir, "where the agent keeps its identity and PostgreSQL")
      ->envname("TETHER_DATA_DIR");
  app.add_option("--provisioner", c->provisioner, "how PostgreSQL is provided: local, lxd or external")
      ->envname("TETHER_PROVISIONER")
      ->transform(CLI::CheckedTransformer(std::map<std::string, ProvisionerKind>{
          {"local", ProvisionerKind::kLocal},
          {"lxd", ProvisionerKind::kLxd},
          {"external", ProvisionerKind::kExternal}}))
      ->default_str("local");
  app.add_option("--database-url", c->database_url, "external PostgreSQL (pro mode)")
      ->envname("DATABASE_URL");
  app.add_option("--lxd-socket", c->lxd_socket, "LXD's unix socket")
      ->envname("TETHER_LXD_SOCKET")
      ->capture_default_str();
  app.add_option("--lxd-url", c->lxd_url, "LXD over HTTPS instead of the socket")
      ->envname("TETHER_LXD_URL");
  app.add_option("--lxd-cert", c->lxd_cert, "client certificate for --lxd-url")
      ->envname("TETHER_LXD_CERT");
  app.add_option("--lxd-key", c->lxd_key, "client key for --lxd-url")->envname("TETHER_LXD_KEY");
  app.add_option("--lxd-server-cert", c->lxd_server_cert,
                 "LXD's certificate (or its CA) to trust for --lxd-url; default: the system's CAs")
      ->envname("TETHER_LXD_SERVER_CERT");
  app.add_option("--lxd-instance", c->lxd_instance, "the LXD instance to provision in (default: --name)")
      ->envname("TETHER_LXD_INSTANCE");
  app.add_option("--lxd-postgres-address", c->lxd_postgres_address,
                 "HOST:PORT where the instance's PostgreSQL answers (a proxy device from a host)")
      ->envname("TETHER_LXD_POSTGRES_ADDRESS")
      ->capture_default_str();
  app.add_option("--lxd-bundle", c->lxd_bundle,
                 "directory of packages to push into the instance and install offline")
      ->envname("TETHER_LXD_BUNDLE");
  app.add_option("--health-listen", c->health_listen,
                 "serve grpc.health.v1 on HOST:PORT (SERVING once PostgreSQL is ready)")
      ->envname("TETHER_HEALTH_LISTEN");
  app.add_option("--metrics-listen", c->metrics_listen,
                 "serve /metrics in Prometheus's format over plain HTTP on HOST:PORT (port 0 "
                 "picks one; the address is written to DATA_DIR/metrics.addr); off when unset")
      ->envname("TETHER_METRICS_LISTEN");
  app.add_option("--tls-ca", c->tls_ca,
                 "CA certificate of the mothership; enables TLS, and with it the agent's own "
                 "client certificate, issued at registration for a key kept in --data-dir")
      ->envname("TETHER_TLS_CA");
  app.add_option("--log-format", c->log_format, "text or json")
      ->envname("TETHER_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", c->log_level, "trace, debug, info, warn or error")
      ->envname("TETHER_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.add_option("--migrations", c->migrations,
                 "auto: apply the agent's pending own migrations when provisioning; manual: report only")
      ->envname("TETHER_MIGRATIONS")
      ->transform(CLI::CheckedTransformer(std::map<std::string, MigrationPolicy>{
          {"auto", MigrationPolicy::kAuto}, {"manual", MigrationPolicy::kManual}}))
      ->default_str("auto");
  common::AddDurationOption(app, "--heartbeat-interval", &c->heartbeat_interval,
                            "how often to send a heartbeat", "TETHER_HEARTBEAT_INTERVAL");
  common::AddDurationOption(app, "--reconnect-max", &c->reconnect_max,
                            "longest wait between reconnect attempts", "TETHER_RECONNECT_MAX");
  app.add_option("--postgres-bin-dir", c->postgres_bin_dir,
                 "PostgreSQL server binaries for the local provisioner")
      ->envname("TETHER_POSTGRES_BIN_DIR");
}

absl::Status FinishAgentConfig(CLI::App& app, AgentConfig* c) {
  if (!c->config_file.empty()) {
    if (auto st = common::ApplyConfigFile(app, c->config_file); !st.ok()) return st;
  }
  if (c->name.empty()) {
    char host[256] = {};
    if (::gethostname(host, sizeof(host) - 1) != 0) {
      return absl::InvalidArgumentError("no --name given and the hostname cannot be read");
    }
    c->name = absl::AsciiStrToLower(host);
  }
  if (c->data_dir.empty()) {
    const char* home = std::getenv("HOME");
    c->data_dir = common::RunningAsRoot() || home == nullptr
                      ? "/var/lib/tether/agent"
                      : absl::StrCat(home, "/.local/state/tether/agent");
  }
  if (c->lxd_instance.empty()) c->lxd_instance = c->name;
  if (c->provisioner == ProvisionerKind::kExternal && c->database_url.empty()) {
    return absl::InvalidArgumentError("--provisioner external needs --database-url or DATABASE_URL");
  }
  if (!c->database_url.empty() && c->provisioner != ProvisionerKind::kExternal) {
    if (c->provisioner != ProvisionerKind::kLocal) {
      return absl::InvalidArgumentError(absl::StrCat("--database-url cannot be used with --provisioner ",
                                                     ProvisionerName(c->provisioner)));
    }
    c->provisioner = ProvisionerKind::kExternal;  // a database URL means pro mode
  }
  if (!c->lxd_url.empty() && (c->lxd_cert.empty() || c->lxd_key.empty())) {
    return absl::InvalidArgumentError("--lxd-url needs --lxd-cert and --lxd-key");
  }
  if (c->heartbeat_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--heartbeat-interval must be positive");
  }
  if (c->reconnect_max <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--reconnect-max must be positive");
  }
  return absl::OkStatus();
}

}  // namespace tether::agent
