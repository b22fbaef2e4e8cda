// reconcile_worker ADMIN_URL OWN_URL SPEC.yaml: reconciles a spec once against a PostgreSQL
// server the way the agent does (PgClusterAdmin, the spec's onboarding, the agent's own tenant
// records in OWN_URL), printing every step on stdout. Exits 0 when the reconcile succeeded.
// The integration tests run it as a process so they can SIGKILL it part-way.
#include <iostream>

#include "agent/onboarding/snapshot_onboarding.h"
#include "agent/onboarding/template_onboarding.h"
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
  // The spec's onboarding, as the agent chooses it (agent/environment.cc).
  std::unique_ptr<agent::Onboarding> onboarding;
  common::RealProcessRunner runner;
  if (spec->onboarding() == v1::ONBOARDING_TEMPLATE) {
    agent::TemplateOptions template_options;
    template_options.warm_pool = spec->warm_pool();
    onboarding = std::make_unique<agent::TemplateOnboarding>(
        &admin, agent::PgDatabases(admin_url), template_options, common::RealClock::Get());
  } else if (spec->onboarding() == v1::ONBOARDING_SNAPSHOT) {
    agent::SnapshotOptions snapshot;
    snapshot.tenancy = spec->tenancy();
    snapshot.tenant_database_url = options.url_for;
    snapshot.agent_database_url = argv[2];
    onboarding = std::make_unique<agent::SnapshotOnboarding>(&admin, snapshot, &runner,
                                                             common::RealClock::Get());
  }
  agent::Reconciler reconciler(&admin, &records, common::RealClock::Get(), 4, onboarding.get());
  auto report = reconciler.Reconcile(
      1, *spec, [](const std::string& line) { std::cout << line << std::endl; }, nullptr);
  if (!report.status.ok()) {
    std::cerr << report.status << "\n";
    return 1;
  }
  return 0;
}
