// Provisioner: how the agent gets a PostgreSQL. One interface, three implementations:
// local (initdb + pg_ctl in the data dir), lxd (an install script run inside the agent's LXD
// instance through the LXD API) and external (a DATABASE_URL; nothing to provision).
// A provisioner is driven by one thread, the provisioning loop.
#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace tether::agent {

using ProgressFn = std::function<void(const std::string& line)>;

class Provisioner {
 public:
  virtual ~Provisioner() = default;
  virtual std::string name() const = 0;
  // Makes PostgreSQL exist and run; idempotent, so it is safe to call after any failure.
  // kUnavailable for what a retry may fix (a daemon that does not answer, a timeout);
  // kNotFound when the target (an LXD instance) does not exist; kInternal when the
  // install itself failed, with its output's last lines.
  virtual absl::Status Provision(const ProgressFn& progress) = 0;
  // Admin connection URL of the database server, usable once Provision() succeeded.
  virtual std::string AdminUrl(const std::string& dbname) const = 0;
};

}  // namespace tether::agent
