// Leftovers: when a spec stops asking for a strategy, what that strategy kept on the server —
// the template and warm pool of `template`, the scratch tenant of `snapshot`, the reference
// both are proved against — is dropped, after the reconcile, instead of lying there for good.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "agent/onboarding/onboarding.h"
#include "agent/onboarding/pg_databases.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

// `inner` as it is, with Replenish also dropping what strategies other than `kind` left.
// `databases`: the server's databases (tenancy database), to find them without a tenant list.
class WithoutLeftovers final : public Onboarding {
 public:
  WithoutLeftovers(std::unique_ptr<Onboarding> inner, v1::Onboarding kind, v1::Tenancy tenancy,
                   ClusterAdmin* admin, PgDatabases databases);

  std::string name() const override { return inner_->name(); }
  absl::Status Prepare(const std::vector<common::Migration>& migrations, int64_t target_version,
                       const StepFn& step) override {
    return inner_->Prepare(migrations, target_version, step);
  }
  absl::StatusOr<Onboarded> Onboard(const OnboardRequest& request, const StepFn& step) override {
    return inner_->Onboard(request, step);
  }
  void Replenish(const StepFn& step, const absl::Notification* stop) override;

 private:
  std::unique_ptr<Onboarding> inner_;
  const v1::Onboarding kind_;
  const v1::Tenancy tenancy_;
  ClusterAdmin* admin_;
  PgDatabases databases_;
};

}  // namespace tether::agent
