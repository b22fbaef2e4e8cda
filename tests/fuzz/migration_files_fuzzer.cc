// Fuzzes migration files as a spec carries them: their names through ParseMigrations (pairing,
// versions, the no-transaction marker) and the spec's file rules, and their SQL through
// SplitSqlStatements, as the migrator sends a non-transactional migration.
//
// The input is a list of files, each a line "== NAME" followed by its contents:
//   == 0001_init.up.sql
//   CREATE TABLE t (id int);
// Checked: accepted migrations are ordered by distinct versions, each with the checksum and
// transactional flag of its up file; a refusal is kInvalidArgument; a spec that passes
// ValidateSpec with these files has migrations, and the same target version.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/pg/migrator.h"
#include "common/pg/sql_split.h"
#include "common/spec/spec.h"
#include "tests/fuzz/fuzz_support.h"

namespace tether::fuzz {
namespace {

constexpr std::string_view kHeader = "== ";

std::vector<common::MigrationFile> ReadFiles(std::string_view text) {
  std::vector<common::MigrationFile> files;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find('\n', at), text.size());
    const std::string_view line = text.substr(at, end - at);
    if (line.substr(0, kHeader.size()) == kHeader) {
      files.push_back({std::string(line.substr(kHeader.size())), ""});
    } else if (!files.empty()) {
      files.back().contents.append(line);
      if (end < text.size()) files.back().contents.push_back('\n');
    }
    at = end + 1;
  }
  return files;
}

void CheckSplit(const std::string& sql) {
  size_t from = 0;
  for (const std::string& statement : common::SplitSqlStatements(sql)) {
    Require(!statement.empty(), "an empty statement");
    // Statements are pieces of the script, in order.
    const size_t found = sql.find(statement, from);
    Require(found != std::string::npos, "a statement is not a piece of the script");
    from = found + statement.size();
  }
}

}  // namespace
}  // namespace tether::fuzz

void tether::fuzz::Setup() {}

bool tether::fuzz::FuzzOne(std::string_view input) {
  using namespace tether;
  using fuzz::Require;
  const std::vector<common::MigrationFile> files =
      fuzz::ReadFiles(input);

  auto migrations = common::ParseMigrations(files);
  if (!migrations.ok()) {
    Require(migrations.status().code() == absl::StatusCode::kInvalidArgument,
            "a refusal is not kInvalidArgument");
  } else {
    size_t ups = 0;
    for (const auto& f : files) ups += absl::EndsWith(f.filename, ".up.sql") ? 1 : 0;
    Require(migrations->size() == ups, "not one migration per up file");
    int64_t previous = 0;
    for (const common::Migration& m : *migrations) {
      Require(m.version > previous, "versions are not increasing");
      previous = m.version;
      Require(!m.name.empty(), "a migration without a name");
      Require(m.checksum == common::FileSha256(m.up_sql), "a checksum is not its up file's");
      Require(m.transactional != absl::StartsWith(m.up_sql, "-- tether:no-transaction"),
              "the no-transaction marker is misread");
      fuzz::CheckSplit(m.up_sql);
      fuzz::CheckSplit(m.down_sql);
    }
  }

  // The same files in a spec, as tetherctl uploads them.
  v1::ClusterSpec spec;
  spec.set_cluster("shop");
  spec.mutable_postgres()->set_version(15);
  spec.set_tenancy(v1::TENANCY_DATABASE);
  spec.set_onboarding(v1::ONBOARDING_MIGRATIONS);
  spec.mutable_migrations()->set_policy(v1::MIGRATION_POLICY_AUTO);
  for (const auto& f : files) {
    v1::SpecFile* file = spec.mutable_migrations()->add_files();
    file->set_name(f.filename);
    file->set_contents(f.contents);
    file->set_sha256(common::FileSha256(f.contents));
  }
  if (common::ValidateSpec(spec).ok()) {
    auto from_spec = common::SpecMigrations(spec);
    Require(from_spec.ok(), "a valid spec's migrations do not parse");
    Require(migrations.ok(), "a valid spec has files ParseMigrations refuses");
    Require(common::TargetVersion(spec) == (from_spec->empty() ? 0 : from_spec->back().version),
            "the target version is not the newest migration");
  }
  return true;
}
