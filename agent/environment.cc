// AgentEnvironment.
#include "agent/environment.h"

#include <pqxx/pqxx>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "agent/onboarding/leftovers.h"
#include "agent/onboarding/snapshot_onboarding.h"
#include "agent/onboarding/template_onboarding.h"
#include "agent/tenants/pg_cluster_admin.h"
#include "common/pg/errors.h"
#include "common/pg/pool.h"
#include "common/spec/spec.h"

namespace tether::agent {

absl::StatusOr<std::unique_ptr<ClusterAdmin>> AgentEnvironment::Admin(const v1::ClusterSpec& spec) {
  if (!provisioning_->ready()) return absl::UnavailableError("PostgreSQL is not ready");
  return std::unique_ptr<ClusterAdmin>(std::make_unique<PgClusterAdmin>(AdminOptions(spec), clock_));
}

std::unique_ptr<Onboarding> AgentEnvironment::NewOnboarding(const v1::ClusterSpec& spec,
                                                            ClusterAdmin* admin) {
  const PgClusterAdminOptions options = AdminOptions(spec);
  return std::make_unique<WithoutLeftovers>(Strategy(spec, admin, options), spec.onboarding(),
                                            spec.tenancy(), admin,
                                            PgDatabases(options.url_for(options.admin_database)));
}

std::unique_ptr<Onboarding> AgentEnvironment::Strategy(const v1::ClusterSpec& spec,
                                                       ClusterAdmin* admin,
                                                       const PgClusterAdminOptions& options) {
  if (spec.onboarding() == v1::ONBOARDING_TEMPLATE && spec.tenancy() == v1::TENANCY_DATABASE) {
    TemplateOptions template_options;
    template_options.warm_pool = spec.warm_pool();
    return std::make_unique<TemplateOnboarding>(
        admin, PgDatabases(options.url_for(options.admin_database)), template_options, clock_);
  }
  if (spec.onboarding() == v1::ONBOARDING_SNAPSHOT) {
    SnapshotOptions snapshot;
    snapshot.tenancy = spec.tenancy();
    snapshot.tenant_database_url = [options](const std::string& db) {
      return options.url_for(options.tenancy == v1::TENANCY_SCHEMA ? options.schema_database : db);
    };
    snapshot.agent_database_url = provisioning_->database_url();
    return std::make_unique<SnapshotOnboarding>(admin, snapshot, &runner_, clock_);
  }
  return std::make_unique<ReplayOnboarding>(admin);
}

PgClusterAdminOptions AgentEnvironment::AdminOptions(const v1::ClusterSpec& spec) const {
  PgClusterAdminOptions options;
  options.tenancy = spec.tenancy();
  options.fence = fence_;
  if (kind_ == ProvisionerKind::kExternal) {
    // The URL names a database on a server we share: tenants' databases sit beside it, tenants'
    // schemas inside it.
    const std::string url = provisioner_->AdminUrl("");
    options.url_for = [url](const std::string& db) {
      return db.empty() ? url : common::WithDatabase(url, db);
    };
    options.admin_database = "";
    options.schema_database = "";
  } else {
    Provisioner* provisioner = provisioner_;
    options.url_for = [provisioner](const std::string& db) {
      return provisioner->AdminUrl(db.empty() ? "postgres" : db);
    };
    options.admin_database = "postgres";
    options.schema_database = common::SchemaTenancyDatabase(spec);
  }
  return options;
}

absl::StatusOr<TenantRecords*> AgentEnvironment::Records() {
  const std::string url = provisioning_->database_url();
  if (url.empty()) return absl::UnavailableError("PostgreSQL is not ready");
  absl::MutexLock lock(&mu_);
  if (records_ == nullptr) records_ = std::make_unique<PgTenantRecords>(url, fence_);
  return records_.get();
}

absl::StatusOr<CommandRecords*> AgentEnvironment::Commands() {
  const std::string url = provisioning_->database_url();
  if (url.empty()) return absl::UnavailableError("PostgreSQL is not ready");
  absl::MutexLock lock(&mu_);
  if (commands_ == nullptr) commands_ = std::make_unique<PgCommandRecords>(url, fence_);
  return commands_.get();
}

absl::StatusOr<int64_t> AgentEnvironment::LoadAppliedRevision() {
  auto conn = common::Connect(provisioning_->database_url());
  if (!conn.ok()) return conn.status();
  try {
    pqxx::read_transaction tx(**conn);
    auto rows = tx.exec("SELECT value FROM agent_state WHERE key = 'applied_revision'");
    int64_t revision = 0;
    if (!rows.empty() && !absl::SimpleAtoi(rows[0][0].as<std::string>(), &revision)) {
      return absl::DataLossError("agent_state.applied_revision is not a number");
    }
    return revision;
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

absl::Status AgentEnvironment::SaveAppliedRevision(int64_t revision) {
  auto conn = common::Connect(provisioning_->database_url());
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    if (auto st = CheckFence(fence_, tx); !st.ok()) return st;
    tx.exec_params(
        "INSERT INTO agent_state (key, value, updated_at) VALUES ('applied_revision', $1, now()) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
        absl::StrCat(revision));
    tx.commit();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

}  // namespace tether::agent
