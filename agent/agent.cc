// Agent wiring: channel, provisioner, loops.
#include "agent/agent.h"

#include <spdlog/spdlog.h>

#include <atomic>

#include "agent/metrics.h"
#include "common/logging.h"

#include "absl/strings/str_cat.h"
#include "agent/provision/local_provisioner.h"
#include "agent/provision/lxd/lxd_provisioner.h"
#include "common/files.h"
#include "common/grpc/target.h"
#include "common/grpc/tls.h"

namespace tether::agent {
namespace {

// gRPC refuses to start a server with no method of its own besides the default health
// service; this answers UNIMPLEMENTED to anything else that is called.
class NoOtherMethods final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
    class Unimplemented final : public grpc::ServerGenericBidiReactor {
     public:
      Unimplemented() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not a method here")); }
      void OnDone() override { delete this; }
    };
    return new Unimplemented();
  }
};

}  // namespace

absl::StatusOr<std::unique_ptr<Provisioner>> MakeProvisioner(const AgentConfig& config,
                                                             common::ProcessRunner* runner,
                                                             common::Clock* clock) {
  if (config.provisioner == ProvisionerKind::kLocal) {
    return std::make_unique<LocalProvisioner>(config.data_dir, config.postgres_bin_dir, runner);
  }
  if (config.provisioner == ProvisionerKind::kLxd) {
    CurlLxdTransportOptions transport;
    transport.socket_path = config.lxd_socket;
    transport.url = config.lxd_url;
    transport.client_cert = config.lxd_cert;
    transport.client_key = config.lxd_key;
    transport.server_ca = config.lxd_server_cert;
    LxdProvisionerOptions options;
    options.instance = config.lxd_instance;
    options.data_dir = config.data_dir;
    options.postgres_address = config.lxd_postgres_address;
    options.bundle_dir = config.lxd_bundle;
    return std::make_unique<LxdProvisioner>(
        options, std::make_unique<CurlLxdTransport>(transport), clock);
  }
  if (config.provisioner == ProvisionerKind::kExternal) {
    return std::make_unique<ExternalProvisioner>(config.database_url);
  }
  return absl::UnimplementedError(
      absl::StrCat("provisioner \"", ProvisionerName(config.provisioner), "\" is not available in this build"));
}

Agent::Agent(AgentConfig config, common::Clock* clock, common::ProcessRunner* runner)
    : config_(std::move(config)), clock_(clock), runner_(runner) {}

Agent::~Agent() { Stop(); }

