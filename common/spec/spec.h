// The cluster spec's rules, shared by tetherctl (before it sends), the mothership (before it
// stores) and the agent (before it reconciles): limits, names, files, and the migrations a spec
// carries. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/pg/migrator.h"
#include "tether/v1/spec.pb.h"

namespace tether::common {

inline constexpr int kMaxTenants = 10'000;
inline constexpr int64_t kMaxSpecBytes = 16 << 20;  // the spec with all its files
inline constexpr int kMaxWarmPool = 64;
inline constexpr int kMaxSpecFiles = 10'000;
inline constexpr size_t kMaxFileNameBytes = 255;

// The hook events a spec may name.
const std::vector<std::string>& HookEvents();

// A problem found in a spec: the field it is in (as a path like "tenants[3]" or
// "migrations.files[0002_add.up.sql]") and what is wrong, in one line.
struct SpecProblem {
  std::string field;
  std::string message;
};

// Every rule a spec must satisfy on its own: names are identifiers (tenants also not reserved
// nor duplicated), enums set, limits kept, files UTF-8 with matching sha256, migration files
// named NNNN_name.up|down.sql with no duplicate version. The first problem found, if any.
std::optional<SpecProblem> FindSpecProblem(const v1::ClusterSpec& spec);

// FindSpecProblem as a Status: kInvalidArgument "field: message".
absl::Status ValidateSpec(const v1::ClusterSpec& spec);

// FindSpecProblem, and the rules only a spec that enters the fleet must keep (tetherctl before
// it sends, the mothership before it stores): no migration or hook file is empty (or only
// whitespace), which is a file saved before it was written, never a migration. Agents check
// what they receive with FindSpecProblem alone, so a revision stored before a rule was added
// stays reconcilable.
std::optional<SpecProblem> FindNewSpecProblem(const v1::ClusterSpec& spec);

// FindNewSpecProblem as a Status: kInvalidArgument "field: message".
absl::Status ValidateNewSpec(const v1::ClusterSpec& spec);

// Names a tenant (a database or a schema) may not take: PostgreSQL's own (postgres, template*,
// public, information_schema, pg_*) and the agent's (tether_*: its database, templates, pools).
bool IsReservedTenantName(const std::string& name);

// The spec's migrations, parsed and ordered. kInvalidArgument as ParseMigrations.
absl::StatusOr<std::vector<Migration>> SpecMigrations(const v1::ClusterSpec& spec);

// The highest migration version of the spec, 0 when it has none.
int64_t TargetVersion(const v1::ClusterSpec& spec);

// Hex SHA-256 of a file's contents, as SpecFile.sha256 carries it.
std::string FileSha256(const std::string& contents);

// The serialized size of the spec, checked against kMaxSpecBytes.
int64_t SpecBytes(const v1::ClusterSpec& spec);

// Whether `s` is valid UTF-8.
bool IsUtf8(const std::string& s);
// Whether `s` is valid UTF-8 without control characters (what may be shown on one line).
bool IsPrintableUtf8(const std::string& s);

// The database a schema-tenancy cluster keeps its tenants' schemas in.
std::string SchemaTenancyDatabase(const v1::ClusterSpec& spec);

}  // namespace tether::common
