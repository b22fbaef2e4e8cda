// Replay onboarding.
#include "agent/onboarding/onboarding.h"

#include "absl/strings/str_cat.h"

namespace tether::agent {

absl::Status ReplayOnboarding::Onboard(const OnboardRequest& request, ClusterAdmin* admin,
                                       const StepFn& step) {
  if (auto st = admin->CreateTenant(request.tenant); !st.ok()) return st;
  if (request.to_version <= 0 || request.migrations == nullptr) return absl::OkStatus();
  return admin->ApplyMigrations(request.tenant, *request.migrations, request.to_version, step)
      .status();
}

std::unique_ptr<Onboarding> MakeOnboarding(v1::Onboarding kind, const StepFn& note) {
  if (kind != v1::ONBOARDING_MIGRATIONS && kind != v1::ONBOARDING_UNSPECIFIED && note) {
    note(absl::StrCat("onboarding ", v1::Onboarding_Name(kind),
                      " is not available in this agent yet; new tenants replay their migrations"));
  }
  return std::make_unique<ReplayOnboarding>();
}

}  // namespace tether::agent
