// ServerAdmin: a PgClusterAdmin on the test harness's PostgreSQL (or any server a URL names),
// as an agent in external mode has it: tenants' databases beside the URL's own, or tenants'
// schemas in `schema_db` ("" : in the URL's database).
#pragma once

#include <memory>
#include <string>

#include "agent/tenants/pg_cluster_admin.h"
#include "common/clock.h"
#include "common/pg/pool.h"

namespace tether::testing {

inline std::unique_ptr<agent::PgClusterAdmin> ServerAdmin(const std::string& admin_url,
                                                          v1::Tenancy tenancy,
                                                          const std::string& schema_db = "") {
  agent::PgClusterAdminOptions options;
  options.tenancy = tenancy;
  options.url_for = [admin_url](const std::string& db) {
    return db.empty() ? admin_url : common::WithDatabase(admin_url, db);
  };
  options.admin_database = "";
  options.schema_database = schema_db;
  return std::make_unique<agent::PgClusterAdmin>(options, common::RealClock::Get());
}

}  // namespace tether::testing
