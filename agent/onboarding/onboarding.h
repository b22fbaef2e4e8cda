// Onboarding: how a new tenant gets its schema. One interface so the reconciler does not care
// which strategy a spec asks for:
//   migrations  replay every migration (ReplayOnboarding, below): the baseline;
//   template    clone a template database kept at the latest migration, or claim one of a warm
//               pool of clones (template_onboarding.h);
//   snapshot    apply a schema snapshot of the latest version in one transaction
//               (snapshot_onboarding.h).
// Whatever the strategy, every onboarded tenant is proved: its logical schema fingerprint must
// equal that of a tenant built by replaying every migration (the "reference", computed once per
// revision), or the onboarding fails naming the first difference and the tenant is not kept.
// A strategy that cannot serve a revision faithfully (its source differs from the replay)
// says why in a progress line and onboards that revision's tenants by replay.
// Implementations are thread-safe: several tenants are onboarded at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "agent/onboarding/schema_fingerprint.h"
#include "agent/reconcile/cluster_admin.h"
#include "common/pg/migrator.h"

namespace tether::agent {

struct OnboardRequest {
  std::string tenant;
  int64_t to_version = 0;  // 0: create it empty (migration policy manual)
  const std::vector<common::Migration>* migrations = nullptr;
};

// How a tenant was onboarded and what it proved.
struct Onboarded {
  std::string method;              // "migrations", "template", "warm_pool" or "snapshot"
  std::string fingerprint;         // of the tenant's schema once onboarded
  std::string replay_fingerprint;  // of a replay of the same migrations (equal, or it failed)
};

class Onboarding {
 public:
  virtual ~Onboarding() = default;
  virtual std::string name() const = 0;
  // Readies the strategy for tenants at `target_version` of `migrations`, once per reconcile
  // and before any tenant is onboarded: brings its template or snapshot forward and computes
  // the replay's fingerprint. A source that cannot be used is reported through `step` and the
  // revision is onboarded by replay; only PostgreSQL not answering is an error.
  virtual absl::Status Prepare(const std::vector<common::Migration>& migrations,
                               int64_t target_version, const StepFn& step) {
    return absl::OkStatus();
  }
  // Creates the tenant and brings it to `request.to_version`; idempotent, so a tenant
  // half-onboarded before a crash is finished, not duplicated. The errors of ClusterAdmin, and
  // kFailedPrecondition naming the first difference when the tenant's fingerprint is not the
  // replay's (the tenant is dropped again then, as it was created by this call).
  virtual absl::StatusOr<Onboarded> Onboard(const OnboardRequest& request,
                                            const StepFn& step) = 0;
  // Upkeep after a reconcile, off the onboarding path (refilling a warm pool). Stops early once
  // `stop` (may be null) is notified.
  virtual void Replenish(const StepFn& step, const absl::Notification* stop) {}
};

// Creates the tenant and replays its migrations one by one; the tenant is its own replay.
class ReplayOnboarding final : public Onboarding {
 public:
  explicit ReplayOnboarding(ClusterAdmin* admin) : admin_(admin) {}
  std::string name() const override { return "migrations"; }
  absl::StatusOr<Onboarded> Onboard(const OnboardRequest& request, const StepFn& step) override;

 private:
  ClusterAdmin* admin_;
};

// The fingerprint of `tenant` compared with `reference`: the Onboarded record on a match; on a
// mismatch the tenant is dropped (it was created by the caller's strategy just now) and the
// error names the first difference.
absl::StatusOr<Onboarded> ProveOnboarded(ClusterAdmin* admin, const std::string& tenant,
                                         const std::string& method,
                                         const SchemaFingerprint& reference);

// The replay every strategy is proved against: a tenant of this name, kept at the latest
// migration by ReplayInto.
inline constexpr char kReferenceTenant[] = "tether_reference";

// Keeps the scratch tenant `name` (a reserved tether_* name) at `target_version` by replay —
// bringing it forward when it is behind, rebuilding it when it is dirty, ahead, or has applied
// a migration whose checksum changed — and returns its fingerprint: the replay's.
absl::StatusOr<SchemaFingerprint> ReplayInto(ClusterAdmin* admin, const std::string& name,
                                             const std::vector<common::Migration>& migrations,
                                             int64_t target_version, const StepFn& step);

// How a strategy's Prepare gives up on a revision: PostgreSQL not answering is returned (the
// reconcile fails and is retried); anything else is said in a line — "<strategy>: cannot
// <what> (<why>); new tenants replay their migrations" — and OK is returned, so the revision is
// onboarded by replay.
absl::Status ReplayInstead(const std::string& strategy, const std::string& what,
                           const absl::Status& why, const StepFn& step);

// What a template, pool database or snapshot was built from: a hash over the version and
// checksum of every migration up to `up_to`.
std::string MigrationsDigest(const std::vector<common::Migration>& migrations, int64_t up_to);

}  // namespace tether::agent
