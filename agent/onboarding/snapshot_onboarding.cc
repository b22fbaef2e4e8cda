// SnapshotOnboarding: taking, proving, storing and applying a revision's snapshot.
#include "agent/onboarding/snapshot_onboarding.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/pg/errors.h"
#include "common/pg/pool.h"
#include "common/pg/sql_lexer.h"
#include "common/text.h"

namespace tether::agent {
namespace {

const char* TenancyName(v1::Tenancy tenancy) {
  return tenancy == v1::TENANCY_SCHEMA ? "schema" : "database";
}

struct StoredSnapshot {
  bool faithful = false;
  std::string reason;
  std::string fingerprint;
  std::string sql;
};

absl::StatusOr<std::optional<StoredSnapshot>> LoadSnapshot(const std::string& url,
                                                          v1::Tenancy tenancy,
                                                          const std::string& digest) {
  auto conn = common::Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::read_transaction tx(**conn);
    auto rows = tx.exec_params(
        "SELECT faithful, reason, fingerprint, sql FROM onboarding_snapshots "
        "WHERE tenancy = $1 AND migrations = $2",
        TenancyName(tenancy), digest);
    if (rows.empty()) return std::optional<StoredSnapshot>();
    StoredSnapshot s{rows[0][0].as<bool>(), rows[0][1].as<std::string>(),
                     rows[0][2].as<std::string>(), rows[0][3].as<std::string>()};
    return std::optional<StoredSnapshot>(std::move(s));
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

// Keeps one snapshot per tenancy: the latest revision's.
absl::Status StoreSnapshot(const std::string& url, v1::Tenancy tenancy, const std::string& digest,
                          int64_t version, const StoredSnapshot& s) {
  auto conn = common::Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    tx.exec_params("DELETE FROM onboarding_snapshots WHERE tenancy = $1", TenancyName(tenancy));
    tx.exec_params(
        "INSERT INTO onboarding_snapshots (tenancy, migrations, version, faithful, reason, "
        "fingerprint, sql) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        TenancyName(tenancy), digest, version, s.faithful, s.reason, s.fingerprint, s.sql);
    tx.commit();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

}  // namespace

std::string CleanDump(const std::string& dump) { return common::StripPsqlMetaCommands(dump); }

SnapshotOnboarding::SnapshotOnboarding(ClusterAdmin* admin, SnapshotOptions options,
                                       common::ProcessRunner* runner, common::Clock* clock)
    : admin_(admin), options_(std::move(options)), runner_(runner), clock_(clock), replay_(admin) {}

absl::StatusOr<std::string> SnapshotOnboarding::Dump(const StepFn& step) {
  std::string pg_dump = options_.pg_dump;
  if (pg_dump.empty()) {
    pg_dump = "pg_dump";
    auto major = admin_->Ping();
    if (!major.ok()) return major.status();
    const std::string own = absl::StrCat("/usr/lib/postgresql/", *major, "/bin/pg_dump");
    if (::access(own.c_str(), X_OK) == 0) pg_dump = own;
  }
  char path[] = "/tmp/tether-snapshot-XXXXXX";
  const int fd = ::mkstemp(path);
  if (fd < 0) return absl::InternalError("cannot create a temporary file for the snapshot");
  ::close(fd);
  const bool schemas = options_.tenancy == v1::TENANCY_SCHEMA;
  common::ProcessSpec spec;
  spec.argv = {pg_dump, "--no-owner", "--inserts", "--rows-per-insert=1000",
               absl::StrCat("--file=", path),
               absl::StrCat("--dbname=", options_.tenant_database_url(schemas ? "" : kSnapshotTenant))};
  if (schemas) spec.argv.push_back(absl::StrCat("--schema=", kSnapshotTenant));
  auto result = runner_->Run(spec);
  auto contents = common::ReadFile(path);
  std::filesystem::remove(path);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("pg_dump exited with ", result->exit_code, ": ",
                                            common::CutText(result->output, 512)));
  }
  if (!contents.ok()) return contents.status();
  return CleanDump(*contents);
}

absl::Status SnapshotOnboarding::Apply(const std::string& sql, const std::string& tenant) {
  const bool schemas = options_.tenancy == v1::TENANCY_SCHEMA;
  auto conn = common::Connect(options_.tenant_database_url(schemas ? "" : tenant));
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    tx.exec(schemas ? common::RenameSchemaInSql(sql, kSnapshotTenant, tenant) : sql);
    tx.commit();
    return absl::OkStatus();
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

absl::StatusOr<SchemaFingerprint> SnapshotOnboarding::Check(const std::string& sql) {
  const bool schemas = options_.tenancy == v1::TENANCY_SCHEMA;
  // An empty database kept for this, or no schema at all: the snapshot is applied and read in
  // one transaction that is rolled back, so nothing is dropped (a DROP DATABASE would force a
  // checkpoint).
  if (auto st = schemas ? admin_->DropTenant(kSnapshotCheckTenant)
                        : admin_->CreateTenant(kSnapshotCheckTenant);
      !st.ok()) {
    return st;
  }
  auto conn = common::Connect(options_.tenant_database_url(schemas ? "" : kSnapshotCheckTenant));
  if (!conn.ok()) return conn.status();
  try {
    pqxx::work tx(**conn);
    tx.exec(schemas ? common::RenameSchemaInSql(sql, kSnapshotTenant, kSnapshotCheckTenant) : sql);
    return FingerprintSchemaIn(tx, schemas ? kSnapshotCheckTenant : "public");
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

absl::StatusOr<std::string> SnapshotOnboarding::TakeSnapshot(
    const std::vector<common::Migration>& migrations, int64_t target, const std::string& digest,
    const StepFn& step) {
  const absl::Time start = clock_->Now();
  StoredSnapshot snapshot;
  snapshot.fingerprint = reference_.sha256;
  auto source = ReplayInto(admin_, kSnapshotTenant, migrations, target, step);
  if (!source.ok()) return source.status();
  if (source->sha256 != reference_.sha256) {
    snapshot.reason = absl::StrCat(
        "a replay into ", kSnapshotTenant, " differs from one into ", kReferenceTenant,
        " (it ", FirstDifference(*source, reference_),
        "): the migrations depend on the tenant's name");
  } else {
    auto sql = Dump(step);
    if (!sql.ok()) return sql.status();
    snapshot.sql = *std::move(sql);
    // The proof: applied to a third name, it gives the replay's fingerprint.
    auto check = Check(snapshot.sql);
    if (!check.ok()) {
      if (absl::IsUnavailable(check.status())) return check.status();
      snapshot.reason = absl::StrCat("the snapshot does not apply: ", check.status().message());
    } else if (check->sha256 != reference_.sha256) {
      snapshot.reason = absl::StrCat("applied, the snapshot ", FirstDifference(*check, reference_));
    }
  }
  snapshot.faithful = snapshot.reason.empty();
  if (!snapshot.faithful) snapshot.sql.clear();
  if (auto st = StoreSnapshot(options_.agent_database_url, options_.tenancy, digest, target, snapshot);
      !st.ok()) {
    return st;
  }
  if (!snapshot.faithful) {
    step(absl::StrCat("snapshot: not faithful to a replay (", snapshot.reason,
                      "); new tenants of this revision replay their migrations"));
    return std::string();
  }
  step(absl::StrCat("snapshot: taken at version ", target, " (", snapshot.sql.size(),
                    " bytes), proved against a replay in ",
                    absl::FormatDuration(absl::Trunc(clock_->Now() - start, absl::Milliseconds(1)))));
  return snapshot.sql;
}

absl::Status SnapshotOnboarding::Prepare(const std::vector<common::Migration>& migrations,
                                         int64_t target_version, const StepFn& step) {
  sql_.clear();
  target_ = target_version;
  if (target_version <= 0) return absl::OkStatus();
  auto reference = ReplayInto(admin_, kReferenceTenant, migrations, target_version, step);
  if (!reference.ok()) {
    return ReplayInstead(name(), absl::StrCat("replay the migrations into ", kReferenceTenant),
                         reference.status(), step);
  }
  reference_ = *std::move(reference);
  const std::string digest = MigrationsDigest(migrations, target_version);
  auto stored = LoadSnapshot(options_.agent_database_url, options_.tenancy, digest);
  if (!stored.ok()) return stored.status();
  if (stored->has_value() && (*stored)->fingerprint == reference_.sha256) {
    if (!(*stored)->faithful) {
      step(absl::StrCat("snapshot: not faithful to a replay (", (*stored)->reason,
                        "); new tenants of this revision replay their migrations"));
      return absl::OkStatus();
    }
    sql_ = (*stored)->sql;
    return absl::OkStatus();
  }
  auto sql = TakeSnapshot(migrations, target_version, digest, step);
  if (!sql.ok()) return ReplayInstead(name(), "take it", sql.status(), step);
  sql_ = *std::move(sql);
  return absl::OkStatus();
}

absl::StatusOr<Onboarded> SnapshotOnboarding::Onboard(const OnboardRequest& request,
                                                      const StepFn& step) {
  if (sql_.empty() || request.to_version != target_) return replay_.Onboard(request, step);
  if (options_.tenancy != v1::TENANCY_SCHEMA) {
    if (auto st = admin_->CreateTenant(request.tenant); !st.ok()) return st;
  }
  const absl::Time start = clock_->Now();
  if (auto st = Apply(sql_, request.tenant); !st.ok()) return st;
  step(absl::StrCat("snapshot applied in ",
                    absl::FormatDuration(absl::Trunc(clock_->Now() - start, absl::Milliseconds(1)))));
  return ProveOnboarded(admin_, request.tenant, "snapshot", reference_);
}

}  // namespace tether::agent
