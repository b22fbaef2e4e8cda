// Migrator: parsing migration files, the advisory-lock session, and up/down/repair.
#include "common/pg/migrator.h"

#include <filesystem>
#include <map>
#include <regex>

#include <pqxx/pqxx>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/pg/identifiers.h"
#include "common/pg/advisory_lock.h"
#include "common/pg/errors.h"
#include "common/pg/lock_keys.h"
#include "common/pg/pool.h"
#include "common/secrets.h"
#include "common/pg/sql_split.h"

namespace tether::common {
namespace {

constexpr char kNoTransactionMarker[] = "-- tether:no-transaction";

// schema_migrations in the schema the connection starts in, named in full so a migration
// that changes search_path cannot make the bookkeeping miss its table.
std::string QualifiedTable(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  auto schema = tx.exec1("SELECT current_schema()")[0];
  if (schema.is_null()) {
    throw std::runtime_error("the connection has no current schema (empty search_path)");
  }
  return QuoteIdentifier(schema.as<std::string>()) + ".schema_migrations";
}

// Undoes what a migration may have set for the session (search_path, role, timeouts).
void ResetSession(pqxx::connection& conn) {
  pqxx::nontransaction tx(conn);
  tx.exec("SET ROLE NONE");
  tx.exec("RESET ALL");
}

int32_t StableHash32(absl::string_view s) {
  uint32_t h = 2166136261u;  // FNV-1a: stable across builds, unlike std::hash
  for (unsigned char c : s) {
    h ^= c;
    h *= 16777619u;
  }
  return static_cast<int32_t>(h);
}

// The second key of a migrator's session lock: its set, and its scope within the database.
int32_t MigratorLockKey(const MigratorOptions& options) {
  return StableHash32(options.lock_scope.empty() ? options.set_name
                                                 : absl::StrCat(options.set_name, "/", options.lock_scope));
}

struct AppliedRow {
  std::string name;
  std::string checksum;
  absl::Time applied_at;
  int64_t duration_ms = 0;
  bool dirty = false;
  std::string error;
};

absl::Status WithMigration(const absl::Status& st, const Migration& m, absl::string_view what) {
  return absl::Status(st.code(), absl::StrCat("migration ", m.version, " (", m.name, ") ", what,
                                              ": ", st.message()));
}

std::string LockTimeoutSql(absl::Duration d, bool local) {
  return absl::StrCat("SET ", local ? "LOCAL " : "", "lock_timeout = '",
                      absl::ToInt64Milliseconds(d), "ms'");
}

}  // namespace

absl::StatusOr<std::vector<Migration>> ParseMigrations(const std::vector<MigrationFile>& files) {
  static const std::regex kName(R"(^(\d+)_([a-z0-9_]+)\.(up|down)\.sql$)");
  std::map<int64_t, Migration> by_version;
  std::map<int64_t, std::string> downs;
  std::map<int64_t, std::string> down_names;
  for (const auto& f : files) {
    std::smatch m;
    if (!std::regex_match(f.filename, m, kName)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "migration file \"", f.filename, "\" is not named NNNN_name.up.sql or NNNN_name.down.sql"));
    }
    int64_t version = 0;
    if (!absl::SimpleAtoi(m[1].str(), &version) || version <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("migration file \"", f.filename,
                                                     "\" has no positive version number"));
    }
    if (m[3] == "down") {
      downs[version] = f.contents;
      down_names[version] = m[2].str();
      continue;
    }
    if (by_version.count(version) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("two migrations have version ", version));
    }
    Migration mig;
    mig.version = version;
    mig.name = m[2].str();
    mig.up_sql = f.contents;
    mig.transactional = !absl::StartsWith(f.contents, kNoTransactionMarker);
    mig.checksum = HashSecret(f.contents);
    by_version[version] = std::move(mig);
  }
  for (auto& [version, sql] : downs) {
    auto it = by_version.find(version);
    if (it == by_version.end() || it->second.name != down_names[version]) {
      return absl::InvalidArgumentError(
          absl::StrCat("down migration ", version, "_", down_names[version],
                       " has no matching up migration"));
    }
    it->second.down_sql = sql;
  }
  std::vector<Migration> out;
  for (auto& [v, m] : by_version) out.push_back(std::move(m));
  return out;
}

absl::StatusOr<std::vector<MigrationFile>> ReadMigrationDir(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("migrations directory ", dir, " does not exist"));
  }
  std::vector<MigrationFile> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".sql") continue;
    auto contents = ReadFile(entry.path().string());
    if (!contents.ok()) return contents.status();
    files.push_back({entry.path().filename().string(), *std::move(contents)});
  }
  return files;
}

