// Executor: a small pool of workers over the plan's actions.
#include "agent/reconcile/executor.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <thread>

#include "agent/metrics.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"

namespace tether::agent {
namespace {

std::string Took(absl::Duration d) {
  return absl::StrFormat("%.0f ms", absl::ToDoubleMilliseconds(d));
}

}  // namespace

Executor::Executor(ClusterAdmin* admin, TenantRecords* records, Onboarding* onboarding,
                   common::Clock* clock, int concurrency)
    : admin_(admin),
      records_(records),
      onboarding_(onboarding),
      clock_(clock),
      concurrency_(std::max(1, concurrency)) {}

absl::Status Executor::Record(const std::string& tenant, v1::TenantState state, int64_t version,
                              bool held, const std::string& error, const Onboarded* onboarded) {
  TenantRecord record;
  if (onboarded != nullptr) {
    record.onboarding = onboarded->method;
    record.fingerprint = onboarded->fingerprint;
    record.replay_fingerprint = onboarded->replay_fingerprint;
  }
  record.held = held;
  record.name = tenant;
  record.state = state;
  record.version = version;
  record.error = error;
  record.updated_at = clock_->Now();
  return records_->Put(record);
}

int64_t Executor::AppliedVersion(const std::string& tenant,
                                 const std::vector<common::Migration>& migrations,
                                 int64_t fallback) {
  auto report = admin_->MigrationStatus(tenant, migrations);
  return report.ok() ? report->current_version : fallback;
}

bool Executor::HasHook(const std::string& event) const {
  for (const auto& hook : hooks_) {
    if (hook.event() == event) return true;
  }
  return false;
}

absl::Status Executor::RunHook(const std::string& tenant, const std::string& event,
                               const std::string& key, const StepFn& tenant_step) {
  for (const auto& hook : hooks_) {
    if (hook.event() != event) continue;
    const std::string what = absl::StrCat("hook ", event, " (", hook.file().name(), ")");
    const absl::Time start = clock_->Now();
    auto ran = admin_->RunHook(tenant, event, key, hook.file().contents());
    if (!ran.ok()) {
      return absl::Status(ran.status().code(),
                          absl::StrCat(what, " failed: ", ran.status().message()));
    }
    tenant_step(*ran ? absl::StrCat(what, " ", Took(clock_->Now() - start))
                     : absl::StrCat(what, " ran before; skipped"));
  }
  return absl::OkStatus();
}

absl::Status Executor::RunAction(const Action& action,
                                 const std::vector<common::Migration>& migrations,
                                 int64_t target_version, const StepFn& step) {
  const std::string& tenant = action.tenant;
  const absl::Time start = clock_->Now();
  auto tenant_step = [&](const std::string& line) { step(absl::StrCat(tenant, ": ", line)); };
  auto settled = [&](int64_t version) {
    return version >= target_version ? v1::TENANT_STATE_READY : v1::TENANT_STATE_PENDING;
  };
  auto fail = [&](const absl::Status& st, const Onboarded* onboarded = nullptr) {
    const int64_t version = AppliedVersion(tenant, migrations, action.from_version);
    (void)Record(tenant, v1::TENANT_STATE_FAILED, version, action.held,
                 std::string(st.message()), onboarded);
    tenant_step(absl::StrCat("failed after ", Took(clock_->Now() - start), ": ", st.message()));
    return st;
  };
  switch (action.kind) {
    case ActionKind::kOnboard: {
      if (auto st = Record(tenant, v1::TENANT_STATE_CREATING, action.from_version, action.held);
          !st.ok()) {
        return st;
      }
      tenant_step(absl::StrCat("onboarding (", onboarding_->name(), ") to version ",
                               action.to_version));
      OnboardRequest request{tenant, action.to_version, &migrations};
      auto onboarded = onboarding_->Onboard(request, tenant_step);
      if (!onboarded.ok()) return fail(onboarded.status());
      if (auto st = RunHook(tenant, "after_tenant_created", "created", tenant_step); !st.ok()) {
        return fail(st, &*onboarded);  // failed, but onboarded: the record keeps how
      }
      // Brought to `to_version`, it is there; created without migrating (policy manual), it may
      // be one that existed already: ask what it has.
      const int64_t version = action.to_version > 0
                                  ? action.to_version
                                  : AppliedVersion(tenant, migrations, action.from_version);
      if (auto st = Record(tenant, settled(version), version, action.held, "", &*onboarded);
          !st.ok()) {
        return st;
      }
      AgentMetrics::Process().Onboarded(onboarded->method, clock_->Now() - start);
      tenant_step(absl::StrCat("created at version ", version, " in ",
                               Took(clock_->Now() - start), " (", onboarded->method,
                               "; fingerprint ", onboarded->fingerprint.substr(0, 12),
                               onboarded->fingerprint == onboarded->replay_fingerprint
                                   ? ", the replay's)"
                                   : ")"));
      return absl::OkStatus();
    }
    case ActionKind::kMigrate: {
      if (auto st = Record(tenant, v1::TENANT_STATE_MIGRATING, action.from_version, action.held);
          !st.ok()) {
        return st;
      }
      // Hooks key on the version they lead to, so each runs once per tenant and version.
      const std::string key = absl::StrCat(action.to_version);
      if (action.after_failure) {
        // The failed step may have been this hook, after a successful onboarding.
        if (auto st = RunHook(tenant, "after_tenant_created", "created", tenant_step); !st.ok()) {
          return fail(st);
        }
      }
      if (HasHook("before_migrate")) {
        auto report = admin_->MigrationStatus(tenant, migrations);
        if (!report.ok()) return fail(report.status());
        bool pending = false;
        for (const auto& m : report->migrations) {
          pending = pending || (!m.applied && m.version <= action.to_version);
        }
        if (pending) {
          if (auto st = RunHook(tenant, "before_migrate", key, tenant_step); !st.ok()) {
            return fail(st);
          }
        }
      }
      auto applied = admin_->ApplyMigrations(tenant, migrations, action.to_version, tenant_step);
      if (!applied.ok()) return fail(applied.status());
      // After a retry of a failure, too (the hook may be what failed); never at version 0,
      // where nothing was migrated.
      if ((*applied > 0 || action.after_failure) && action.to_version > 0) {
        if (auto st = RunHook(tenant, "after_migrate", key, tenant_step); !st.ok()) return fail(st);
      }
      const int64_t version = std::max(action.from_version, action.to_version);
      if (auto st = Record(tenant, settled(version), version, action.held); !st.ok()) return st;
      tenant_step(absl::StrCat("at version ", version, " (", *applied, " applied) in ",
                               Took(clock_->Now() - start)));
      return absl::OkStatus();
    }
    case ActionKind::kOrphan:
      if (auto st = Record(tenant, v1::TENANT_STATE_ORPHANED, action.from_version, action.held);
          !st.ok()) {
        return st;
      }
      tenant_step("left the spec; kept as an orphan (prune is false)");
      return absl::OkStatus();
    case ActionKind::kDrop:
      if (auto st = admin_->DropTenant(tenant); !st.ok()) return fail(st);
      if (auto st = records_->Remove(tenant); !st.ok()) return st;
      tenant_step(absl::StrCat("dropped (prune is true) in ", Took(clock_->Now() - start)));
      return absl::OkStatus();
    case ActionKind::kForget:
      if (auto st = records_->Remove(tenant); !st.ok()) return st;
      tenant_step("gone from PostgreSQL and from the spec; record forgotten");
      return absl::OkStatus();
  }
  return absl::InternalError("unknown action");
}

ExecutionResult Executor::Run(const Plan& plan, const std::vector<common::Migration>& migrations,
                              int64_t target_version, const StepFn& step,
                              const absl::Notification* stop) {
  ExecutionResult result;
  absl::Mutex mu;
  std::atomic<size_t> next{0};
  // The step callback is called from several workers; callers get one line at a time.
  auto serial_step = [&](const std::string& line) {
    absl::MutexLock lock(&mu);
    step(line);
  };
  auto work = [&] {
    for (;;) {
      if (stop != nullptr && stop->HasBeenNotified()) {
        absl::MutexLock lock(&mu);
        result.stopped = next.load() < plan.actions.size();
        return;
      }
      const size_t i = next.fetch_add(1);
      if (i >= plan.actions.size()) return;
      absl::Status st = RunAction(plan.actions[i], migrations, target_version, serial_step);
      absl::MutexLock lock(&mu);
      ++result.actions_done;
      if (!st.ok()) result.failures.push_back({plan.actions[i].tenant, st});
    }
  };
  const int workers = std::min<int>(concurrency_, static_cast<int>(plan.actions.size()));
  std::vector<std::thread> threads;
  for (int i = 1; i < workers; ++i) threads.emplace_back(work);
  if (workers > 0) work();
  for (auto& t : threads) t.join();
  return result;
}

}  // namespace tether::agent
