// ReconcileLoop: the agent's reconcile thread. It takes the newest revision the link handed
// on, waits until PostgreSQL is ready, reconciles it, persists the applied revision and reports
// the outcome (the link acks or nacks it). A failed revision is retried with backoff; a newer
// one replaces it at once. Every `resync` it reconciles the applied revision again, repairing
// drift (a tenant database dropped by hand). Between reconciles it runs the tasks handed to
// Schedule() (commands), each with the newest spec the loop knows (ForCommand): a task waits
// until PostgreSQL is ready (one that needs a spec before any arrived is told kUnavailable by
// ForCommand, and its dispatcher runs it again later); after one that
// changed tenants it reconciles its revision again at once (ReconcileNow), so a fresh Ack
// reports them. A pro agent that stands by does neither (SetActing(false)): revisions and tasks
// wait, and the leader's are taken up the moment it leads; a reconcile that loses leadership
// part-way is not reported (its fenced writes failed) and waits to be done again. Meanwhile it
// follows the leader: every `follow` it reads the applied revision the agents share and, when
// the leader has applied the newest revision this agent received, acks it with the tenants as
// the shared records have them (its database is at that revision, whoever applied it). Run() owns
// the thread; Desire(), Schedule(), ReconcileNow(), SetActing() and applied_revision() are
// safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/onboarding/onboarding.h"
#include "agent/reconcile/cluster_admin.h"
#include "agent/reconcile/report.h"
#include "agent/tenants/tenant_records.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/random.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

// What the loop needs from the rest of the agent: whether PostgreSQL is ready, and once it is,
// the admin for a spec, the tenant records and the agent's own applied revision.
class ReconcileEnvironment {
 public:
  virtual ~ReconcileEnvironment() = default;
  virtual bool Ready() = 0;
  virtual absl::StatusOr<std::unique_ptr<ClusterAdmin>> Admin(const v1::ClusterSpec& spec) = 0;
  virtual absl::StatusOr<TenantRecords*> Records() = 0;
  // The spec's onboarding strategy over `admin`, which outlives it. Replay unless overridden.
  virtual std::unique_ptr<Onboarding> NewOnboarding(const v1::ClusterSpec& spec,
                                                    ClusterAdmin* admin) {
    return std::make_unique<ReplayOnboarding>(admin);
  }
  virtual absl::StatusOr<int64_t> LoadAppliedRevision() = 0;
  virtual absl::Status SaveAppliedRevision(int64_t revision) = 0;
};

struct ReconcileLoopOptions {
  common::BackoffPolicy retry{absl::Seconds(2), absl::Minutes(5)};
  absl::Duration resync = absl::Minutes(5);
  absl::Duration ready_poll = absl::Milliseconds(200);
  int concurrency = 4;  // tenants reconciled at once
  absl::Duration follow = absl::Seconds(1);  // a standby looks at what the leader applied
};

// What a command runs with: the newest spec the loop knows, and the agent's PostgreSQL.
struct CommandEnvironment {
  int64_t revision = 0;
  v1::ClusterSpec spec;
  std::unique_ptr<ClusterAdmin> admin;
  TenantRecords* records = nullptr;
};

class ReconcileLoop {
 public:
  using ReportFn = std::function<void(const ReconcileReport&)>;
  using Task = std::function<void(const absl::Notification* stop)>;
  // The progress lines of the reconcile that apply command `command_id` asked for.
  using CommandLinesFn = std::function<StepFn(const std::string& command_id)>;

  ReconcileLoop(ReconcileEnvironment* env, common::Clock* clock, common::Random* random,
                ReportFn report, ReconcileLoopOptions options = {});

  // Where the lines of apply commands go; set before Run().
  void set_command_lines(CommandLinesFn fn) { command_lines_ = std::move(fn); }

  // The link received `revision`; reconciled as soon as the loop is free (a newer one wins).
  // `command_id` names the apply command that stored it: the first reconcile of the revision
  // sends its lines as that command's.
  void Desire(int64_t revision, v1::ClusterSpec spec, std::string command_id = "");
  // Runs `task` on the loop's thread between reconciles, not before `delay` from now and only
  // once PostgreSQL is ready; those due in the order scheduled.
  void Schedule(Task task, absl::Duration delay = absl::ZeroDuration());
  // Reconciles the current revision again as soon as the loop is free.
  void ReconcileNow();
  // Whether this agent may act (reconcile, run tasks): always for a lite agent, while it leads
  // for a pro one. True until set otherwise.
  void SetActing(bool acting);
  // For a task on the loop's thread: the newest spec (at least `min_revision`), an admin for
  // it and the tenant records. kUnavailable while no spec has arrived yet or PostgreSQL is not
  // ready (try again later); kFailedPrecondition when only an older spec has arrived.
  absl::StatusOr<CommandEnvironment> ForCommand(int64_t min_revision);
  // Runs until `stop` is notified. `on_applied_loaded` is called once the agent's own record
  // of its applied revision has been read (for Hello).
  void Run(const absl::Notification* stop, const std::function<void(int64_t)>& on_applied_loaded);

  int64_t applied_revision() const;

 private:
  struct Desired {
    int64_t revision = 0;
    v1::ClusterSpec spec;
    std::string command_id;
  };
  struct Work {
    std::optional<Desired> desired;
    std::vector<Task> tasks;
    bool again = false;      // ReconcileNow()
    bool timed_out = false;  // `deadline` passed
    bool follow = false;     // standing by, and time to look at what the leader applied
  };
  // Waits until there is something to do (or `deadline`, or stop); returns it. Tasks are taken
  // only when they are due and PostgreSQL is ready.
  Work Next(absl::Time deadline, const absl::Notification* stop);
  // Standing by: acks the newest revision received once the leader has applied it.
  void Follow();

  ReconcileEnvironment* env_;
  common::Clock* clock_;
  ReportFn report_;
  ReconcileLoopOptions options_;
  common::Backoff backoff_;
  CommandLinesFn command_lines_;

  mutable absl::Mutex mu_;
  std::optional<Desired> desired_ ABSL_GUARDED_BY(mu_);   // newest, not yet taken
  std::optional<Desired> newest_ ABSL_GUARDED_BY(mu_);    // newest ever received, for commands
  struct Scheduled {
    absl::Time not_before;
    Task task;
  };
  std::vector<Scheduled> tasks_ ABSL_GUARDED_BY(mu_);
  bool again_ ABSL_GUARDED_BY(mu_) = false;
  bool acting_ ABSL_GUARDED_BY(mu_) = true;
  int64_t applied_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t followed_ = 0;                 // the last revision acked as a standby (Run's alone)
  absl::Time next_follow_ = absl::InfinitePast();  // Next's alone
};

}  // namespace tether::agent
