// LocalProvisioner: the password file, then initdb and pg_ctl through LocalPostgres.
#include "agent/provision/local_provisioner.h"

#include "absl/strings/ascii.h"
#include "common/files.h"
#include "common/secrets.h"

namespace tether::agent {

LocalProvisioner::LocalProvisioner(std::string data_dir, std::string bin_dir,
                                   common::ProcessRunner* runner, bool durable)
    : data_dir_(std::move(data_dir)), bin_dir_(std::move(bin_dir)), runner_(runner), durable_(durable) {}

absl::Status LocalProvisioner::Provision(const ProgressFn& progress) {
  if (postgres_ == nullptr) {
    if (auto st = common::MakeDirs(data_dir_, 0755); !st.ok()) return st;
    auto password = common::ReadOrCreateSecretFile(data_dir_ + "/postgres.password");
    if (!password.ok()) return password.status();
    common::LocalPostgresOptions options;
    options.root = data_dir_ + "/postgres";
    options.bin_dir = bin_dir_;
    options.password = *password;
    options.durable = durable_;
    postgres_ = std::make_unique<common::LocalPostgres>(options, runner_);
  }
  progress("initdb (unless the cluster exists)");
  if (auto st = postgres_->EnsureInitialized(); !st.ok()) return st;
  progress("pg_ctl start (unless running)");
  return postgres_->EnsureRunning();
}

std::string LocalProvisioner::AdminUrl(const std::string& dbname) const {
  return postgres_ == nullptr ? "" : postgres_->ConnectionUrl(dbname);
}

}  // namespace tether::agent
