// PgClusterAdmin.
#include "agent/tenants/pg_cluster_admin.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/pg/errors.h"
#include "common/pg/identifiers.h"
#include "common/pg/pool.h"
#include "common/spec/spec.h"

namespace tether::agent {
namespace {

using common::QuoteIdentifier;

bool IsSqlState(const std::exception& e, const char* state) {
  const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e);
  return sql != nullptr && sql->sqlstate() == state;
}

// Runs one statement outside a transaction (CREATE DATABASE refuses to run in one).
absl::Status Execute(const std::string& url, const std::string& sql,
                     const char* ok_state = nullptr) {
  auto conn = common::Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    tx.exec(sql);
  } catch (const std::exception& e) {
    if (ok_state != nullptr && IsSqlState(e, ok_state)) return absl::OkStatus();
    return common::StatusFromException(e);
  }
  return absl::OkStatus();
}

}  // namespace

PgClusterAdmin::PgClusterAdmin(PgClusterAdminOptions options, common::Clock* clock)
    : options_(std::move(options)), clock_(clock) {}

absl::Status PgClusterAdmin::Fenced(pqxx::transaction_base& tx) const {
  if (options_.fence == nullptr) return absl::OkStatus();
  // Schemas of the URL's own database share it with the epoch's row.
  const bool shared = options_.tenancy == v1::TENANCY_SCHEMA && options_.schema_database.empty();
  return shared ? options_.fence->Check(tx) : options_.fence->CheckLeads();
}

absl::Status PgClusterAdmin::ExecuteFenced(const std::string& url, const std::string& sql) const {
  auto conn = common::Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    if (auto st = Fenced(tx); !st.ok()) return st;
    tx.exec(sql);
    tx.commit();
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
  return absl::OkStatus();
}

std::string PgClusterAdmin::TenantUrl(const std::string& tenant) const {
  if (options_.tenancy == v1::TENANCY_SCHEMA) {
    return common::WithOptions(SchemaDatabaseUrl(), "-c search_path=" + tenant);
  }
  return options_.url_for(tenant);
}

absl::Status PgClusterAdmin::EnsureSchemaDatabase() {
  absl::MutexLock lock(&mu_);
  if (schema_database_ready_ || options_.schema_database.empty()) return absl::OkStatus();
  if (auto st = common::ValidateIdentifier("database", options_.schema_database); !st.ok()) {
    return st;
  }
  // 42P04: duplicate_database — it exists already.
  absl::Status st = Execute(AdminUrl(),
                            "CREATE DATABASE " + QuoteIdentifier(options_.schema_database), "42P04");
  if (st.ok()) schema_database_ready_ = true;
  return st;
}

absl::StatusOr<std::set<std::string>> PgClusterAdmin::ListTenants() {
  const bool schemas = options_.tenancy == v1::TENANCY_SCHEMA;
  if (schemas && !options_.schema_database.empty()) {
    // No schema database yet: no tenant exists.
    auto conn = common::Connect(AdminUrl());
    if (!conn.ok()) return conn.status();
    try {
      pqxx::read_transaction tx(**conn);
      if (tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", options_.schema_database)
              .empty()) {
        return std::set<std::string>();
      }
    } catch (const std::exception& e) {
      return common::StatusFromException(e);
    }
  }
  auto conn = common::Connect(schemas ? SchemaDatabaseUrl() : AdminUrl());
  if (!conn.ok()) return conn.status();
  try {
    pqxx::read_transaction tx(**conn);
    std::set<std::string> names;
    const char* sql = schemas
        ? "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
          "AND nspname NOT LIKE 'tether\\_%' AND nspname NOT IN ('information_schema', 'public')"
        : "SELECT datname FROM pg_database WHERE NOT datistemplate "
          "AND datname NOT LIKE 'tether\\_%'";
    for (const auto& r : tx.exec(sql)) names.insert(r[0].as<std::string>());
    return names;
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

absl::Status PgClusterAdmin::CreateTenant(const std::string& tenant) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  if (options_.tenancy == v1::TENANCY_SCHEMA) {
    if (auto st = EnsureSchemaDatabase(); !st.ok()) return st;
    return ExecuteFenced(SchemaDatabaseUrl(), "CREATE SCHEMA IF NOT EXISTS " + QuoteIdentifier(tenant));
  }
  // CREATE DATABASE runs in no transaction: only what the agent knows of its role fences it.
  if (options_.fence != nullptr) {
    if (auto st = options_.fence->CheckLeads(); !st.ok()) return st;
  }
  return Execute(AdminUrl(), "CREATE DATABASE " + QuoteIdentifier(tenant), "42P04");
}

common::Migrator PgClusterAdmin::TenantMigrator(const std::string& tenant,
                                                const std::vector<common::Migration>& migrations,
                                                const StepFn& step) const {
  common::MigratorOptions options = options_.migrator;
  options.set_name = "tenant";
  // Schemas share a database: each tenant's migrator locks only its own schema.
  if (options_.tenancy == v1::TENANCY_SCHEMA) options.lock_scope = tenant;
  options.on_progress = step;
  if (options_.fence != nullptr) {
    options.fence = [this](pqxx::transaction_base& tx) { return Fenced(tx); };
  }
  return common::Migrator(TenantUrl(tenant), migrations, options, clock_);
}

absl::StatusOr<int> PgClusterAdmin::ApplyMigrations(
    const std::string& tenant, const std::vector<common::Migration>& migrations,
    std::optional<int64_t> to, const StepFn& step) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  return TenantMigrator(tenant, migrations, step).Up(to);
}

