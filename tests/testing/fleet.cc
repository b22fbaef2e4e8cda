// Fleet.
#include "tests/testing/fleet.h"

#include <algorithm>

#include <signal.h>

#include <filesystem>

#include <grpcpp/create_channel.h>
#include <gtest/gtest.h>

#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "common/pg/local_postgres.h"
#include "common/process.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/mothership_process.h"

namespace tether::testing {

grpc::health::v1::HealthCheckResponse::ServingStatus HealthOf(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials) {
  auto stub = grpc::health::v1::Health::NewStub(grpc::CreateChannel(address, credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckResponse resp;
  if (!stub->Check(&ctx, {}, &resp).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
  return resp.status();
}

Fleet::Fleet() {
  auto pki = WriteTestPki(dir_.path());
  EXPECT_TRUE(pki.ok()) << pki.status();
  if (pki.ok()) pki_ = *pki;
}

std::vector<std::string> Fleet::MothershipFlags(std::vector<std::string> args) const {
  args.insert(args.end(), {"--tls-cert", pki_.server_cert, "--tls-key", pki_.server_key,
                           "--tls-client-ca", pki_.ca_cert});
  return args;
}

std::vector<std::string> Fleet::CtlArgv(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {TETHER_CTL_BIN,      "--server",          server_,
                                   "--tls-ca",          pki_.ca_cert,        "--tls-client-cert",
                                   pki_.client_cert,    "--tls-client-key",  pki_.client_key};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::shared_ptr<grpc::ChannelCredentials> Fleet::credentials() const {
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = common::ReadFile(pki_.ca_cert).value_or("");
  return grpc::SslCredentials(tls);
}

Fleet::~Fleet() {
  mothership_.reset();
  replicas_.clear();
  agents_.clear();
  // PostgreSQL servers started by pg_ctl outlive the processes that started them.
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    if (entry.is_directory()) StopPostgres(entry.path().string() + "/postgres");
  }
}

void Fleet::StopPostgres(const std::string& root) {
  common::RealProcessRunner runner;
  common::LocalPostgresOptions options;
  options.root = root;
  common::LocalPostgres pg(options, &runner);
  if (std::filesystem::exists(root) && pg.EnsureInitialized().ok()) (void)pg.Stop();
}

bool Fleet::StartMothership(const std::string& listen,
                            const std::vector<std::string>& extra_flags) {
  std::vector<std::string> flags = {"--listen", listen, "--heartbeat-ttl", "3s"};
  flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
  auto m = StartMothershipProcess(TETHER_MOTHERSHIP_BIN, dir_.path() + "/mothership",
                                  MothershipFlags(std::move(flags)),
                                  dir_.path() + "/mothership.log");
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return false;
  mothership_ = std::move(m->process);
  server_ = m->server;
  token_ = m->token;
  return true;
}

void Fleet::KillMothership() {
  mothership_->Signal(SIGKILL);
  mothership_->Wait();
}

bool Fleet::StartMothershipAgain() {
  auto m = StartMothershipProcess(TETHER_MOTHERSHIP_BIN, dir_.path() + "/mothership",
                                  MothershipFlags({"--listen", server_, "--heartbeat-ttl", "3s"}),
                                  dir_.path() + "/mothership-restarted.log");
  EXPECT_TRUE(m.ok()) << m.status();
  if (!m.ok()) return false;
  mothership_ = std::move(m->process);
  return m->server == server_;
}

bool Fleet::StartReplicas(int count, const std::string& database_url) {
  for (int i = 0; i < count; ++i) {
    const std::string name = absl::StrCat("replica-", i);
    auto m = StartMothershipProcess(
        TETHER_MOTHERSHIP_BIN, dir_.path() + "/" + name,
        MothershipFlags({"--listen", "127.0.0.1:0", "--heartbeat-ttl", "3s", "--database-url",
                         database_url}),
        dir_.path() + "/" + name + ".log");
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return false;
    replicas_.push_back(std::move(m->process));
    replica_servers_.push_back(m->server);
    if (i == 0) token_ = m->token;
  }
  server_ = absl::StrJoin(replica_servers_, ",");
  return true;
}

void Fleet::KillReplica(int i) {
  replicas_[i]->Signal(SIGKILL);
  replicas_[i]->Wait();
}

std::string Fleet::CreateToken(const std::string& cluster) {
  std::string out;
  EXPECT_EQ(Ctl({"tokens", "create", "--cluster", cluster}, &out), 0) << out;
  return std::string(absl::StripAsciiWhitespace(out));
}

ChildProcess* Fleet::StartAgent(const std::string& name, const std::string& bootstrap_token,
                                const std::vector<std::string>& extra_flags) {
  std::vector<std::string> argv = {TETHER_AGENT_BIN, "--mothership", server_, "--bootstrap-token",
                                   bootstrap_token, "--name", name, "--data-dir",
                                   dir_.path() + "/" + name, "--reconnect-max", "1s", "--tls-ca",
                                   pki_.ca_cert};
  // Quick heartbeats, unless the test sets its own.
  if (std::find(extra_flags.begin(), extra_flags.end(), "--heartbeat-interval") ==
      extra_flags.end()) {
    argv.insert(argv.end(), {"--heartbeat-interval", "300ms"});
  }
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  agents_[name] = std::make_unique<ChildProcess>(argv, std::vector<std::string>{},
                                                 dir_.path() + "/" + name + ".log");
  return agents_[name].get();
}

void Fleet::KillAgent(const std::string& name) {
  agents_[name]->Signal(SIGKILL);
  agents_[name]->Wait();
}

void Fleet::WipeAgent(const std::string& name) {
  const std::string data = dir_.path() + "/" + name;
  StopPostgres(data + "/postgres");
  std::filesystem::remove_all(data);
}

int Fleet::Ctl(const std::vector<std::string>& args, std::string* out, std::string* err) {
  std::string ignored;
  return RunCommand(CtlArgv(args), {"TETHER_TOKEN=" + token_, "HOME=" + dir_.path()}, out,
                    err != nullptr ? err : &ignored);
}

std::unique_ptr<ChildProcess> Fleet::StartCtl(const std::vector<std::string>& args,
                                              const std::string& log_path) {
  return std::make_unique<ChildProcess>(
      CtlArgv(args), std::vector<std::string>{"TETHER_TOKEN=" + token_, "HOME=" + dir_.path()}, log_path);
}

nlohmann::json Fleet::CtlJson(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"-o", "json"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  if (Ctl(argv, &out) != 0) return nlohmann::json::object();
  return nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
}

int Fleet::FinishedEvents(const std::string& id) {
  const nlohmann::json events = CtlJson({"events", "--limit", "1000"});
  int finished = 0;
  if (!events.contains("events")) return finished;
  for (const auto& e : events["events"]) {
    finished += e.value("kind", "") == "command.finished" &&
                absl::StrContains(e.value("message", ""), absl::StrCat("command ", id, " "));
  }
  return finished;
}

std::map<std::string, std::pair<std::string, int64_t>> Fleet::Tenants(const std::string& cluster,
                                                                      const std::string& agent) {
  std::map<std::string, std::pair<std::string, int64_t>> out;
  auto j = CtlJson({"get", "tenants", "--cluster", cluster});
  if (!j.contains("tenants")) return out;
  for (const auto& t : j["tenants"]) {
    if (t["agent"] != agent) continue;
    out[t["status"]["name"]] = {t["status"]["state"],
                                std::stoll(t["status"].value("version", "0"))};
  }
  return out;
}

std::string Fleet::AgentDatabaseUrl(const std::string& name, const std::string& db) {
  const std::string data = dir_.path() + "/" + name;
  common::RealProcessRunner runner;
  common::LocalPostgresOptions options;
  options.root = data + "/postgres";
  auto password = common::ReadFile(data + "/postgres.password");
  if (password.ok()) options.password = std::string(absl::StripAsciiWhitespace(*password));
  common::LocalPostgres pg(options, &runner);
  if (!pg.EnsureInitialized().ok()) return "";
  return pg.ConnectionUrl(db);
}

std::string Fleet::Logs() {
  std::string logs = absl::StrCat("--- mothership ---\n", mothership_ ? mothership_->Log() : "");
  for (size_t i = 0; i < replicas_.size(); ++i) {
    absl::StrAppend(&logs, "--- replica-", i, " ---\n", replicas_[i]->Log());
  }
  for (const auto& [name, agent] : agents_) absl::StrAppend(&logs, "--- ", name, " ---\n", agent->Log());
  return logs;
}

}  // namespace tether::testing