// A connection holding the migrator lock of one set (and scope) for its lifetime, with the
// bookkeeping table in place.
class Migrator::Session {
 public:
  static absl::StatusOr<std::unique_ptr<Session>> Open(const std::string& url,
                                                       const MigratorOptions& options,
                                                       Clock* clock,
                                                       const std::function<void(const std::string&)>& progress) {
    AdvisoryLockOptions lock_options;
    lock_options.wait = options.lock_wait;
    lock_options.poll = options.lock_poll;
    lock_options.on_wait = [&] {
      progress(absl::StrCat("waiting for another migrator of set ", options.set_name));
    };
    auto lock = AdvisoryLock::Acquire(url, kLockClass, MigratorLockKey(options), lock_options, clock);
    if (absl::IsDeadlineExceeded(lock.status())) {
      return absl::DeadlineExceededError(absl::StrCat(
          "another migrator of set \"", options.set_name, "\" held the lock for ",
          absl::FormatDuration(options.lock_wait)));
    }
    if (!lock.ok()) return lock.status();
    auto session = std::unique_ptr<Session>(new Session(*std::move(lock)));
    try {
      session->table_ = QualifiedTable(session->conn());
      // Sets share the table: creating it is serialised by a brief transaction-level lock.
      pqxx::work tx(session->conn());
      tx.exec_params("SELECT pg_advisory_xact_lock($1, $2)", kLockClass, kMigrationTableLock);
      tx.exec("CREATE TABLE IF NOT EXISTS " + session->table_ + R"sql( (
          migration_set text NOT NULL,
          version bigint NOT NULL,
          name text NOT NULL,
          checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now(),
          duration_ms bigint NOT NULL DEFAULT 0,
          dirty boolean NOT NULL DEFAULT false,
          error text,
          PRIMARY KEY (migration_set, version)))sql");
      tx.commit();
    } catch (const std::exception& e) {
      return StatusFromException(e);
    }
    return session;
  }

  pqxx::connection& conn() { return lock_->conn(); }
  const std::string& table() const { return table_; }

 private:
  explicit Session(std::unique_ptr<AdvisoryLock> lock) : lock_(std::move(lock)) {}
  std::unique_ptr<AdvisoryLock> lock_;
  std::string table_;
};

namespace {

std::map<int64_t, AppliedRow> ReadApplied(pqxx::connection& conn, const std::string& table,
                                          const std::string& set) {
  std::map<int64_t, AppliedRow> rows;
  pqxx::nontransaction tx(conn);
  if (tx.exec_params1("SELECT to_regclass($1) IS NOT NULL", table)[0].as<bool>() == false) {
    return rows;
  }
  auto result = tx.exec_params(
      "SELECT version, name, checksum, (extract(epoch FROM applied_at) * 1000000)::bigint, "
      "duration_ms, dirty, coalesce(error, '') FROM " + table + " WHERE migration_set = $1",
      set);
  for (const auto& r : result) {
    AppliedRow row;
    row.name = r[1].as<std::string>();
    row.checksum = r[2].as<std::string>();
    row.applied_at = absl::FromUnixMicros(r[3].as<int64_t>());
    row.duration_ms = r[4].as<int64_t>();
    row.dirty = r[5].as<bool>();
    row.error = r[6].as<std::string>();
    rows[r[0].as<int64_t>()] = std::move(row);
  }
  return rows;
}

MigrationReport BuildReport(const std::vector<Migration>& migrations,
                            const std::map<int64_t, AppliedRow>& applied) {
  MigrationReport report;
  std::map<int64_t, MigrationState> states;
  for (const auto& m : migrations) {
    MigrationState s;
    s.version = m.version;
    s.name = m.name;
    report.latest_version = std::max(report.latest_version, m.version);
    states[m.version] = s;
  }
  for (const auto& [version, row] : applied) {
    auto [it, inserted] = states.try_emplace(version);
    MigrationState& s = it->second;
    s.version = version;
    s.unknown = inserted;
    if (inserted) s.name = row.name;
    s.applied = !row.dirty;
    s.dirty = row.dirty;
    s.error = row.error;
    s.applied_at = row.applied_at;
    s.duration = absl::Milliseconds(row.duration_ms);
    if (!inserted) {
      const auto& m = *std::find_if(migrations.begin(), migrations.end(),
                                    [&](const Migration& x) { return x.version == version; });
      s.checksum_drift = !row.dirty && row.checksum != m.checksum;
    }
    if (row.dirty) report.dirty_version = version;
    if (s.applied) report.current_version = std::max(report.current_version, version);
  }
  for (auto& [v, s] : states) {
    if (!s.applied && !s.dirty) ++report.pending;
    report.migrations.push_back(s);
  }
  return report;
}

}  // namespace

