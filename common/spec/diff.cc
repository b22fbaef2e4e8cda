// Spec diffs.
#include "common/spec/diff.h"

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tether::common {
namespace {

std::string Lower(const std::string& enum_name, const std::string& prefix) {
  std::string s = enum_name.substr(prefix.size());
  for (auto& c : s) c = static_cast<char>(std::tolower(c));
  return s;
}

std::map<std::string, std::string> Files(const v1::ClusterSpec& spec) {
  std::map<std::string, std::string> files;
  for (const auto& f : spec.migrations().files()) files[f.name()] = f.sha256();
  return files;
}

std::map<std::string, std::string> Hooks(const v1::ClusterSpec& spec) {
  std::map<std::string, std::string> hooks;
  for (const auto& h : spec.hooks()) hooks[h.event()] = h.file().sha256();
  return hooks;
}

void Changed(std::vector<std::string>* out, const std::string& field, const std::string& before,
             const std::string& after) {
  if (before != after) out->push_back(absl::StrCat("~ ", field, ": ", before, " -> ", after));
}

}  // namespace

std::vector<std::string> DiffSpecs(const v1::ClusterSpec* before, const v1::ClusterSpec& after) {
  static const v1::ClusterSpec kEmpty;
  std::vector<std::string> out;
  const v1::ClusterSpec& b = before != nullptr ? *before : kEmpty;
  if (before == nullptr) out.push_back(absl::StrCat("+ cluster ", after.cluster()));
  if (before != nullptr) {
    Changed(&out, "mode", Lower(v1::AgentMode_Name(b.mode()), "AGENT_MODE_"),
            Lower(v1::AgentMode_Name(after.mode()), "AGENT_MODE_"));
    Changed(&out, "postgres.version", absl::StrCat(b.postgres().version()),
            absl::StrCat(after.postgres().version()));
    Changed(&out, "tenancy", Lower(v1::Tenancy_Name(b.tenancy()), "TENANCY_"),
            Lower(v1::Tenancy_Name(after.tenancy()), "TENANCY_"));
    Changed(&out, "onboarding", Lower(v1::Onboarding_Name(b.onboarding()), "ONBOARDING_"),
            Lower(v1::Onboarding_Name(after.onboarding()), "ONBOARDING_"));
    Changed(&out, "warm_pool", absl::StrCat(b.warm_pool()), absl::StrCat(after.warm_pool()));
    Changed(&out, "migrations.policy",
            Lower(v1::MigrationPolicy_Name(b.migrations().policy()), "MIGRATION_POLICY_"),
            Lower(v1::MigrationPolicy_Name(after.migrations().policy()), "MIGRATION_POLICY_"));
    Changed(&out, "prune", b.prune() ? "true" : "false", after.prune() ? "true" : "false");
  }
  const auto files_before = Files(b);
  const auto files_after = Files(after);
  for (const auto& [name, sha] : files_after) {
    auto it = files_before.find(name);
    if (it == files_before.end()) {
      out.push_back(absl::StrCat("+ migration ", name));
    } else if (it->second != sha) {
      out.push_back(absl::StrCat("~ migration ", name, " (edited)"));
    }
  }
  for (const auto& [name, sha] : files_before) {
    if (files_after.count(name) == 0) out.push_back(absl::StrCat("- migration ", name));
  }
  const auto hooks_before = Hooks(b);
  const auto hooks_after = Hooks(after);
  for (const auto& [event, sha] : hooks_after) {
    auto it = hooks_before.find(event);
    if (it == hooks_before.end()) {
      out.push_back(absl::StrCat("+ hook ", event));
    } else if (it->second != sha) {
      out.push_back(absl::StrCat("~ hook ", event, " (edited)"));
    }
  }
  for (const auto& [event, sha] : hooks_before) {
    if (hooks_after.count(event) == 0) out.push_back(absl::StrCat("- hook ", event));
  }
  std::set<std::string> tenants_before, tenants_after;
  for (const auto& t : b.tenants()) tenants_before.insert(t.name());
  for (const auto& t : after.tenants()) tenants_after.insert(t.name());
  for (const auto& t : after.tenants()) {
    if (tenants_before.count(t.name()) == 0) out.push_back(absl::StrCat("+ tenant ", t.name()));
  }
  for (const auto& t : b.tenants()) {
    if (tenants_after.count(t.name()) == 0) {
      out.push_back(absl::StrCat("- tenant ", t.name(),
                                 after.prune() ? " (dropped: prune is true)"
                                               : " (orphaned: prune is false)"));
    }
  }
  return out;
}

namespace {

// The version of a migration file ("0003_x.up.sql" or "0003_x.down.sql" → 3); 0 when the
// name has none.
int64_t VersionOf(const std::string& name) {
  const size_t underscore = name.find('_');
  int64_t version = 0;
  if (underscore == std::string::npos || !absl::SimpleAtoi(name.substr(0, underscore), &version)) {
    return 0;
  }
  return version;
}

// The version of an up migration file; 0 for a down file or anything else.
int64_t UpVersion(const std::string& name) {
  return absl::EndsWith(name, ".up.sql") ? VersionOf(name) : 0;
}

}  // namespace

absl::Status CheckSuccessor(const v1::ClusterSpec& before, const v1::ClusterSpec& after,
                            int64_t unapplied_above) {
  auto may_change = [&](const std::string& name) {
    return unapplied_above >= 0 && VersionOf(name) > unapplied_above;
  };
  if (before.tenancy() != after.tenancy()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "tenancy cannot change from ", Lower(v1::Tenancy_Name(before.tenancy()), "TENANCY_"),
        " to ", Lower(v1::Tenancy_Name(after.tenancy()), "TENANCY_"),
        " once a revision exists; make a new cluster instead"));
  }
  const auto files_before = Files(before);
  const auto files_after = Files(after);
  // A new migration numbered below the newest one an earlier revision carried would be skipped
  // by every tenant already past it: tenants at the same version would differ.
  int64_t newest = 0;
  std::string newest_name;
  for (const auto& [name, sha] : files_before) {
    if (may_change(name)) continue;  // may be replaced: not a bound for new files
    if (UpVersion(name) > newest) {
      newest = UpVersion(name);
      newest_name = name;
    }
  }
  for (const auto& [name, sha] : files_after) {
    const int64_t version = UpVersion(name);
    if (files_before.count(name) == 0 && version > 0 && version <= newest) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration file ", name, " is numbered at or below ", newest_name,
          ", which an earlier revision carried; tenants past it would never run it: number new "
          "migrations after the last one"));
    }
  }
  for (const auto& [name, sha] : files_before) {
    if (may_change(name)) continue;
    auto it = files_after.find(name);
    if (it == files_after.end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration file ", name,
          " was in an earlier revision and is missing: migrations cannot be removed once applied "
          "(one that no tenant applied can be, with apply --replace-unapplied)"));
    }
    if (it->second != sha) {
      return absl::FailedPreconditionError(absl::StrCat(
          "migration file ", name,
          " differs from the one an earlier revision had: add a new migration instead of editing "
          "it (one that no tenant applied can be replaced with apply --replace-unapplied)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tether::common
