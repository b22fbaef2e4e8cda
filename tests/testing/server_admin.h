// ServerAdmin: a PgClusterAdmin on the test harness's PostgreSQL (or any server a URL names),
// as an agent in external mode has it: tenants' databases beside the URL's own, or tenants'
// schemas in `schema_db` ("" : in the URL's database). FreshAgentDatabase: a new database of
// the harness's server with the agent's own schema, as the agent keeps its records.
#pragma once

#include <memory>
#include <string>

#include "agent/tenants/pg_cluster_admin.h"
#include "common/clock.h"
#include "common/pg/migrator.h"
#include "common/pg/pool.h"
#include "tests/testing/postgres_server.h"

namespace tether::agent {
std::vector<common::MigrationFile> AgentMigrationFiles();
}

namespace tether::testing {

// The URL of the new database; "" if the agent's migrations could not be applied.
inline std::string FreshAgentDatabase() {
  const std::string url = PostgresServer::Get().FreshDatabase();
  auto own = common::ParseMigrations(agent::AgentMigrationFiles());
  if (!own.ok()) return "";
  common::MigratorOptions options;
  options.set_name = "tether-agent";
  return common::Migrator(url, *own, options, common::RealClock::Get()).Up().ok() ? url : "";
}

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
