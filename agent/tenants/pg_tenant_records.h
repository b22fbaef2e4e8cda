// PgTenantRecords: TenantRecords in the `tenants` table of the agent's own database (agent
// migration 0002), over a small pool so the executor's workers write at once. Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "agent/tenants/tenant_records.h"
#include "common/pg/pool.h"

namespace tether::agent {

class PgTenantRecords final : public TenantRecords {
 public:
  explicit PgTenantRecords(const std::string& url, int connections = 4)
      : pool_(url, connections) {}

  absl::StatusOr<std::map<std::string, TenantRecord>> List() override;
  absl::Status Put(const TenantRecord& record) override;
  absl::Status Remove(const std::string& name) override;

 private:
  common::PgPool pool_;
};

}  // namespace tether::agent
