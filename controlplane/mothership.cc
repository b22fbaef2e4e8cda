// Mothership start-up sequence and housekeeping loop.
#include "controlplane/mothership.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"

#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/backoff.h"
#include "common/files.h"
#include "common/grpc/parse_errors.h"
#include "common/grpc/tls.h"
#include "common/secrets.h"
#include "controlplane/schema.h"

namespace tether::controlplane {
namespace {

constexpr int kMaxMessageBytes = 20 << 20;

// Connections to the mothership's database, shared by every part of it.
constexpr int kDatabaseConnections = 16;
// Threads for streams' work (a Hello's credential check and reads, acks, followers' reads).
// Measured at 10,000 agents: with 12, the acks of one apply took the database connections and
// the cores while the revision was still going out (fan-out p99 11 s instead of 1.7 s) and
// `get agents` waited for connections (9.4 s instead of 1.8 s).
constexpr int kStreamWorkers = 4;

// Whether HOST:PORT only takes connections from this machine.
bool IsLoopback(const std::string& listen) {
  absl::string_view host = listen;
  host = host.substr(0, host.rfind(':'));
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

}  // namespace

Mothership::Mothership(MothershipConfig config, common::Clock* clock,
                       common::ProcessRunner* runner)
    : config_(std::move(config)), clock_(clock), runner_(runner) {}

Mothership::~Mothership() { Shutdown(); }

absl::Status Mothership::StartServer() {
  auto creds = common::MakeServerCredentials(config_.tls_cert, config_.tls_key);
  if (!creds.ok()) return creds.status();
  if (!config_.tls_client_ca.empty()) {
    auto operator_ca = common::ReadPem(config_.tls_client_ca, "--tls-client-ca");
    if (!operator_ca.ok()) return operator_ca.status();
    control_deps_.operator_ca_pem = *operator_ca;
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  agent_deps_.lifecycle = &lifecycle_;
  control_deps_.lifecycle = &lifecycle_;
  agent_service_ = MakeAgentService(&agent_deps_);
  control_service_ = MakeControlService(&control_deps_);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config_.listen, *creds, &port_);
  builder.RegisterService(agent_service_.get());
  builder.RegisterService(control_service_.get());
  // A stream whose agent vanished without closing it (a container deleted with its network)
  // is noticed within 40 s, so its name can register again. The answer may take 20 s: an agent
  // busy with a fleet's burst (or a host short of CPU) is slow, not gone, and dropping it only
  // adds its reconnect to the burst.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  // Agents ping through idle periods; let their keepalives through.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5000);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
  // A spec with its files may be 16 MiB (common/spec/spec.h); each field is bounded on its own.
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  common::RouteProtobufLogs();
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  interceptors.push_back(common::MakeParseErrorInterceptorFactory());
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    return absl::InvalidArgumentError(absl::StrCat("cannot listen on ", config_.listen,
                                                   " (in use, or not an address)"));
  }
  server_->GetHealthCheckService()->SetServingStatus(false);
  spdlog::info("listening address={} port={} tls={}", config_.listen, port_,
               config_.tls_cert.empty() ? "off" : "on");
  if (config_.tls_cert.empty() && !IsLoopback(config_.listen)) {
    spdlog::warn(
        "WITHOUT TLS on {}, beyond loopback: bootstrap tokens, agent credentials and operator "
        "tokens cross the network in clear, and agents are not told apart by certificate. "
        "Give --tls-cert/--tls-key (and --tls-client-ca), or listen on 127.0.0.1 for "
        "development only.",
        config_.listen);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Mothership::PrepareDatabase() {
  if (!config_.database_url.empty()) {
    spdlog::info("mode=pro database=external");
    return config_.database_url;
  }
  spdlog::info("mode=lite database=local dir={}/postgres", config_.data_dir);
  auto password = common::ReadOrCreateSecretFile(config_.data_dir + "/postgres.password");
  if (!password.ok()) return password.status();
  common::LocalPostgresOptions options;
  options.root = config_.data_dir + "/postgres";
  options.bin_dir = config_.postgres_bin_dir;
  options.password = *password;
  local_postgres_ = std::make_unique<common::LocalPostgres>(options, runner_);
  common::Backoff backoff({absl::Milliseconds(500), absl::Seconds(10)}, &random_);
  for (;;) {
    absl::Status st = local_postgres_->EnsureInitialized();
    if (st.ok()) st = local_postgres_->EnsureRunning();
    if (st.ok()) break;
    // No PostgreSQL installed, or a data dir it cannot use: waiting will not help.
    if (absl::IsNotFound(st) || absl::IsFailedPrecondition(st) || absl::IsPermissionDenied(st)) {
      return st;
    }
    const absl::Duration delay = backoff.Next();
    spdlog::warn("local postgres not up yet retry_in={} reason=\"{}\"",
                 absl::FormatDuration(delay), st.message());
    if (!clock_->SleepFor(delay, &stop_)) return absl::CancelledError("shutting down");
  }
  // The cluster's own database for our tables, created once.
  const std::string admin_url = local_postgres_->ConnectionUrl("postgres");
  if (auto st = WaitForDatabase(admin_url); !st.ok()) return st;
  auto conn = common::Connect(admin_url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    if (tx.exec("SELECT 1 FROM pg_database WHERE datname = 'tether'").empty()) {
      tx.exec("CREATE DATABASE tether");
      spdlog::info("created database tether");
    }
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
  return local_postgres_->ConnectionUrl("tether");
}

absl::Status Mothership::WaitForDatabase(const std::string& url) {
  common::Backoff backoff({absl::Milliseconds(250), absl::Seconds(10)}, &random_);
  for (;;) {
    auto ping = common::Ping(url);
    if (ping.ok()) {
      spdlog::info("database answers version={} select1_ms={:.2f}", ping->server_version,
                   absl::ToDoubleMilliseconds(ping->select1_latency));
      return absl::OkStatus();
    }
    const absl::Duration delay = backoff.Next();
    spdlog::warn("database not answering retry_in={} reason=\"{}\"", absl::FormatDuration(delay),
                 ping.status().message());
    if (!clock_->SleepFor(delay, &stop_)) return absl::CancelledError("shutting down");
  }
}

absl::Status Mothership::Start() {
  if (auto st = common::MakeDirs(config_.data_dir, 0755); !st.ok()) return st;
  if (auto st = StartServer(); !st.ok()) return st;
  if (!config_.metrics_listen.empty()) {
    auto metrics = common::MetricsServer::Start(config_.metrics_listen, metrics_.registry());
    if (!metrics.ok()) return metrics.status();
    metrics_server_ = *std::move(metrics);
    const std::string& address = metrics_server_->address();
    if (auto st = common::WriteFileAtomically(config_.data_dir + "/metrics.addr", address + "\n",
                                              0644);
        !st.ok()) {
      return st;
    }
    spdlog::info("metrics served at http://{}/metrics", address);
  }

  auto url = PrepareDatabase();
  if (!url.ok()) return url.status();
  database_url_ = *url;
  if (auto st = WaitForDatabase(database_url_); !st.ok()) return st;
  if (auto st = MigrateMothershipSchema(database_url_, clock_); !st.ok()) return st;

  pool_ = std::make_unique<common::PgPool>(database_url_, kDatabaseConnections);
  pool_->set_wait_observer([this](absl::Duration waited) { metrics_.PoolWait(waited); });
  if (config_.database_url.empty()) {
    bus_ = std::make_unique<InProcessChangeBus>();  // lite: the only replica
  } else {
    // Pro: replicas may share the database; what changes here reaches them, and theirs us.
    auto bus = std::make_unique<PgChangeBus>(database_url_, clock_, &random_);
    bus->Start();
    spdlog::info("change bus: LISTEN/NOTIFY on {} with the other replicas", PgChangeBus::kChannel);
    pg_bus_ = bus.get();
    bus_ = std::move(bus);
  }
  events_ = std::make_unique<EventLog>(pool_.get(), clock_, bus_.get());
  streams_ = std::make_unique<StreamRegistry>(bus_.get(), &metrics_);
  agents_ = std::make_unique<AgentRegistry>(pool_.get(), events_.get(), bus_.get(), streams_.get(), clock_,
                                            config_.heartbeat_ttl, &metrics_);
  tokens_ = std::make_unique<TokenStore>(pool_.get(), events_.get(), clock_);

  const std::string token_file = config_.data_dir + "/operator.token";
  auto created = tokens_->EnsureOperatorToken([&](const std::string& secret) {
    return common::WriteFileAtomically(token_file, secret + "\n", 0600);
  });
  if (!created.ok()) return created.status();
  if (*created) {
    spdlog::info("operator token created file={}", token_file);
  } else if (!std::filesystem::exists(token_file)) {
    spdlog::info("an operator token exists already; it is not in {} (another replica or data "
                 "dir made it)", token_file);
  }

  if (!config_.tls_cert.empty()) {
    auto certificates = AgentCertificates::Open(pool_.get(), config_.ca_cert, config_.ca_key,
                                                config_.agent_cert_ttl, clock_);
    if (!certificates.ok()) return certificates.status();
    certificates_ = *std::move(certificates);
    agent_deps_.certificates = certificates_.get();
  }

  reports_ = std::make_unique<AgentReports>(pool_.get(), events_.get(), clock_);
  specs_ = std::make_unique<SpecStore>(pool_.get(), events_.get(), bus_.get(), clock_);
  commands_ = std::make_unique<CommandStore>(pool_.get(), events_.get(), bus_.get(), clock_,
                                             &metrics_);
  session_backend_ = std::make_unique<StoreSessionBackend>(
      agents_.get(), reports_.get(), specs_.get(), commands_.get(), certificates_.get());
  blocking_ = std::make_unique<common::WorkPool>(kStreamWorkers);
  heartbeats_ = std::make_unique<common::WorkPool>(2);
  agent_deps_.agents = agents_.get();
  agent_deps_.streams = streams_.get();
  agent_deps_.sessions = session_backend_.get();
  agent_deps_.blocking = blocking_.get();
  agent_deps_.heartbeats = heartbeats_.get();
  agent_deps_.metrics = &metrics_;
  agent_deps_.stream_queue_limit = static_cast<size_t>(config_.stream_queue_limit);
  admission_ = std::make_unique<Admission>(config_.admit_rate, config_.admit_burst, clock_);
  agent_deps_.admission = admission_.get();
  control_deps_.agents = agents_.get();
  control_deps_.tokens = tokens_.get();
  control_deps_.events = events_.get();
  control_deps_.specs = specs_.get();
  control_deps_.reports = reports_.get();
  control_deps_.commands = commands_.get();
  control_deps_.bus = bus_.get();
  control_deps_.blocking = blocking_.get();
  lifecycle_.ready.store(true);
  server_->GetHealthCheckService()->SetServingStatus(true);
  housekeeping_ = std::thread([this] { Housekeeping(); });

  // Where a client on this machine reaches us: the listen host, unless it is a wildcard.
  std::string host = config_.listen.substr(0, config_.listen.rfind(':'));
  if (host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::") host = "127.0.0.1";
  const std::string address = absl::StrCat(host, ":", port_);
  if (auto st = common::WriteFileAtomically(config_.data_dir + "/mothership.addr", address + "\n", 0644);
      !st.ok()) {
    return st;
  }
  spdlog::info("mothership ready port={} data_dir={}", port_, config_.data_dir);
  return absl::OkStatus();
}

void Mothership::Housekeeping() {
  const absl::Duration sweep_every = std::max(config_.heartbeat_ttl / 3, absl::Milliseconds(100));
  absl::Time next_sweep = clock_->Now() + sweep_every;
  for (;;) {
    const bool stopping = !clock_->SleepFor(absl::Milliseconds(250), &stop_);
    absl::Status flushed = agents_->FlushHeartbeats();
    if (!flushed.ok() && database_up_) {
      spdlog::warn("heartbeat flush failed reason=\"{}\"", flushed.message());
    }
    if (stopping) return;
    FollowDatabase(flushed.ok() ? ProbeDatabase() : flushed);
    // Liveness is judged only from sightings that were written.
    if (flushed.ok() && database_up_ && clock_->Now() >= next_sweep) {
      next_sweep = clock_->Now() + sweep_every;
      if (auto st = agents_->SweepLost(); !st.ok()) {
        spdlog::warn("liveness sweep failed reason=\"{}\"", st.message());
      }
    }
  }
}

absl::Status Mothership::ProbeDatabase() {
  return pool_->Run([](pqxx::connection& c) {
    pqxx::nontransaction tx(c);
    tx.exec("SELECT 1");
    return absl::OkStatus();
  });
}

void Mothership::FollowDatabase(const absl::Status& reached) {
  const bool up = reached.ok();
  if (up == database_up_ || lifecycle_.stopping.load()) return;
  database_up_ = up;
  // Load balancers and probes stop sending work that could only fail, and send it again.
  server_->GetHealthCheckService()->SetServingStatus(up);
  if (up) {
    spdlog::info("database reachable again; health SERVING");
  } else {
    spdlog::error("database unavailable; health NOT_SERVING until it returns reason=\"{}\"",
                  reached.message());
  }
}

void Mothership::RequestStop() {
  absl::MutexLock lock(&stop_mu_);
  if (!stop_.HasBeenNotified()) stop_.Notify();
}

void Mothership::Shutdown() {
  RequestStop();
  if (shut_down_) return;
  shut_down_ = true;
  lifecycle_.stopping.store(true);
  // Followers' streams never end by themselves: end them now rather than at the deadline.
  if (bus_ != nullptr) bus_->Publish({Change::Kind::kShutdown, "", "", 0});
  if (server_ != nullptr) {
    server_->GetHealthCheckService()->SetServingStatus(false);
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  if (housekeeping_.joinable()) housekeeping_.join();
  if (pg_bus_ != nullptr) pg_bus_->Stop();
  // Lite mode's PostgreSQL serves only us. (After a crash it keeps running, and the next
  // start reuses it.)
  if (local_postgres_ != nullptr && local_postgres_->IsRunning().value_or(false)) {
    if (auto st = local_postgres_->Stop(); !st.ok()) {
      spdlog::warn("local postgres did not stop reason=\"{}\"", st.message());
    } else {
      spdlog::info("local postgres stopped");
    }
  }
  spdlog::info("mothership stopped");
}

}  // namespace tether::controlplane
