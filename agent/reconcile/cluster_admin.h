// ClusterAdmin: the small set of things the reconciler does to the agent's PostgreSQL, per
// tenant — list, create, migrate, roll back, run hooks, fingerprint, drop, ping — so the executor can be tested over a fake
// (tests/testing/fake_cluster_admin.h) and runs against PostgreSQL through PgClusterAdmin
// (agent/tenants/). Every operation is idempotent: repeating one after a crash is safe.
// Implementations are thread-safe: the executor calls them for several tenants at once.
#pragma once

#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/onboarding/schema_fingerprint.h"
#include "common/pg/migrator.h"

namespace tether::agent {

// One line of progress ("applying 0002_add_orders"), for logs and command output.
using StepFn = std::function<void(const std::string& line)>;

class ClusterAdmin {
 public:
  virtual ~ClusterAdmin() = default;

  // The tenants (databases, or schemas) that exist; PostgreSQL's own and tether's (tether_*:
  // the agent's database, templates, pools, references) left out.
  // kUnavailable when PostgreSQL does not answer.
  virtual absl::StatusOr<std::set<std::string>> ListTenants() = 0;
  // Creates the tenant's database or schema; OK when it exists already.
  virtual absl::Status CreateTenant(const std::string& tenant) = 0;
  // Applies `migrations` to the tenant up to `to` (all when unset) through the migrator, under
  // its lock; returns how many ran. The migrator's codes (kFailedPrecondition for a dirty or
  // drifted tenant, the failing migration's error).
  virtual absl::StatusOr<int> ApplyMigrations(const std::string& tenant,
                                              const std::vector<common::Migration>& migrations,
                                              std::optional<int64_t> to, const StepFn& step) = 0;
  // Rolls the tenant back, newest first, until no migration above `to_version` is applied,
  // with the down files of `migrations`; returns how many were undone (0 when none is above
  // it). kFailedPrecondition, naming the migration, when one of them has no down file (nothing
  // is rolled back then) or a row is dirty; the failing down file's error.
  virtual absl::StatusOr<int> RollbackMigrations(const std::string& tenant,
                                                 const std::vector<common::Migration>& migrations,
                                                 int64_t to_version, const StepFn& step) = 0;
  // Runs hook `sql` on the tenant at most once per (event, key), ever: the run is recorded in
  // the tenant's own tether_hook_runs in the transaction that runs the SQL, so a crash leaves
  // both or neither. Returns whether it ran (false: it had run before). The hook's own error
  // when its SQL fails (nothing is recorded then, so it runs again next time).
  virtual absl::StatusOr<bool> RunHook(const std::string& tenant, const std::string& event,
                                       const std::string& key, const std::string& sql) = 0;
  // What is applied to the tenant.
  virtual absl::StatusOr<common::MigrationReport> MigrationStatus(
      const std::string& tenant, const std::vector<common::Migration>& migrations) = 0;
  // The logical fingerprint of the tenant's schema (agent/onboarding/schema_fingerprint.h).
  // kNotFound when the tenant does not exist.
  virtual absl::StatusOr<SchemaFingerprint> Fingerprint(const std::string& tenant) = 0;
  // Drops the tenant's database or schema and everything in it; OK when it is gone already.
  virtual absl::Status DropTenant(const std::string& tenant) = 0;
  // The server's major version (15); kUnavailable unless PostgreSQL answers.
  virtual absl::StatusOr<int> Ping() = 0;
};

}  // namespace tether::agent
