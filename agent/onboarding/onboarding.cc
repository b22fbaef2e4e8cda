// Replay onboarding, and what every strategy shares: the proof by fingerprint and the replayed
// reference.
#include "agent/onboarding/onboarding.h"

#include "absl/strings/str_cat.h"
#include "common/spec/spec.h"

namespace tether::agent {

absl::StatusOr<Onboarded> ReplayOnboarding::Onboard(const OnboardRequest& request,
                                                    const StepFn& step) {
  if (auto st = admin_->CreateTenant(request.tenant); !st.ok()) return st;
  if (request.to_version > 0 && request.migrations != nullptr) {
    auto applied =
        admin_->ApplyMigrations(request.tenant, *request.migrations, request.to_version, step);
    if (!applied.ok()) return applied.status();
  }
  auto fp = admin_->Fingerprint(request.tenant);
  if (!fp.ok()) return fp.status();
  return Onboarded{name(), fp->sha256, fp->sha256};
}

absl::StatusOr<Onboarded> ProveOnboarded(ClusterAdmin* admin, const std::string& tenant,
                                         const std::string& method,
                                         const SchemaFingerprint& reference) {
  auto fp = admin->Fingerprint(tenant);
  if (!fp.ok()) return fp.status();
  if (fp->sha256 == reference.sha256) return Onboarded{method, fp->sha256, reference.sha256};
  const std::string difference = FirstDifference(*fp, reference);
  // Created by this onboarding a moment ago, and wrong: it must not stay to be taken as ready.
  (void)admin->DropTenant(tenant);
  return absl::FailedPreconditionError(
      absl::StrCat("onboarded by ", method, " but its schema is not the replay's: it ", difference,
                   "; the tenant was dropped again"));
}

absl::StatusOr<SchemaFingerprint> ReplayInto(ClusterAdmin* admin, const std::string& name,
                                             const std::vector<common::Migration>& migrations,
                                             int64_t target_version, const StepFn& step) {
  if (auto st = admin->CreateTenant(name); !st.ok()) return st;
  auto report = admin->MigrationStatus(name, migrations);
  if (!report.ok()) return report.status();
  std::string why;
  if (report->dirty_version.has_value()) {
    why = absl::StrCat("migration ", *report->dirty_version, " is dirty");
  } else if (report->current_version > target_version) {
    why = absl::StrCat("it is at version ", report->current_version, ", above ", target_version);
  }
  for (const auto& m : report->migrations) {
    if (!why.empty()) break;
    if (m.checksum_drift) why = absl::StrCat("migration ", m.version, " changed since it ran");
    if (m.unknown) why = absl::StrCat("migration ", m.version, " is no longer in the spec");
  }
  if (!why.empty()) {
    step(absl::StrCat(name, ": rebuilding (", why, ")"));
    if (auto st = admin->DropTenant(name); !st.ok()) return st;
    if (auto st = admin->CreateTenant(name); !st.ok()) return st;
  }
  if (target_version > 0) {
    auto applied = admin->ApplyMigrations(name, migrations, target_version, [&](const std::string& line) {
      step(absl::StrCat(name, ": ", line));
    });
    if (!applied.ok()) return applied.status();
  }
  return admin->Fingerprint(name);
}

absl::Status ReplayInstead(const std::string& strategy, const std::string& what,
                           const absl::Status& why, const StepFn& step) {
  if (absl::IsUnavailable(why)) return why;
  step(absl::StrCat(strategy, ": cannot ", what, " (", why.message(),
                    "); new tenants replay their migrations"));
  return absl::OkStatus();
}

std::string MigrationsDigest(const std::vector<common::Migration>& migrations, int64_t up_to) {
  std::string all;
  for (const auto& m : migrations) {
    if (m.version > up_to) break;
    absl::StrAppend(&all, m.version, " ", m.checksum, "\n");
  }
  return common::FileSha256(all);
}

}  // namespace tether::agent
