// ReconcileLoop.
#include "agent/reconcile/reconcile_loop.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "agent/reconcile/reconciler.h"
#include "common/logging.h"

namespace tether::agent {

ReconcileLoop::ReconcileLoop(ReconcileEnvironment* env, common::Clock* clock,
                             common::Random* random, ReportFn report, ReconcileLoopOptions options)
    : env_(env),
      clock_(clock),
      report_(std::move(report)),
      options_(options),
      backoff_(options.retry, random) {}

void ReconcileLoop::Desire(int64_t revision, v1::ClusterSpec spec) {
  absl::MutexLock lock(&mu_);
  if (desired_.has_value() && desired_->revision >= revision) return;
  desired_ = Desired{revision, std::move(spec)};
}

int64_t ReconcileLoop::applied_revision() const {
  absl::MutexLock lock(&mu_);
  return applied_;
}

std::optional<ReconcileLoop::Desired> ReconcileLoop::Next(absl::Time deadline,
                                                          const absl::Notification* stop) {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto has_work = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return desired_.has_value(); };
      // Woken by Desire(); looks at the clock and `stop` at least every ready_poll.
      mu_.AwaitWithTimeout(absl::Condition(&has_work), options_.ready_poll);
      if (desired_.has_value()) {
        std::optional<Desired> out = std::move(desired_);
        desired_.reset();
        return out;
      }
    }
    if (stop->HasBeenNotified() || clock_->Now() >= deadline) return std::nullopt;
  }
}

void ReconcileLoop::Run(const absl::Notification* stop,
                        const std::function<void(int64_t)>& on_applied_loaded) {
  // Nothing can be reconciled, nor the applied revision read, before PostgreSQL is ready.
  while (!env_->Ready()) {
    if (!clock_->SleepFor(options_.ready_poll, stop)) return;
  }
  for (;;) {
    auto loaded = env_->LoadAppliedRevision();
    if (loaded.ok()) {
      absl::MutexLock lock(&mu_);
      applied_ = *loaded;
      break;
    }
    spdlog::warn("cannot read the applied revision reason=\"{}\"", loaded.status().message());
    if (!clock_->SleepFor(backoff_.Next(), stop)) return;
  }
  backoff_.Reset();
  if (on_applied_loaded) on_applied_loaded(applied_revision());

  std::optional<Desired> current;  // the revision being worked on, or last applied
  bool settled = true;             // `current` was reconciled successfully
  absl::Time next_attempt = absl::InfiniteFuture();
  while (!stop->HasBeenNotified()) {
    std::optional<Desired> fresh = Next(next_attempt, stop);
    if (stop->HasBeenNotified()) return;
    if (fresh.has_value()) {
      if (current.has_value() && settled && fresh->revision == current->revision) continue;
      current = std::move(fresh);
      backoff_.Reset();
    } else if (!current.has_value()) {
      next_attempt = absl::InfiniteFuture();
      continue;
    }
    if (!env_->Ready()) {
      next_attempt = clock_->Now() + options_.ready_poll;
      continue;
    }
    ReconcileReport report;
    report.revision = current->revision;
    auto admin = env_->Admin(current->spec);
    auto records = env_->Records();
    if (!admin.ok() || !records.ok()) {
      report.status = !admin.ok() ? admin.status() : records.status();
    } else {
      Reconciler reconciler(admin->get(), *records, clock_, options_.concurrency);
      report = reconciler.Reconcile(current->revision, current->spec,
                                    [](const std::string& line) { spdlog::info("reconcile: {}", line); },
                                    stop);
    }
    if (stop->HasBeenNotified() && absl::IsCancelled(report.status)) return;
    if (report.status.ok()) {
      if (auto st = env_->SaveAppliedRevision(report.revision); !st.ok()) {
        report.status = absl::Status(st.code(), absl::StrCat("cannot record the applied revision: ",
                                                             st.message()));
      }
    }
    if (report.status.ok()) {
      {
        absl::MutexLock lock(&mu_);
        applied_ = report.revision;
      }
      settled = true;
      backoff_.Reset();
      next_attempt = clock_->Now() + options_.resync;
    } else {
      settled = false;
      const absl::Duration delay = backoff_.Next();
      next_attempt = clock_->Now() + delay;
      spdlog::warn("reconcile failed revision={} retry_in={} reason=\"{}\"", report.revision,
                   absl::FormatDuration(delay), report.status.message());
    }
    report_(report);
  }
}

}  // namespace tether::agent
