// ReconcileLoop.
#include "agent/reconcile/reconcile_loop.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "agent/reconcile/reconciler.h"
#include "common/spec/spec.h"
#include "common/logging.h"

namespace tether::agent {

ReconcileLoop::ReconcileLoop(ReconcileEnvironment* env, common::Clock* clock,
                             common::Random* random, ReportFn report, ReconcileLoopOptions options)
    : env_(env),
      clock_(clock),
      report_(std::move(report)),
      options_(options),
      backoff_(options.retry, random) {}

void ReconcileLoop::Desire(int64_t revision, v1::ClusterSpec spec, std::string command_id) {
  absl::MutexLock lock(&mu_);
  if (desired_.has_value() && desired_->revision >= revision) return;
  desired_ = Desired{revision, std::move(spec), std::move(command_id)};
  if (!newest_.has_value() || newest_->revision < revision) newest_ = desired_;
}

void ReconcileLoop::Schedule(Task task, absl::Duration delay) {
  const absl::Time not_before = clock_->Now() + delay;
  absl::MutexLock lock(&mu_);
  tasks_.push_back(Scheduled{not_before, std::move(task)});
}

void ReconcileLoop::ReconcileNow() {
  absl::MutexLock lock(&mu_);
  again_ = true;
}

void ReconcileLoop::SetActing(bool acting) {
  absl::MutexLock lock(&mu_);
  acting_ = acting;
}

absl::StatusOr<CommandEnvironment> ReconcileLoop::ForCommand(int64_t min_revision) {
  CommandEnvironment out;
  {
    absl::MutexLock lock(&mu_);
    if (!newest_.has_value()) {
      return absl::UnavailableError("no desired state has reached this agent yet");
    }
    if (newest_->revision < min_revision) {
      return absl::FailedPreconditionError(
          absl::StrCat("the command needs revision ", min_revision, "; this agent has only ",
                       newest_->revision));
    }
    out.revision = newest_->revision;
    out.spec = newest_->spec;
  }
  if (!env_->Ready()) return absl::UnavailableError("PostgreSQL is not ready");
  auto admin = env_->Admin(out.spec);
  if (!admin.ok()) return admin.status();
  auto records = env_->Records();
  if (!records.ok()) return records.status();
  out.admin = *std::move(admin);
  out.records = *records;
  return out;
}

void ReconcileLoop::Follow() {
  std::optional<Desired> newest;
  {
    absl::MutexLock lock(&mu_);
    newest = newest_;
  }
  if (!newest.has_value() || newest->revision <= followed_) return;
  auto applied = env_->LoadAppliedRevision();
  if (!applied.ok() || *applied != newest->revision) return;  // not yet, or cannot tell
  auto records = env_->Records();
  auto migrations = common::SpecMigrations(newest->spec);
  if (!records.ok() || !migrations.ok()) return;
  auto list = (*records)->List();
  if (!list.ok()) return;
  ReconcileReport report;
  report.revision = *applied;
  report.tenants = TenantStatuses(*list, *migrations);
  {
    absl::MutexLock lock(&mu_);
    applied_ = *applied;
  }
  followed_ = *applied;
  spdlog::info("standing by: the leader applied revision={}; acking it", *applied);
  report_(report);
}

int64_t ReconcileLoop::applied_revision() const {
  absl::MutexLock lock(&mu_);
  return applied_;
}

ReconcileLoop::Work ReconcileLoop::Next(absl::Time deadline, const absl::Notification* stop) {
  Work work;
  for (;;) {
    const absl::Time now = clock_->Now();
    const bool take_tasks = env_->Ready();  // looked at again at least every ready_poll
    bool standing_by = false;
    {
      absl::MutexLock lock(&mu_);
      // Only tasks that are due (in the order they were scheduled).
      auto due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        // A task that needs a desired state and finds none asks to be run again later
        // (ForCommand says kUnavailable); one that needs none, a reprovision, runs now.
        if (!take_tasks || !acting_) return false;
        for (const Scheduled& t : tasks_) {
          if (t.not_before <= now) return true;
        }
        return false;
      };
      auto has_work = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return acting_ && (desired_.has_value() || due() || again_);
      };
      // Woken by Desire(), Schedule(), ReconcileNow() and SetActing(); looks at the clock and
      // `stop` at least every ready_poll.
      mu_.AwaitWithTimeout(absl::Condition(&has_work), options_.ready_poll);
      if (has_work()) {
        work.desired = std::move(desired_);
        desired_.reset();
        if (due()) {
          std::vector<Scheduled> later;
          for (Scheduled& t : tasks_) {
            if (t.not_before <= now) {
              work.tasks.push_back(std::move(t.task));
            } else {
              later.push_back(std::move(t));
            }
          }
          tasks_.swap(later);
        }
        work.again = again_;
        again_ = false;
        return work;
      }
      standing_by = !acting_;
    }
    if (stop->HasBeenNotified()) return work;
    if (standing_by && take_tasks && clock_->Now() >= next_follow_) {
      next_follow_ = clock_->Now() + options_.follow;
      work.follow = true;
      return work;
    }
    // A standby's retries and resyncs are not due: it waits to lead.
    if (!standing_by && clock_->Now() >= deadline) {
      work.timed_out = true;
      return work;
    }
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
    Work work = Next(next_attempt, stop);
    if (!work.tasks.empty() && !env_->Ready()) {
      // PostgreSQL went away since Next looked: the tasks wait for it, first in line.
      absl::MutexLock lock(&mu_);
      std::vector<Scheduled> waiting;
      for (Task& task : work.tasks) {
        waiting.push_back(Scheduled{absl::InfinitePast(), std::move(task)});
      }
      for (Scheduled& t : tasks_) waiting.push_back(std::move(t));
      tasks_.swap(waiting);
      work.tasks.clear();
    }
    if (stop->HasBeenNotified()) return;
    if (work.follow) {
      Follow();
      continue;
    }
    // Commands first: one resumed at start-up runs before a reconcile could act on a tenant
    // it left part-way.
    for (Task& task : work.tasks) {
      task(stop);
      if (stop->HasBeenNotified()) return;
    }
    {
      absl::MutexLock lock(&mu_);
      work.again = work.again || again_;  // asked for by one of the tasks
      again_ = false;
    }
    if (work.desired.has_value()) {
      const bool same = current.has_value() && settled &&
                        work.desired->revision == current->revision;
      if (!same) {
        current = std::move(work.desired);
        backoff_.Reset();
      } else if (!work.again) {
        continue;
      }
    } else if (!current.has_value()) {
      next_attempt = absl::InfiniteFuture();
      continue;
    } else if (!work.again && !work.timed_out) {
      continue;  // only tasks ran
    }
    if (!env_->Ready()) {
      next_attempt = clock_->Now() + options_.ready_poll;
      continue;
    }
    ReconcileReport report;
    report.revision = current->revision;
    auto admin = env_->Admin(current->spec);
    auto records = env_->Records();
    std::unique_ptr<Onboarding> onboarding;
    if (!admin.ok() || !records.ok()) {
      report.status = !admin.ok() ? admin.status() : records.status();
    } else {
      onboarding = env_->NewOnboarding(current->spec, admin->get());
      Reconciler reconciler(admin->get(), *records, clock_, options_.concurrency,
                            onboarding.get());
      // Only the first reconcile of an apply command's revision is that command's: later ones
      // (retries, resyncs) come after its Ack or Nack ended it.
      StepFn command_lines;
      if (!current->command_id.empty() && command_lines_) {
        command_lines = command_lines_(current->command_id);
      }
      current->command_id.clear();
      report = reconciler.Reconcile(current->revision, current->spec,
                                    [&](const std::string& line) {
                                      spdlog::info("reconcile: {}", line);
                                      if (command_lines) command_lines(line);
                                    },
                                    stop);
    }
    if (stop->HasBeenNotified() && absl::IsCancelled(report.status)) return;
    bool acting;
    {
      absl::MutexLock lock(&mu_);
      acting = acting_;
      // Leadership was lost part-way (pro mode): the leader that follows does this revision;
      // should this agent lead again, it does it itself.
      if (!acting && !desired_.has_value()) desired_ = current;
    }
    if (!acting) {
      spdlog::info("reconcile of revision={} ended by the loss of leadership: {}", report.revision,
                   report.status.ok() ? "done" : std::string(report.status.message()));
      current.reset();
      settled = false;
      next_attempt = absl::InfiniteFuture();
      continue;
    }
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
    // Off the onboarding path, once the revision is reported: refill a warm pool.
    if (report.status.ok() && onboarding != nullptr) {
      onboarding->Replenish(
          [](const std::string& line) { spdlog::info("onboarding: {}", line); }, stop);
    }
  }
}

}  // namespace tether::agent
