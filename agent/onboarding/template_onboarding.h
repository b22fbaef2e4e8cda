// TemplateOnboarding (tenancy database): new tenants are copies of a template database kept at
// the spec's latest migration, or claims from a warm pool of copies made ahead.
//
// The template, `tether_template`, is built by replay and then sealed (IS_TEMPLATE, no
// connections, a build mark saying which migrations it holds and its fingerprint), so no pool,
// health check or monitor can hold it open. When a revision adds migrations it is unsealed,
// brought forward and sealed again before any tenant is cloned; one found unmarked (a crash
// while it was being built) or built from other migrations is dropped and rebuilt, never
// cloned. Beside it, `tether_reference` is a replay under another name: when the two differ the
// migrations depend on the database's name, and that revision is onboarded by replay.
//
// Clones use STRATEGY WAL_LOG for small templates and FILE_COPY for large ones (WAL_LOG copies
// every block through the WAL, so its cost grows with the template; FILE_COPY costs two
// checkpoints whatever the size). A clone that meets the template in use by another session
// retries with backoff, saying so in its progress line.
//
// Warm pool (`warm_pool: N`): N databases `tether_pool_*` cloned from the template, each marked
// with the template's build mark. Onboarding claims one whose mark equals the template's with
// a rename in one transaction; one built from an older revision is never handed out (it is
// dropped and cloned again). Replenish() refills the pool after a reconcile.
// Thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agent/onboarding/onboarding.h"
#include "agent/onboarding/pg_databases.h"
#include "common/clock.h"

namespace tether::agent {

inline constexpr char kTemplateDatabase[] = "tether_template";
inline constexpr char kPoolPrefix[] = "tether_pool_";

struct TemplateOptions {
  int warm_pool = 0;
  // Templates at least this big are cloned with FILE_COPY (see docs/benchmarks.md).
  int64_t file_copy_from_bytes = 24ll << 20;
  // How long a clone waits, in all, for a template that another session holds open.
  absl::Duration busy_wait = absl::Seconds(60);
};

class TemplateOnboarding final : public Onboarding {
 public:
  // `admin` works on tenants of the server `databases` manages (tenancy database).
  TemplateOnboarding(ClusterAdmin* admin, PgDatabases databases, TemplateOptions options,
                     common::Clock* clock);

  std::string name() const override { return "template"; }
  absl::Status Prepare(const std::vector<common::Migration>& migrations, int64_t target_version,
                       const StepFn& step) override;
  absl::StatusOr<Onboarded> Onboard(const OnboardRequest& request, const StepFn& step) override;
  void Replenish(const StepFn& step, const absl::Notification* stop) override;

 private:
  // Brings the template to `target` (building or rebuilding it as needed); its mark.
  absl::StatusOr<BuildMark> BringTemplateForward(const std::vector<common::Migration>& migrations,
                                                 int64_t target, const StepFn& step);
  absl::StatusOr<BuildMark> RebuildTemplate(const std::vector<common::Migration>& migrations,
                                            int64_t target, const StepFn& step);
  // Clones `name` from the template, retrying while it is busy.
  absl::Status CloneFromTemplate(const std::string& name, const StepFn& step);
  // A pool database whose mark is the template's, taken from the list (empty: none left).
  std::string TakeFromPool();

  ClusterAdmin* admin_;
  PgDatabases databases_;
  const TemplateOptions options_;
  common::Clock* clock_;

  // Set by Prepare; read by Onboard and Replenish.
  bool serving_ = false;  // tenants at target_ are cloned; otherwise replayed
  int64_t target_ = 0;
  BuildMark mark_;
  SchemaFingerprint reference_;
  CloneStrategy strategy_ = CloneStrategy::kWalLog;
  ReplayOnboarding replay_;

  absl::Mutex mu_;
  std::vector<std::string> pool_ ABSL_GUARDED_BY(mu_);  // ready pool databases, unclaimed
};

}  // namespace tether::agent
