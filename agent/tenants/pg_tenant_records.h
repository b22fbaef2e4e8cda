// PgTenantRecords: TenantRecords in the `tenants` table of the agent's own database (agent
// migration 0002), over a small pool so the executor's workers write at once. A pro agent's
// writes carry its fence (agent/leadership/write_fence.h). Thread-safe.
#pragma once

#include <memory>
#include <string>

#include "agent/leadership/write_fence.h"
#include "agent/tenants/tenant_records.h"
#include "common/pg/pool.h"

namespace tether::agent {

class PgTenantRecords final : public TenantRecords {
 public:
  // `fence` (null for a lite agent) outlives the records.
  explicit PgTenantRecords(const std::string& url, const WriteFence* fence = nullptr,
                           int connections = 4)
      : fence_(fence), pool_(url, connections) {}

  absl::StatusOr<std::map<std::string, TenantRecord>> List() override;
  absl::Status Put(const TenantRecord& record) override;
  absl::Status Remove(const std::string& name) override;

 private:
  const WriteFence* fence_;
  common::PgPool pool_;
};

}  // namespace tether::agent
