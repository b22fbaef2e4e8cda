// LxdProvisioner: PostgreSQL installed and started inside an LXD instance (the agent's own
// container, or another one when the agent runs on the host) by an idempotent install script
// (agent/lxd/install-postgres.sh, embedded at build time) run through LxdClient. Offline sites
// name a host directory of packages (a bundle) that is pushed into the instance first.
// The role password lives in DATA_DIR/postgres.password (0600) and reaches the script only in
// the exec environment. Driven by one thread, the provisioning loop, like every Provisioner.
#pragma once

#include <memory>
#include <string>

#include "absl/time/time.h"
#include "agent/provision/lxd/lxd_client.h"
#include "agent/provision/lxd/lxd_transport.h"
#include "agent/provision/provisioner.h"
#include "common/clock.h"

namespace tether::agent {

struct LxdProvisionerOptions {
  std::string instance;  // the LXD instance to install into
  std::string data_dir;  // the agent's; holds postgres.password
  // HOST:PORT where the instance's PostgreSQL answers, seen from the agent.
  std::string postgres_address = "127.0.0.1:5432";
  // Host directory of .deb / .apk files to install from; empty: the instance downloads them.
  std::string bundle_dir;
  int postgres_major = 15;
  // How long the install script may run (a download over a slow mirror takes minutes).
  absl::Duration install_timeout = absl::Minutes(15);
};

class LxdProvisioner final : public Provisioner {
 public:
  // Reads an existing password file now, so that AdminUrl() works for a PostgreSQL that an
  // earlier run of the agent provisioned (the loop checks before it provisions).
  LxdProvisioner(LxdProvisionerOptions options, std::unique_ptr<LxdTransport> transport,
                 common::Clock* clock);

  std::string name() const override { return "lxd"; }
  // kNotFound "LXD instance X not found"; kFailedPrecondition when it is not running or the
  // bundle is unusable; kUnavailable when the daemon does not answer; kDeadlineExceeded when
  // the script outlives install_timeout; kInternal when the script exits non-zero, with the
  // last lines of its stderr.
  absl::Status Provision(const ProgressFn& progress) override;
  // postgresql://tether:PASSWORD@ADDRESS/DBNAME?connect_timeout=5; empty while there is no
  // password yet.
  std::string AdminUrl(const std::string& dbname) const override;

 private:
  absl::Status EnsurePassword();
  absl::Status PushBundle(const std::string& target_dir, const ProgressFn& progress);

  LxdProvisionerOptions options_;
  std::unique_ptr<LxdTransport> transport_;
  LxdClient client_;
  std::string password_;
};

// The install script as embedded at build time (agent/lxd/install-postgres.sh).
const std::string& LxdInstallScript();

}  // namespace tether::agent
