// LocalProvisioner: PostgreSQL in DATA_DIR/postgres through common::LocalPostgres, listening on
// loopback with a password kept in DATA_DIR/postgres.password (0600).
#pragma once

#include <memory>

#include "agent/provision/provisioner.h"
#include "common/pg/local_postgres.h"

namespace tether::agent {

class LocalProvisioner final : public Provisioner {
 public:
  // `bin_dir` empty: the newest installed server. `durable` false only in tests.
  LocalProvisioner(std::string data_dir, std::string bin_dir, common::ProcessRunner* runner,
                   bool durable = true);
  std::string name() const override { return "local"; }
  absl::Status Provision(const ProgressFn& progress) override;
  std::string AdminUrl(const std::string& dbname) const override;

 private:
  std::string data_dir_;
  std::string bin_dir_;
  common::ProcessRunner* runner_;
  bool durable_;
  std::unique_ptr<common::LocalPostgres> postgres_;
};

// ExternalProvisioner: pro mode. Provision() only checks that the URL is set.
class ExternalProvisioner final : public Provisioner {
 public:
  explicit ExternalProvisioner(std::string url) : url_(std::move(url)) {}
  std::string name() const override { return "external"; }
  absl::Status Provision(const ProgressFn&) override { return absl::OkStatus(); }
  std::string AdminUrl(const std::string&) const override { return url_; }

 private:
  std::string url_;
};

}  // namespace tether::agent
