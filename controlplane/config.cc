// Flags of tether-mothership.
#include "controlplane/config.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/config/flags.h"
#include "common/logging.h"
#include "common/process.h"

namespace tether::controlplane {

void AddMothershipFlags(CLI::App& app, MothershipConfig* c) {
  app.add_option("--config", c->config_file,
                 "YAML file of settings (keys are the long flag names); flags and environment win")
      ->envname("TETHER_MOTHERSHIP_CONFIG");
  app.add_option("--listen", c->listen, "address to serve gRPC on (port 0 picks one)")
      ->envname("TETHER_LISTEN")
      ->capture_default_str();
  app.add_option("--data-dir", c->data_dir,
                 "where the operator token, the address file and (lite mode) PostgreSQL live")
      ->envname("TETHER_DATA_DIR");
  app.add_option("--database-url", c->database_url,
                 "external PostgreSQL (pro mode); without it the mothership runs its own (lite)")
      ->envname("DATABASE_URL");
  app.add_option("--tls-cert", c->tls_cert, "server certificate (PEM)")->envname("TETHER_TLS_CERT");
  app.add_option("--tls-key", c->tls_key, "server private key (PEM)")->envname("TETHER_TLS_KEY");
  app.add_option("--tls-client-ca", c->tls_client_ca,
                 "CA that operators' client certificates must chain to; set: tetherctl must "
                 "present one (agents present the certificates this mothership issues them)")
      ->envname("TETHER_TLS_CLIENT_CA");
  app.add_option("--ca-cert", c->ca_cert,
                 "CA certificate that signs agents' client certificates (PEM); default: a CA "
                 "made on first start and kept in the database, shared by every replica")
      ->envname("TETHER_CA_CERT");
  app.add_option("--ca-key", c->ca_key, "key of --ca-cert (PEM)")->envname("TETHER_CA_KEY");
  common::AddDurationOption(app, "--agent-cert-ttl", &c->agent_cert_ttl,
                            "how long an agent's client certificate is valid; agents renew it "
                            "at two thirds of that",
                            "TETHER_AGENT_CERT_TTL");
  app.add_option("--log-format", c->log_format, "text or json")
      ->envname("TETHER_LOG_FORMAT")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  app.add_option("--log-level", c->log_level, "trace, debug, info, warn or error")
      ->envname("TETHER_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  common::AddDurationOption(app, "--heartbeat-ttl", &c->heartbeat_ttl,
                            "an agent silent for this long is lost", "TETHER_HEARTBEAT_TTL");
  app.add_option("--admit-rate", c->admit_rate,
                 "new agent streams admitted a second; the rest are told when to come back "
                 "(0: no limit)")
      ->envname("TETHER_ADMIT_RATE")
      ->capture_default_str();
  app.add_option("--admit-burst", c->admit_burst, "new agent streams admitted at once")
      ->envname("TETHER_ADMIT_BURST")
      ->capture_default_str();
  app.add_option("--stream-queue-limit", c->stream_queue_limit,
                 "messages an agent stream may leave unread before it is closed with "
                 "RESOURCE_EXHAUSTED")
      ->envname("TETHER_STREAM_QUEUE_LIMIT")
      ->capture_default_str();
  app.add_option("--metrics-listen", c->metrics_listen,
                 "serve /metrics in Prometheus's format over plain HTTP on this host:port (port "
                 "0 picks one; the address is written to DATA_DIR/metrics.addr); off when unset")
      ->envname("TETHER_METRICS_LISTEN");
  app.add_option("--postgres-bin-dir", c->postgres_bin_dir,
                 "PostgreSQL server binaries for lite mode")
      ->envname("TETHER_POSTGRES_BIN_DIR");
}

absl::Status FinishMothershipConfig(CLI::App& app, MothershipConfig* c) {
  if (!c->config_file.empty()) {
    if (auto st = common::ApplyConfigFile(app, c->config_file); !st.ok()) return st;
  }
  if (c->data_dir.empty()) {
    const char* home = std::getenv("HOME");
    c->data_dir = common::RunningAsRoot() || home == nullptr
                      ? "/var/lib/tether/mothership"
                      : absl::StrCat(home, "/.local/state/tether/mothership");
  }
  if (c->tls_cert.empty() != c->tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!c->tls_client_ca.empty() && c->tls_cert.empty()) {
    return absl::InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
  }
  if (c->ca_cert.empty() != c->ca_key.empty()) {
    return absl::InvalidArgumentError("--ca-cert and --ca-key go together");
  }
  if (!c->ca_cert.empty() && c->tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "--ca-cert signs agents' certificates, which are issued only with TLS: give --tls-cert "
        "and --tls-key too");
  }
  if (c->agent_cert_ttl < absl::Minutes(10) || c->agent_cert_ttl > absl::Hours(24 * 365)) {
    return absl::InvalidArgumentError("--agent-cert-ttl must be between 10m and 8760h (a year)");
  }
  if (c->heartbeat_ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--heartbeat-ttl must be positive");
  }
  if (!(c->admit_rate >= 0 && c->admit_rate <= 1e6)) {
    return absl::InvalidArgumentError("--admit-rate must be between 0 (no limit) and 1000000");
  }
  if (c->admit_burst < 1 || c->admit_burst > 1000000) {
    return absl::InvalidArgumentError("--admit-burst must be between 1 and 1000000");
  }
  if (c->stream_queue_limit < 1 || c->stream_queue_limit > 1000000) {
    return absl::InvalidArgumentError("--stream-queue-limit must be between 1 and 1000000");
  }
  return absl::OkStatus();
}

}  // namespace tether::controlplane