absl::Status Agent::Start() {
  if (auto st = common::MakeDirs(config_.data_dir, 0755); !st.ok()) return st;
  auto creds = common::MakeChannelCredentials(config_.tls_ca, "", "");
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  // As the mothership's: a mothership slow to answer a ping (busy with a fleet) is not gone.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  // Our own backoff paces reconnects; keep gRPC's channel from waiting longer than ours.
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              static_cast<int>(absl::ToInt64Milliseconds(config_.reconnect_max)));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  // A desired state carries the spec with its files: up to 16 MiB (common/spec/spec.h).
  args.SetMaxReceiveMessageSize(20 << 20);
  auto target = common::ChannelTarget(config_.mothership);
  if (!target.ok()) return target.status();
  if (auto authority = common::ChannelAuthority(config_.mothership); !authority.empty()) {
    args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
  }
  auto channel = grpc::CreateCustomChannel(*target, *creds, args);
  std::string server_ca;
  if (!config_.tls_ca.empty()) {
    auto ca = common::ReadPem(config_.tls_ca, "the CA certificate");
    if (!ca.ok()) return ca.status();
    server_ca = *ca;
  }

  auto provisioner = MakeProvisioner(config_, runner_, clock_);
  if (!provisioner.ok()) return provisioner.status();
  provisioner_ = *std::move(provisioner);
  ProvisioningOptions provisioning;
  provisioning.migration_policy = config_.migrations;
  if (config_.provisioner == ProvisionerKind::kExternal) provisioning.own_database = "";  // the URL names it
  provisioning_ = std::make_unique<ProvisioningLoop>(provisioner_.get(), &health_, clock_,
                                                     &random_, provisioning);

  LinkOptions link;
  link.name = config_.name;
  link.cluster = config_.cluster;
  link.bootstrap_token = config_.bootstrap_token;
  link.data_dir = config_.data_dir;
  link.version = TETHER_VERSION;
  link.mode = config_.provisioner == ProvisionerKind::kExternal ? v1::AGENT_MODE_PRO : v1::AGENT_MODE_LITE;
  link.heartbeat_interval = config_.heartbeat_interval;
  link.backoff.max = config_.reconnect_max;
  // PostgreSQL is provisioned, and revisions reconciled, only for an agent the mothership
  // accepted.
  link.on_identity = [this](const Identity& identity) {
    absl::MutexLock lock(&stop_mu_);
    if (!provisioning_thread_.joinable() && !stop_.HasBeenNotified()) {
      if (fence_ != nullptr) {
        fence_->set_cluster(identity.cluster);
        leadership_ = std::make_unique<LeadershipLoop>(
            LeadershipOptions{config_.database_url, identity.cluster, identity.name}, fence_.get(),
            clock_, &random_, [this] { return provisioning_->ready(); },
            [this](v1::AgentRole role, int64_t epoch) { OnRole(role, epoch); });
        leadership_thread_ = std::thread([this] { leadership_->Run(&stop_); });
      }
      provisioning_thread_ = std::thread([this] { provisioning_->Run(&stop_); });
      reconcile_thread_ = std::thread([this] {
        reconcile_->Run(&stop_, [this](int64_t applied) {
          link_->SetAppliedRevision(applied);
          if (fence_ == nullptr) StartCommands();  // a pro agent: once it leads (OnRole)
        });
      });
    }
  };
  link.on_desired_state = [this](int64_t revision, const v1::ClusterSpec& spec,
                                 const std::string& command_id) {
    reconcile_->Desire(revision, spec, command_id);
  };
  link.on_command = [this](const v1::Command& command) { commands_->OnCommand(command); };
  link.on_stream_closed = [this] { commands_->StreamClosed(); };
  if (!server_ca.empty()) {
    // With TLS the agent proves who it is with the certificate issued at registration.
    link.certificate = std::make_shared<ClientCertificate>(config_.data_dir);
    link.channel_with_certificate = [server_ca, target = *target, args](
                                        const std::string& certificate, const std::string& key) {
      grpc::SslCredentialsOptions tls;
      tls.pem_root_certs = server_ca;
      tls.pem_cert_chain = certificate;
      tls.pem_private_key = key;
      return grpc::CreateCustomChannel(target, grpc::SslCredentials(tls), args);
    };
  }
  if (config_.provisioner == ProvisionerKind::kExternal) {
    fence_ = std::make_unique<WriteFence>();
    health_.SetRole(v1::AGENT_ROLE_STANDBY, 0);
  } else {
    health_.SetRole(v1::AGENT_ROLE_STANDALONE, 0);
  }
  environment_ = std::make_unique<AgentEnvironment>(config_.provisioner, provisioner_.get(),
                                                    provisioning_.get(), fence_.get(), clock_);
  reconcile_ = std::make_unique<ReconcileLoop>(
      environment_.get(), clock_, &random_,
      [this](const ReconcileReport& report) {
        AgentMetrics::Process().Reconciled(report.status.ok(), report.took);
        link_->Reconciled(report);
      });
  link_ = std::make_unique<MothershipLink>(link, channel, &health_, clock_, &random_);
  CommandDispatcher::Callbacks commands;
  commands.schedule = [this](CommandDispatcher::Task task) { reconcile_->Schedule(std::move(task)); };
  commands.schedule_after = [this](absl::Duration delay, CommandDispatcher::Task task) {
    reconcile_->Schedule(std::move(task), delay);
  };
  commands.send = [this](const v1::CommandUpdate& update) {
    return link_->SendCommandUpdate(update);
  };
  commands.run = [this](const CommandRecord& record, const CommandIo& io, CommandStops stops) {
    return RunCommand(record, io, stops);
  };
  commands.tenants_changed = [this] { reconcile_->ReconcileNow(); };
  commands_ = std::make_unique<CommandDispatcher>(clock_, std::move(commands));
  // A pro agent acts once it leads.
  if (fence_ != nullptr) reconcile_->SetActing(false);
  reconcile_->set_command_lines(
      [this](const std::string& command_id) { return commands_->ApplyLines(command_id); });

  if (!config_.metrics_listen.empty()) {
    auto metrics = common::MetricsServer::Start(config_.metrics_listen,
                                                AgentMetrics::Process().registry());
    if (!metrics.ok()) return metrics.status();
    metrics_server_ = *std::move(metrics);
    if (auto st = common::WriteFileAtomically(config_.data_dir + "/metrics.addr",
                                              metrics_server_->address() + "\n", 0644);
        !st.ok()) {
      return st;
    }
    spdlog::info("metrics served at http://{}/metrics", metrics_server_->address());
  }
  if (!config_.health_listen.empty()) {
    grpc::EnableDefaultHealthCheckService(true);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(config_.health_listen, grpc::InsecureServerCredentials(), &port);
    health_generic_ = std::make_unique<NoOtherMethods>();
    builder.RegisterCallbackGenericService(health_generic_.get());
    health_server_ = builder.BuildAndStart();
    if (health_server_ == nullptr || port == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot serve health on ", config_.health_listen));
    }
    health_server_->GetHealthCheckService()->SetServingStatus(false);
    if (auto st = common::WriteFileAtomically(config_.data_dir + "/health.addr",
                                              absl::StrCat("127.0.0.1:", port, "\n"), 0644);
        !st.ok()) {
      return st;
    }
    spdlog::info("health endpoint listening port={} (SERVING once PostgreSQL is ready)", port);
  }

  // A change of PostgreSQL's state reaches the mothership at once, not with the next heartbeat
  // (seconds later): operators see an agent ready, or failing, when it is. The health endpoint
  // follows the same changes.
  // (The provisioning and leadership loops both set health, from their own threads.)
  health_.SetListener([this, last = std::make_shared<std::atomic<int>>(
                                 v1::PROVISIONING_STATE_UNSPECIFIED)](const v1::Health& h) {
    if (health_server_ != nullptr) {
      health_server_->GetHealthCheckService()->SetServingStatus(
          h.state() == v1::PROVISIONING_STATE_READY);
    }
    if (last->exchange(h.state()) != h.state()) link_->SendHealthNow();
  });

  spdlog::info("agent starting name={} mothership={} provisioner={} data_dir={}", config_.name,
               config_.mothership, ProvisionerName(config_.provisioner), config_.data_dir);
  link_thread_ = std::thread([this] {
    link_status_ = link_->Run(&stop_);
    link_done_.Notify();
  });
  return absl::OkStatus();
}

