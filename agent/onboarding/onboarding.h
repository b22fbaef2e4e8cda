// Onboarding: how a new tenant gets its schema. One interface so the reconciler does not care
// which strategy a spec asks for; `migrations` (replay every migration) is the baseline the
// faster strategies (template clones, schema snapshots, a warm pool) are measured against.
// Implementations are thread-safe: several tenants are onboarded at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/reconcile/cluster_admin.h"
#include "common/pg/migrator.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

struct OnboardRequest {
  std::string tenant;
  int64_t to_version = 0;  // 0: create it empty (migration policy manual)
  const std::vector<common::Migration>* migrations = nullptr;
};

class Onboarding {
 public:
  virtual ~Onboarding() = default;
  virtual std::string name() const = 0;
  // Creates the tenant and brings it to `to_version`; idempotent, so a tenant half-onboarded
  // before a crash is finished, not duplicated. The errors of ClusterAdmin.
  virtual absl::Status Onboard(const OnboardRequest& request, ClusterAdmin* admin,
                               const StepFn& step) = 0;
};

// Creates the tenant and replays its migrations one by one.
class ReplayOnboarding final : public Onboarding {
 public:
  std::string name() const override { return "migrations"; }
  absl::Status Onboard(const OnboardRequest& request, ClusterAdmin* admin,
                       const StepFn& step) override;
};

// The strategy for `kind`. Strategies this agent does not have yet are onboarded by replay,
// which gives the same schema, and `note` says so once.
std::unique_ptr<Onboarding> MakeOnboarding(v1::Onboarding kind, const StepFn& note);

}  // namespace tether::agent
