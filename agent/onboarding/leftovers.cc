// WithoutLeftovers.
#include "agent/onboarding/leftovers.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/onboarding/snapshot_onboarding.h"
#include "agent/onboarding/template_onboarding.h"

namespace tether::agent {

WithoutLeftovers::WithoutLeftovers(std::unique_ptr<Onboarding> inner, v1::Onboarding kind,
                                   v1::Tenancy tenancy, ClusterAdmin* admin,
                                   PgDatabases databases)
    : inner_(std::move(inner)),
      kind_(kind),
      tenancy_(tenancy),
      admin_(admin),
      databases_(std::move(databases)) {}

void WithoutLeftovers::Replenish(const StepFn& step, const absl::Notification* stop) {
  inner_->Replenish(step, stop);
  const bool template_kept = kind_ == v1::ONBOARDING_TEMPLATE;
  const bool snapshot_kept = kind_ == v1::ONBOARDING_SNAPSHOT;
  std::set<std::string> unused;
  if (!snapshot_kept) {
    unused.insert(kSnapshotTenant);
    unused.insert(kSnapshotCheckTenant);
  }
  if (!template_kept && !snapshot_kept) unused.insert(kReferenceTenant);
  if (tenancy_ == v1::TENANCY_SCHEMA) {
    // Schemas: dropping one that is not there is a no-op.
    for (const auto& name : unused) (void)admin_->DropTenant(name);
    return;
  }
  auto ours = databases_.List("tether_");
  if (!ours.ok()) return;
  for (const auto& db : *ours) {
    const bool leftover =
        unused.count(db.name) != 0 ||
        (!template_kept &&
         (db.name == kTemplateDatabase || absl::StartsWith(db.name, kPoolPrefix)));
    if (!leftover) continue;
    absl::Status st = databases_.Drop(db.name);
    step(st.ok() ? absl::StrCat("dropped ", db.name, ": onboarding is no longer ",
                                 absl::StartsWith(db.name, kSnapshotTenant) ? "snapshot"
                                                                            : "template")
                 : absl::StrCat("cannot drop ", db.name, ": ", st.message()));
  }
}

}  // namespace tether::agent
