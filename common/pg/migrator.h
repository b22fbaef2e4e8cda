// Migrator: ordered, checksummed SQL migrations for one database, tracked in
// schema_migrations (one row per applied migration of a named set).
//
// One migrator at a time per database and set (and scope, for a set per schema): a
// session-level AdvisoryLock on the migrator's own connection, taken by polling (a blocking
// wait would deadlock with CREATE INDEX CONCURRENTLY, which waits for every open transaction)
// and held for the whole run.
// Each migration runs in its own transaction with a lock_timeout, unless its first line is
// `-- tether:no-transaction`; such a migration is recorded dirty before it starts and clean
// when it ends, so a failure part-way leaves a dirty row that Status() shows and Repair()
// clears. A Migrator is used by one thread at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/pg/migration_source.h"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace tether::common {

struct Migration {
  int64_t version = 0;
  std::string name;
  std::string up_sql;
  std::string down_sql;  // empty: cannot be rolled back
  bool transactional = true;
  std::string checksum;  // hex SHA-256 of up_sql
};

// Pairs NNNN_name.up.sql with NNNN_name.down.sql and sorts by version. kInvalidArgument for a
// file name that does not fit, a duplicate version or a down file without its up file.
absl::StatusOr<std::vector<Migration>> ParseMigrations(const std::vector<MigrationFile>& files);

// Reads every *.sql file of `dir`. kNotFound when the directory does not exist.
absl::StatusOr<std::vector<MigrationFile>> ReadMigrationDir(const std::string& dir);

struct MigrationState {
  int64_t version = 0;
  std::string name;
  bool applied = false;
  bool dirty = false;          // started, not known to have finished
  bool checksum_drift = false;  // applied with a checksum other than the file's
  bool unknown = false;         // applied, but not among the files given
  std::optional<absl::Time> applied_at;
  absl::Duration duration;
  std::string error;  // for a dirty row: why it failed
};

struct MigrationReport {
  std::vector<MigrationState> migrations;  // by version
  int64_t current_version = 0;              // highest applied, 0 if none
  int64_t latest_version = 0;               // highest known
  int pending = 0;
  std::optional<int64_t> dirty_version;
};

// kFailedPrecondition, naming the migration, when the report shows a state no migration should
// run on: a dirty row, a changed checksum, or an applied migration this build does not know.
absl::Status CheckMigrationReport(const MigrationReport& report);

struct MigratorOptions {
  std::string set_name = "default";  // a database may hold several sets
  // Narrows the lock within the database: migrators of one set in different schemas (schema
  // tenancy) each take their own lock. Empty: the whole database.
  std::string lock_scope;
  absl::Duration lock_timeout = absl::Seconds(30);   // per migration statement
  absl::Duration lock_wait = absl::Minutes(10);      // for the migrator lock
  absl::Duration lock_poll = absl::Milliseconds(100);
  std::function<void(const std::string&)> on_progress;  // one line per step
  // Run first in each transaction that records a step (a pro agent's write fence): a non-OK
  // status aborts the transaction and the step fails with it, changing nothing.
  std::function<absl::Status(pqxx::transaction_base&)> fence;
};

enum class RepairAction {
  kMarkApplied,     // the operator finished the migration by hand
  kMarkRolledBack,  // the operator undid it by hand: forget the row
};

class Migrator {
 public:
  Migrator(std::string url, std::vector<Migration> migrations, MigratorOptions options,
           Clock* clock);

  // What is applied, pending, dirty or drifted. Takes no lock.
  absl::StatusOr<MigrationReport> Status();

  // Applies pending migrations up to `to` (all when unset). Returns how many were applied.
  // kFailedPrecondition when a row is dirty or a checksum drifted, kDeadlineExceeded when the
  // lock cannot be had within lock_wait, the migration's own error (with its version and
  // name) when one fails.
  absl::StatusOr<int> Up(std::optional<int64_t> to = std::nullopt);

  // Rolls back the newest `steps` applied migrations with their down files. Returns how many.
  // kFailedPrecondition when one has no down file, or a row is dirty.
  absl::StatusOr<int> Down(int steps);

  // Clears the dirty row of `version` after an operator fixed the database by hand.
  // kNotFound when that version is not dirty.
  absl::Status Repair(int64_t version, RepairAction action);

 private:
  class Session;
  enum class Direction { kUp, kDown };
  void Progress(const std::string& line) const;
  // Runs one migration's up or down SQL and records the outcome — in one transaction, or for a
  // no-transaction migration statement by statement behind a dirty row — the protocol both
  // directions share.
  absl::Status RunStep(Session& session, const Migration& m, Direction direction);
  // options_.fence on `tx`, or OK without one.
  absl::Status Fenced(pqxx::transaction_base& tx) const;

  std::string url_;
  std::vector<Migration> migrations_;
  MigratorOptions options_;
  Clock* clock_;
};

}  // namespace tether::common