absl::Status CheckMigrationReport(const MigrationReport& report) {
  for (const auto& s : report.migrations) {
    if (s.dirty) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration ", s.version, " (", s.name, ") is dirty: it failed part-way (", s.error,
          "); fix the database by hand, then repair it as applied or rolled back"));
    }
    if (s.checksum_drift) {
      return absl::FailedPreconditionError(
          absl::StrCat("migration ", s.version, " (", s.name,
                       ") was changed after it was applied: its checksum no longer matches"));
    }
    if (s.unknown) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the database has migration ", s.version, " (", s.name,
          ") applied, which is not among the known migrations: is this an older build?"));
    }
  }
  return absl::OkStatus();
}

Migrator::Migrator(std::string url, std::vector<Migration> migrations, MigratorOptions options,
                   Clock* clock)
    : url_(std::move(url)),
      migrations_(std::move(migrations)),
      options_(std::move(options)),
      clock_(clock) {}

void Migrator::Progress(const std::string& line) const {
  if (options_.on_progress) options_.on_progress(line);
}

absl::StatusOr<MigrationReport> Migrator::Status() {
  auto conn = Connect(url_);
  if (!conn.ok()) return conn.status();
  try {
    return BuildReport(migrations_,
                       ReadApplied(**conn, QualifiedTable(**conn), options_.set_name));
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
}

absl::Status Migrator::Fenced(pqxx::transaction_base& tx) const {
  return options_.fence ? options_.fence(tx) : absl::OkStatus();
}

absl::Status Migrator::RunStep(Session& session, const Migration& m, Direction direction) {
  pqxx::connection& conn = session.conn();
  const std::string& table = session.table();
  const std::string& set = options_.set_name;
  const bool up = direction == Direction::kUp;
  const std::string& sql = up ? m.up_sql : m.down_sql;
  const bool transactional = !absl::StartsWith(sql, kNoTransactionMarker);
  const std::string where = " WHERE migration_set = $1 AND version = $2";
  // What the bookkeeping says once the step is done: applied (up) or gone (down).
  auto record_done = [&](pqxx::work& tx, int64_t duration_ms, bool row_exists) {
    if (!up) {
      tx.exec_params("DELETE FROM " + table + where, set, m.version);
    } else if (row_exists) {
      tx.exec_params("UPDATE " + table + " SET dirty = false, error = NULL, applied_at = now(), "
                     "duration_ms = $3" + where, set, m.version, duration_ms);
    } else {
      tx.exec_params("INSERT INTO " + table + " (migration_set, version, name, checksum, "
                     "duration_ms) VALUES ($1, $2, $3, $4, $5)",
                     set, m.version, m.name, m.checksum, duration_ms);
    }
  };
  Progress(absl::StrCat(up ? "applying " : "rolling back ", m.version, "_", m.name,
                        transactional ? "" : " (no transaction)"));
  const absl::Time start = clock_->Now();
  auto elapsed_ms = [&] { return absl::ToInt64Milliseconds(clock_->Now() - start); };
  if (transactional) {
    // The change and its record commit together, or neither does.
    try {
      pqxx::work tx(conn);
      if (auto st = Fenced(tx); !st.ok()) return WithMigration(st, m, "was not started");
      tx.exec(LockTimeoutSql(options_.lock_timeout, true));
      tx.exec(sql);
      record_done(tx, elapsed_ms(), /*row_exists=*/false);
      tx.commit();
    } catch (const std::exception& e) {
      return WithMigration(StatusFromException(e), m,
                           up ? "failed and was rolled back" : "rollback failed and was undone");
    }
  } else {
    // Statement by statement, each committing on its own: the row says dirty until all ran, so
    // a failure (or a crash) part-way is visible and blocks further runs until repaired.
    {
      pqxx::work tx(conn);
      if (auto st = Fenced(tx); !st.ok()) return WithMigration(st, m, "was not started");
      if (up) {
        tx.exec_params("INSERT INTO " + table + " (migration_set, version, name, checksum, dirty) "
                       "VALUES ($1, $2, $3, $4, true)",
                       set, m.version, m.name, m.checksum);
      } else {
        tx.exec_params("UPDATE " + table + " SET dirty = true, error = 'rollback in progress'" +
                           where, set, m.version);
      }
      tx.commit();
    }
    try {
      pqxx::nontransaction tx(conn);
      tx.exec(LockTimeoutSql(options_.lock_timeout, false));
      for (const std::string& stmt : SplitSqlStatements(sql)) tx.exec(stmt);
    } catch (const std::exception& e) {
      absl::Status st = StatusFromException(e);
      pqxx::work tx(conn);
      tx.exec_params("UPDATE " + table + " SET error = $3" + where, set, m.version,
                     absl::StrCat(up ? "" : "rollback failed: ", st.message()));
      tx.commit();
      return WithMigration(st, m, up ? "failed part-way and is marked dirty"
                                     : "rollback failed part-way and is marked dirty");
    }
    pqxx::work tx(conn);
    if (auto st = Fenced(tx); !st.ok()) {
      return WithMigration(st, m, "ran but is not recorded: it stays dirty");
    }
    record_done(tx, elapsed_ms(), /*row_exists=*/true);
    tx.commit();
  }
  ResetSession(conn);
  return absl::OkStatus();
}

absl::StatusOr<int> Migrator::Up(std::optional<int64_t> to) {
  auto session = Session::Open(url_, options_, clock_, [this](auto& l) { Progress(l); });
  if (!session.ok()) return session.status();
  int applied_count = 0;
  try {
    MigrationReport report =
        BuildReport(migrations_, ReadApplied((*session)->conn(), (*session)->table(), options_.set_name));
    if (auto st = CheckMigrationReport(report); !st.ok()) return st;
    for (const Migration& m : migrations_) {
      if (to.has_value() && m.version > *to) break;
      const auto state = std::find_if(report.migrations.begin(), report.migrations.end(),
                                      [&](const MigrationState& s) { return s.version == m.version; });
      if (state->applied) continue;
      if (auto st = RunStep(**session, m, Direction::kUp); !st.ok()) return st;
      ++applied_count;
    }
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
  return applied_count;
}

absl::StatusOr<int> Migrator::Down(int steps) {
  if (steps <= 0) return absl::InvalidArgumentError("steps must be at least 1");
  auto session = Session::Open(url_, options_, clock_, [this](auto& l) { Progress(l); });
  if (!session.ok()) return session.status();
  int rolled_back = 0;
  try {
    MigrationReport report =
        BuildReport(migrations_, ReadApplied((*session)->conn(), (*session)->table(), options_.set_name));
    if (auto st = CheckMigrationReport(report); !st.ok()) return st;
    // Every target is checked for a down file before anything changes.
    std::vector<const Migration*> targets;
    for (auto it = migrations_.rbegin(); it != migrations_.rend() &&
                                         static_cast<int>(targets.size()) < steps;
         ++it) {
      const auto state = std::find_if(report.migrations.begin(), report.migrations.end(),
                                      [&](const MigrationState& s) { return s.version == it->version; });
      if (!state->applied) continue;
      if (it->down_sql.empty()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "migration ", it->version, " (", it->name, ") has no down file; nothing was rolled back"));
      }
      targets.push_back(&*it);
    }
    for (const Migration* m : targets) {
      if (auto st = RunStep(**session, *m, Direction::kDown); !st.ok()) return st;
      ++rolled_back;
    }
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
  return rolled_back;
}

absl::Status Migrator::Repair(int64_t version, RepairAction action) {
  auto session = Session::Open(url_, options_, clock_, [this](auto& l) { Progress(l); });
  if (!session.ok()) return session.status();
  try {
    pqxx::work tx((*session)->conn());
    const std::string& table = (*session)->table();
    pqxx::result r;
    if (action == RepairAction::kMarkApplied) {
      r = tx.exec_params(
          "UPDATE " + table + " SET dirty = false, error = NULL, applied_at = now() "
          "WHERE migration_set = $1 AND version = $2 AND dirty RETURNING version",
          options_.set_name, version);
    } else {
      r = tx.exec_params(
          "DELETE FROM " + table + " WHERE migration_set = $1 AND version = $2 AND dirty "
          "RETURNING version",
          options_.set_name, version);
    }
    if (r.empty()) {
      return absl::NotFoundError(absl::StrCat("migration ", version, " of set \"",
                                              options_.set_name, "\" is not dirty"));
    }
    tx.commit();
    Progress(absl::StrCat("repaired migration ", version));
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
  return absl::OkStatus();
}

}  // namespace tether::common
