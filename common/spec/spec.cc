// Spec rules.
#include "common/spec/spec.h"

#include <algorithm>

#include <google/protobuf/stubs/common.h>

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/pg/identifiers.h"
#include "common/secrets.h"

namespace tether::common {

bool IsReservedTenantName(const std::string& name) {
  static const std::set<std::string> kReserved = {"postgres", "template0", "template1", "public",
                                                  "information_schema"};
  return kReserved.count(name) != 0 || absl::StartsWith(name, "pg_") ||
         absl::StartsWith(name, "tether_");
}

namespace {

// A value for an error message: escaped, and cut so a hostile 1 MB name stays one short line.
std::string Shown(const std::string& s) {
  std::string cut = s.size() > 80 ? s.substr(0, 80) : s;
  return absl::StrCat("\"", absl::CEscape(cut), s.size() > 80 ? "\"..." : "\"");
}

std::optional<SpecProblem> CheckFile(const std::string& field, const v1::SpecFile& f) {
  // Printable: the name is shown in errors and tables, and must not start a new line there.
  if (f.name().empty() || f.name().size() > kMaxFileNameBytes || !IsPrintableUtf8(f.name()) ||
      f.name().find('/') != std::string::npos) {
    return SpecProblem{field, absl::StrCat("file name ", Shown(f.name()), " is not a plain file name")};
  }
  if (!IsUtf8(f.contents())) {
    return SpecProblem{field, absl::StrCat("file ", Shown(f.name()), " is not UTF-8 text")};
  }
  if (f.contents().find('\0') != std::string::npos) {
    return SpecProblem{field, absl::StrCat("file ", Shown(f.name()), " contains a NUL byte")};
  }
  if (f.sha256() != FileSha256(f.contents())) {
    return SpecProblem{field, absl::StrCat("file ", Shown(f.name()),
                                           " does not match its sha256 (changed in transit?)")};
  }
  return std::nullopt;
}

}  // namespace

const std::vector<std::string>& HookEvents() {
  static const std::vector<std::string> kEvents = {"before_migrate", "after_migrate",
                                                   "after_tenant_created"};
  return kEvents;
}

bool IsUtf8(const std::string& s) {
  return google::protobuf::internal::IsStructurallyValidUTF8(s.data(), static_cast<int>(s.size()));
}

bool IsPrintableUtf8(const std::string& s) {
  return IsUtf8(s) && std::none_of(s.begin(), s.end(), [](char c) {
           return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
         });
}

std::string FileSha256(const std::string& contents) { return HashSecret(contents); }

int64_t SpecBytes(const v1::ClusterSpec& spec) {
  return static_cast<int64_t>(spec.ByteSizeLong());
}

std::string SchemaTenancyDatabase(const v1::ClusterSpec& spec) { return spec.cluster(); }

std::optional<SpecProblem> FindSpecProblem(const v1::ClusterSpec& spec) {
  if (SpecBytes(spec) > kMaxSpecBytes) {
    return SpecProblem{"spec", absl::StrCat("the spec and its files are ", SpecBytes(spec),
                                            " bytes; at most ", kMaxSpecBytes, " are allowed")};
  }
  if (auto st = ValidateIdentifier("cluster", spec.cluster()); !st.ok()) {
    return SpecProblem{"cluster", std::string(st.message())};
  }
  if (spec.mode() != v1::AGENT_MODE_LITE && spec.mode() != v1::AGENT_MODE_PRO) {
    return SpecProblem{"mode", "must be lite or pro"};
  }
  if (spec.postgres().version() < 12 || spec.postgres().version() > 18) {
    return SpecProblem{"postgres.version",
                       absl::StrCat("PostgreSQL ", spec.postgres().version(),
                                    " is not supported (12 to 18)")};
  }
  if (spec.tenancy() != v1::TENANCY_DATABASE && spec.tenancy() != v1::TENANCY_SCHEMA) {
    return SpecProblem{"tenancy", "must be database or schema"};
  }
  if (spec.tenancy() == v1::TENANCY_SCHEMA && IsReservedTenantName(spec.cluster())) {
    return SpecProblem{"cluster", absl::StrCat("\"", spec.cluster(),
                                               "\" is reserved and cannot hold schema tenants")};
  }
  if (spec.onboarding() != v1::ONBOARDING_MIGRATIONS &&
      spec.onboarding() != v1::ONBOARDING_TEMPLATE && spec.onboarding() != v1::ONBOARDING_SNAPSHOT) {
    return SpecProblem{"onboarding", "must be template, snapshot or migrations"};
  }
  if (spec.onboarding() == v1::ONBOARDING_TEMPLATE && spec.tenancy() == v1::TENANCY_SCHEMA) {
    return SpecProblem{"onboarding", "template clones databases; with tenancy schema use "
                                     "snapshot or migrations"};
  }
  if (spec.warm_pool() < 0 || spec.warm_pool() > kMaxWarmPool) {
    return SpecProblem{"warm_pool", absl::StrCat("must be between 0 and ", kMaxWarmPool)};
  }
  if (spec.warm_pool() > 0 && spec.onboarding() != v1::ONBOARDING_TEMPLATE) {
    return SpecProblem{"warm_pool", "is for onboarding template only (databases cloned ahead)"};
  }
  if (spec.migrations().policy() != v1::MIGRATION_POLICY_AUTO &&
      spec.migrations().policy() != v1::MIGRATION_POLICY_MANUAL) {
    return SpecProblem{"migrations.policy", "must be auto or manual"};
  }
  if (spec.migrations().files_size() > kMaxSpecFiles) {
    return SpecProblem{"migrations", absl::StrCat("at most ", kMaxSpecFiles, " files")};
  }
  std::set<std::string> file_names;
  std::vector<MigrationFile> files;
  for (const auto& f : spec.migrations().files()) {
    const std::string field = absl::StrCat("migrations.files[", Shown(f.name()), "]");
    if (auto p = CheckFile(field, f)) return p;
    if (!file_names.insert(f.name()).second) {
      return SpecProblem{field, absl::StrCat("file ", Shown(f.name()), " appears twice")};
    }
    files.push_back({f.name(), f.contents()});
  }
  if (auto parsed = ParseMigrations(files); !parsed.ok()) {
    return SpecProblem{"migrations", std::string(parsed.status().message())};
  }
  std::set<std::string> events;
  for (int i = 0; i < spec.hooks_size(); ++i) {
    const auto& h = spec.hooks(i);
    const std::string field = absl::StrCat("hooks.", h.event());
    if (std::find(HookEvents().begin(), HookEvents().end(), h.event()) == HookEvents().end()) {
      return SpecProblem{absl::StrCat("hooks[", i, "]"),
                         absl::StrCat("unknown hook ", Shown(h.event()),
                                      " (want before_migrate, after_migrate or after_tenant_created)")};
    }
    if (!events.insert(h.event()).second) return SpecProblem{field, "given twice"};
    if (auto p = CheckFile(field, h.file())) return p;
  }
  if (spec.tenants_size() > kMaxTenants) {
    return SpecProblem{"tenants", absl::StrCat(spec.tenants_size(), " tenants; at most ",
                                               kMaxTenants, " are allowed")};
  }
  std::set<std::string> tenants;
  for (int i = 0; i < spec.tenants_size(); ++i) {
    const std::string& name = spec.tenants(i).name();
    const std::string field = absl::StrCat("tenants[", i, "]");
    if (auto st = ValidateIdentifier("tenant", name); !st.ok()) {
      return SpecProblem{field, std::string(st.message())};
    }
    if (IsReservedTenantName(name)) {
      return SpecProblem{field, absl::StrCat("tenant name \"", name,
                                             "\" is reserved (postgres, template*, public, "
                                             "information_schema, pg_*, tether_*)")};
    }
    if (!tenants.insert(name).second) {
      return SpecProblem{field, absl::StrCat("tenant \"", name, "\" is listed twice")};
    }
  }
  return std::nullopt;
}

std::optional<SpecProblem> FindNewSpecProblem(const v1::ClusterSpec& spec) {
  if (auto p = FindSpecProblem(spec)) return p;
  auto empty = [](const v1::SpecFile& f) { return absl::StripAsciiWhitespace(f.contents()).empty(); };
  for (const auto& f : spec.migrations().files()) {
    if (empty(f)) {
      return SpecProblem{absl::StrCat("migrations.files[", Shown(f.name()), "]"),
                         absl::StrCat("file ", Shown(f.name()), " is empty")};
    }
  }
  for (const auto& h : spec.hooks()) {
    if (empty(h.file())) {
      return SpecProblem{absl::StrCat("hooks.", h.event()),
                         absl::StrCat("file ", Shown(h.file().name()), " is empty")};
    }
  }
  return std::nullopt;
}

absl::Status ValidateNewSpec(const v1::ClusterSpec& spec) {
  if (auto p = FindNewSpecProblem(spec)) {
    return absl::InvalidArgumentError(absl::StrCat(p->field, ": ", p->message));
  }
  return absl::OkStatus();
}

absl::Status ValidateSpec(const v1::ClusterSpec& spec) {
  if (auto p = FindSpecProblem(spec)) {
    return absl::InvalidArgumentError(absl::StrCat(p->field, ": ", p->message));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Migration>> SpecMigrations(const v1::ClusterSpec& spec) {
  std::vector<MigrationFile> files;
  for (const auto& f : spec.migrations().files()) files.push_back({f.name(), f.contents()});
  return ParseMigrations(files);
}

int64_t TargetVersion(const v1::ClusterSpec& spec) {
  auto migrations = SpecMigrations(spec);
  if (!migrations.ok() || migrations->empty()) return 0;
  return migrations->back().version;
}

}  // namespace tether::common
