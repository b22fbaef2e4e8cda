// reconcile_worker ADMIN_URL OWN_URL SPEC.yaml: reconciles a spec once against a PostgreSQL
// server the way the agent does (PgClusterAdmin, database tenancy, the agent's own tenant
// records in OWN_URL), printing every step on stdout. Exits 0 when the reconcile succeeded.
// The integration tests run it as a process so they can SIGKILL it part-way.
#include <iostream>

#include "agent/reconcile/reconciler.h"
#include "agent/tenants/pg_cluster_admin.h"
#include "agent/tenants/pg_tenant_records.h"
#include "common/clock.h"
#include "common/pg/migrator.h"
#include "common/pg/pool.h"
#include "common/spec/yaml.h"

namespace tether::agent {
std::vector<common::MigrationFile> AgentMigrationFiles();
}

int main(int argc, char** argv) {
  using namespace tether;
  if (argc != 4) {
    std::cerr << "usage: reconcile_worker ADMIN_URL OWN_URL SPEC.yaml\n";
    return 2;
  }
  const std::string admin_url = argv[1];
  auto spec = common::LoadSpecFile(argv[3]);
  if (!spec.ok()) {
    std::cerr << spec.status() << "\n";
    return 2;
  }
  auto own = common::ParseMigrations(agent::AgentMigrationFiles());
  common::MigratorOptions own_options;
  own_options.set_name = "tether-agent";
  if (auto st = common::Migrator(argv[2], *own, own_options, common::RealClock::Get()).Up().status();
      !st.ok()) {
    std::cerr << st << "\n";
    return 2;
  }
  agent::PgClusterAdminOptions options;
  options.tenancy = spec->tenancy();
  options.url_for = [admin_url](const std::string& db) {
    return db.empty() ? admin_url : common::WithDatabase(admin_url, db);
  };
  options.admin_database = "";
  agent::PgClusterAdmin admin(options, common::RealClock::Get());
  agent::PgTenantRecords records(argv[2]);
  agent::Reconciler reconciler(&admin, &records, common::RealClock::Get());
  auto report = reconciler.Reconcile(
      1, *spec, [](const std::string& line) { std::cout << line << std::endl; }, nullptr);
  if (!report.status.ok()) {
    std::cerr << report.status << "\n";
    return 1;
  }
  return 0;
}
