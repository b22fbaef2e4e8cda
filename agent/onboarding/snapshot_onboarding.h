// SnapshotOnboarding (both tenancies): new tenants get a snapshot of the latest schema — and of
// the rows migrations inserted — applied in one transaction over the agent's own connection;
// no psql, no createdb, no connection settings beside the agent.
//
// Once per revision the agent brings a scratch tenant `tether_snapshot` forward by replay,
// takes its snapshot with pg_dump (--inserts, so every statement is plain SQL; the lines only
// psql understands, `\restrict` and the like, are stripped), stores it in its own database
// (onboarding_snapshots) and proves it: applied to `tether_snapshot_check`, in a transaction
// read and then rolled back, it must give the fingerprint of `tether_reference`, a replay
// under yet another name. A snapshot that does not
// (a migration that depends on the tenant's name, or on something pg_dump does not carry) is
// stored as unfaithful with the first difference, and that revision is onboarded by replay.
//
// For schema tenancy pg_dump writes every name qualified with `tether_snapshot`; the tenant's
// schema is put in its place token by token as a quoted identifier (RenameSchemaInSql), never
// by a text search that could also match data, comments or function bodies.
// Thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "agent/onboarding/onboarding.h"
#include "common/clock.h"
#include "common/process.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

inline constexpr char kSnapshotTenant[] = "tether_snapshot";
inline constexpr char kSnapshotCheckTenant[] = "tether_snapshot_check";

struct SnapshotOptions {
  v1::Tenancy tenancy = v1::TENANCY_DATABASE;
  // The URL of database `dbname` on the agent's server (tenancy database), and of the database
  // holding the tenants' schemas (tenancy schema: `dbname` ignored).
  std::function<std::string(const std::string& dbname)> tenant_database_url;
  std::string agent_database_url;  // where snapshots are stored
  // pg_dump, or "" to find the server's own (/usr/lib/postgresql/MAJOR/bin) or one on PATH.
  std::string pg_dump;
};

class SnapshotOnboarding final : public Onboarding {
 public:
  SnapshotOnboarding(ClusterAdmin* admin, SnapshotOptions options, common::ProcessRunner* runner,
                     common::Clock* clock);

  std::string name() const override { return "snapshot"; }
  absl::Status Prepare(const std::vector<common::Migration>& migrations, int64_t target_version,
                       const StepFn& step) override;
  absl::StatusOr<Onboarded> Onboard(const OnboardRequest& request, const StepFn& step) override;

  // The snapshot Prepare settled on ("" when onboarding by replay), for tests and benchmarks.
  const std::string& snapshot_sql() const { return sql_; }

 private:
  // Takes, proves and stores the snapshot of `target`; "" with the reason in `step` when the
  // revision must be replayed.
  absl::StatusOr<std::string> TakeSnapshot(const std::vector<common::Migration>& migrations,
                                           int64_t target, const std::string& digest,
                                           const StepFn& step);
  absl::StatusOr<std::string> Dump(const StepFn& step);
  // The fingerprint `sql` gives applied to kSnapshotCheckTenant (rolled back afterwards).
  absl::StatusOr<SchemaFingerprint> Check(const std::string& sql);
  // Applies `sql` as tenant `tenant` in one transaction.
  absl::Status Apply(const std::string& sql, const std::string& tenant);

  ClusterAdmin* admin_;
  const SnapshotOptions options_;
  common::ProcessRunner* runner_;
  common::Clock* clock_;

  // Set by Prepare.
  int64_t target_ = 0;
  std::string sql_;  // "" : replay
  SchemaFingerprint reference_;
  ReplayOnboarding replay_;
};

// pg_dump's output made plain SQL: psql's meta-command lines removed.
std::string CleanDump(const std::string& dump);

}  // namespace tether::agent