CommandResult Agent::RunCommand(const CommandRecord& record, const CommandIo& io,
                               CommandStops stops) {
  ReprovisionFn reprovision = [this](const StepFn&, const absl::Notification* stop) {
    return provisioning_->Reprovision(stop);
  };
  if (record.command.has_reprovision()) {  // needs no spec, nor a tenant
    CommandRunner runner(nullptr, nullptr, clock_, reprovision);
    return runner.Run(record.command, v1::ClusterSpec(), record.detail, io, stops);
  }
  auto env = reconcile_->ForCommand(record.command.revision());
  if (!env.ok()) {
    CommandResult result{v1::COMMAND_STATE_FAILED, std::string(env.status().message()), false};
    // No desired state yet, PostgreSQL not ready: run later, never failed for it.
    result.again = absl::IsUnavailable(env.status());
    return result;
  }
  CommandRunner runner(env->admin.get(), env->records, clock_, reprovision);
  return runner.Run(record.command, env->spec, record.detail, io, stops);
}

void Agent::StartCommands() {
  common::BackoffPolicy policy{absl::Seconds(1), absl::Seconds(30)};
  common::Backoff backoff(policy, &random_);
  for (;;) {
    auto records = environment_->Commands();
    absl::Status st =
        records.ok() ? commands_->ResumeUnfinished(*records) : records.status();
    if (st.ok()) return;
    const absl::Duration delay = backoff.Next();
    spdlog::warn("cannot read the command records retry_in={} reason=\"{}\"",
                 absl::FormatDuration(delay), st.message());
    if (!clock_->SleepFor(delay, &stop_)) return;
  }
}

void Agent::OnRole(v1::AgentRole role, int64_t epoch) {
  health_.SetRole(role, epoch);
  // The mothership hears of it before anything this agent does as leader (it routes the
  // cluster's commands by it).
  link_->SendHealthNow();
  if (role != v1::AGENT_ROLE_LEADER) {
    reconcile_->SetActing(false);
    return;
  }
  // What the last leader left under way is resumed before any reconcile (the loop runs tasks
  // first); records that cannot be read now are tried again on the reconcile thread.
  auto records = environment_->Commands();
  absl::Status st = records.ok() ? commands_->ResumeUnfinished(*records) : records.status();
  if (!st.ok()) {
    spdlog::warn("cannot read the command records reason=\"{}\"; trying again", st.message());
    reconcile_->Schedule([this](const absl::Notification*) { StartCommands(); });
  }
  reconcile_->SetActing(true);
}

absl::Status Agent::Wait() {
  link_done_.WaitForNotification();
  return link_status_;
}

void Agent::RequestStop() {
  absl::MutexLock lock(&stop_mu_);
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (link_ != nullptr) link_->Cancel();
}

void Agent::Stop() {
  RequestStop();
  if (link_thread_.joinable()) link_thread_.join();
  // The link thread, the only one that starts the provisioning thread, has ended.
  if (provisioning_thread_.joinable()) provisioning_thread_.join();
  if (leadership_thread_.joinable()) leadership_thread_.join();
  if (reconcile_thread_.joinable()) reconcile_thread_.join();
  if (health_server_ != nullptr) {
    health_.SetListener(nullptr);
    health_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    health_server_.reset();
  }
}

}  // namespace tether::agent
