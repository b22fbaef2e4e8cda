// Reconciler: observe, plan, execute, report.
#include "agent/reconcile/reconciler.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/onboarding/onboarding.h"
#include "agent/reconcile/executor.h"
#include "agent/reconcile/plan.h"
#include "common/spec/spec.h"

namespace tether::agent {

std::vector<v1::TenantStatus> TenantStatuses(const std::map<std::string, TenantRecord>& records,
                                             const std::vector<common::Migration>& migrations) {
  const int64_t target = migrations.empty() ? 0 : migrations.back().version;
  std::vector<v1::TenantStatus> out;
  for (const auto& [name, record] : records) {
    v1::TenantStatus s;
    s.set_name(name);
    s.set_state(record.state);
    s.set_version(record.version);
    s.set_target_version(target);
    for (const auto& m : migrations) {
      if (m.version > record.version) s.add_pending_versions(m.version);
    }
    s.set_error(record.error);
    s.set_held(record.held);
    s.set_onboarding(record.onboarding);
    s.set_fingerprint(record.fingerprint);
    s.set_replay_fingerprint(record.replay_fingerprint);
    *s.mutable_updated_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(
        absl::ToUnixMicros(record.updated_at));
    out.push_back(std::move(s));
  }
  return out;
}

Reconciler::Reconciler(ClusterAdmin* admin, TenantRecords* records, common::Clock* clock,
                       int concurrency, Onboarding* onboarding)
    : admin_(admin),
      records_(records),
      clock_(clock),
      concurrency_(concurrency),
      onboarding_(onboarding) {}

ReconcileReport Reconciler::Reconcile(int64_t revision, const v1::ClusterSpec& spec,
                                      const StepFn& step, const absl::Notification* stop) {
  const absl::Time start = clock_->Now();
  ReconcileReport report;
  report.revision = revision;
  auto finish = [&](absl::Status status) {
    report.status = std::move(status);
    report.took = clock_->Now() - start;
    return report;
  };
  if (auto st = common::ValidateSpec(spec); !st.ok()) return finish(st);
  auto migrations = common::SpecMigrations(spec);
  if (!migrations.ok()) return finish(migrations.status());
  const int64_t target = migrations->empty() ? 0 : migrations->back().version;

  auto major = admin_->Ping();
  if (!major.ok()) return finish(major.status());
  if (*major != spec.postgres().version()) {
    return finish(absl::FailedPreconditionError(
        absl::StrCat("the spec asks for PostgreSQL ", spec.postgres().version(),
                     "; this agent's server is PostgreSQL ", *major)));
  }

  // Observe: what exists, and what the agent's records say.
  auto existing = admin_->ListTenants();
  if (!existing.ok()) return finish(existing.status());
  auto records = records_->List();
  if (!records.ok()) return finish(records.status());
  ObservedState observed;
  for (const auto& t : spec.tenants()) {
    observed.tenants[t.name()].exists = existing->count(t.name()) != 0;
  }
  for (const auto& [name, record] : *records) {
    ObservedTenant& seen = observed.tenants[name];
    seen.exists = existing->count(name) != 0;
    seen.recorded = true;
    seen.state = record.state;
    seen.version = record.version;
    seen.held = record.held;
  }
  // Databases or schemas neither in the spec nor recorded are not ours: they stay out of it.

  const Plan plan = PlanReconcile(spec, target, observed);
  const bool auto_migrate = spec.migrations().policy() == v1::MIGRATION_POLICY_AUTO;
  step(absl::StrCat("revision ", revision, ": ", spec.tenants_size(), " tenants, ",
                    plan.actions.size(), " to change, ",
                    plan.pending.empty() ? ""
                                         : absl::StrCat(plan.pending.size(), " left pending (",
                                                        auto_migrate ? "held" : "policy manual",
                                                        "), "),
                    "target version ", target));
  ReplayOnboarding replay(admin_);
  Onboarding* onboarding = onboarding_ != nullptr ? onboarding_ : &replay;
  if (auto st = onboarding->Prepare(*migrations, target, step); !st.ok()) return finish(st);
  Executor executor(admin_, records_, onboarding, clock_, concurrency_);
  executor.set_hooks({spec.hooks().begin(), spec.hooks().end()});
  ExecutionResult result = executor.Run(plan, *migrations, target, step, stop);

  auto after = records_->List();
  if (after.ok()) report.tenants = TenantStatuses(*after, *migrations);
  if (!after.ok()) return finish(after.status());
  if (!result.failures.empty()) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < result.failures.size() && i < 3; ++i) {
      parts.push_back(absl::StrCat(result.failures[i].tenant, ": ",
                                   result.failures[i].status.message()));
    }
    if (result.failures.size() > 3) {
      parts.push_back(absl::StrCat("and ", result.failures.size() - 3, " more"));
    }
    return finish(absl::AbortedError(absl::StrCat(result.failures.size(), " of ",
                                                  plan.actions.size(), " tenant changes failed: ",
                                                  absl::StrJoin(parts, "; "))));
  }
  if (result.stopped) return finish(absl::CancelledError("stopped before every tenant was done"));
  step(absl::StrCat("revision ", revision, " reconciled in ",
                    absl::FormatDuration(absl::Trunc(clock_->Now() - start, absl::Milliseconds(1)))));
  return finish(absl::OkStatus());
}

}  // namespace tether::agent