absl::StatusOr<int> PgClusterAdmin::RollbackMigrations(
    const std::string& tenant, const std::vector<common::Migration>& migrations,
    int64_t to_version, const StepFn& step) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  common::Migrator migrator = TenantMigrator(tenant, migrations, step);
  // How many to undo is read afresh each time, so a rollback resumed after a crash undoes only
  // what is still above the target.
  auto report = migrator.Status();
  if (!report.ok()) return report.status();
  int steps = 0;
  for (const auto& m : report->migrations) {
    if (m.applied && m.version > to_version) ++steps;
  }
  if (steps == 0) return 0;
  return migrator.Down(steps);
}

absl::StatusOr<bool> PgClusterAdmin::RunHook(const std::string& tenant, const std::string& event,
                                             const std::string& key, const std::string& sql) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  auto conn = common::Connect(TenantUrl(tenant));
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    if (auto st = Fenced(tx); !st.ok()) return st;
    // In the tenant's database, or its schema (first on the search path): the record of a run
    // lives and dies with the tenant.
    tx.exec("CREATE TABLE IF NOT EXISTS tether_hook_runs (event text NOT NULL, key text NOT NULL, "
            "checksum text NOT NULL, ran_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (event, key))");
    auto inserted = tx.exec_params(
        "INSERT INTO tether_hook_runs (event, key, checksum) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING 1",
        event, key, common::FileSha256(sql));
    if (inserted.empty()) return false;
    tx.exec(sql);
    tx.commit();
    return true;
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

absl::StatusOr<common::MigrationReport> PgClusterAdmin::MigrationStatus(
    const std::string& tenant, const std::vector<common::Migration>& migrations) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  return TenantMigrator(tenant, migrations, nullptr).Status();
}

absl::StatusOr<SchemaFingerprint> PgClusterAdmin::Fingerprint(const std::string& tenant) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  if (options_.tenancy == v1::TENANCY_SCHEMA) return FingerprintSchema(SchemaDatabaseUrl(), tenant);
  return FingerprintSchema(options_.url_for(tenant), "public");
}

absl::Status PgClusterAdmin::DropTenant(const std::string& tenant) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) return st;
  if (options_.tenancy == v1::TENANCY_SCHEMA) {
    return ExecuteFenced(SchemaDatabaseUrl(),
                         "DROP SCHEMA IF EXISTS " + QuoteIdentifier(tenant) + " CASCADE");
  }
  if (options_.fence != nullptr) {
    if (auto st = options_.fence->CheckLeads(); !st.ok()) return st;
  }
  return Execute(AdminUrl(), "DROP DATABASE IF EXISTS " + QuoteIdentifier(tenant) + " WITH (FORCE)");
}

absl::StatusOr<int> PgClusterAdmin::Ping() {
  auto conn = common::Connect(AdminUrl());
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    return tx.exec1("SELECT current_setting('server_version_num')::int / 10000")[0].as<int>();
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

}  // namespace tether::agent
