// PgClusterAdmin: ClusterAdmin on a real PostgreSQL, for either tenancy — a database per tenant
// (CREATE/DROP DATABASE on the server) or a schema per tenant (CREATE/DROP SCHEMA in one
// database, its migrations run with search_path set to the tenant's schema and a migrator lock
// scoped to it). Tenant names reach SQL only after ValidateIdentifier, and always quoted.
// Every call opens its own connections, so calls for different tenants run at once. A pro
// agent's writes carry its fence: those in the shared database (schemas of the URL's own
// database) are fenced by the database, the rest by what the agent knows of its role.
// Thread-safe.
#pragma once

#include <functional>
#include <string>

#include "absl/synchronization/mutex.h"
#include "agent/leadership/write_fence.h"
#include "agent/reconcile/cluster_admin.h"
#include "common/clock.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

struct PgClusterAdminOptions {
  v1::Tenancy tenancy = v1::TENANCY_DATABASE;
  // The URL of database `dbname` on the agent's server; "" names the server's default (the
  // URL's own database in external mode).
  std::function<std::string(const std::string& dbname)> url_for;
  // Where server-wide statements run (CREATE DATABASE): "postgres", or "" in external mode.
  std::string admin_database = "postgres";
  // Schema tenancy: the database holding the tenants' schemas (created when missing, unless it
  // is ""; then the server's default database holds them).
  std::string schema_database;
  common::MigratorOptions migrator;  // lock waits and timeouts for tenant migrations
  const WriteFence* fence = nullptr;  // pro mode; outlives the admin
};

class PgClusterAdmin final : public ClusterAdmin {
 public:
  PgClusterAdmin(PgClusterAdminOptions options, common::Clock* clock);

  absl::StatusOr<std::set<std::string>> ListTenants() override;
  absl::Status CreateTenant(const std::string& tenant) override;
  absl::StatusOr<int> ApplyMigrations(const std::string& tenant,
                                      const std::vector<common::Migration>& migrations,
                                      std::optional<int64_t> to, const StepFn& step) override;
  absl::StatusOr<int> RollbackMigrations(const std::string& tenant,
                                         const std::vector<common::Migration>& migrations,
                                         int64_t to_version, const StepFn& step) override;
  absl::StatusOr<bool> RunHook(const std::string& tenant, const std::string& event,
                               const std::string& key, const std::string& sql) override;
  absl::StatusOr<common::MigrationReport> MigrationStatus(
      const std::string& tenant, const std::vector<common::Migration>& migrations) override;
  absl::StatusOr<SchemaFingerprint> Fingerprint(const std::string& tenant) override;
  absl::Status DropTenant(const std::string& tenant) override;
  absl::StatusOr<int> Ping() override;

  // The URL a tenant's own connections use (its database, or its schema on the search path).
  std::string TenantUrl(const std::string& tenant) const;

 private:
  std::string AdminUrl() const { return options_.url_for(options_.admin_database); }
  std::string SchemaDatabaseUrl() const { return options_.url_for(options_.schema_database); }
  absl::Status EnsureSchemaDatabase();
  // The fence of a write transaction in a tenant's database or schema (OK without a fence).
  absl::Status Fenced(pqxx::transaction_base& tx) const;
  // Runs one statement in a fenced transaction.
  absl::Status ExecuteFenced(const std::string& url, const std::string& sql) const;
  common::Migrator TenantMigrator(const std::string& tenant,
                                  const std::vector<common::Migration>& migrations,
                                  const StepFn& step) const;

  const PgClusterAdminOptions options_;
  common::Clock* clock_;
  absl::Mutex mu_;
  bool schema_database_ready_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace tether::agent
