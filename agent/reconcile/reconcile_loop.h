// ReconcileLoop: the agent's reconcile thread. It takes the newest revision the link handed
// on, waits until PostgreSQL is ready, reconciles it, persists the applied revision and reports
// the outcome (the link acks or nacks it). A failed revision is retried with backoff; a newer
// one replaces it at once. Every `resync` it reconciles the applied revision again, repairing
// drift (a tenant database dropped by hand). Run() owns the thread; Desire() and
// applied_revision() are safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
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
  virtual absl::StatusOr<int64_t> LoadAppliedRevision() = 0;
  virtual absl::Status SaveAppliedRevision(int64_t revision) = 0;
};

struct ReconcileLoopOptions {
  common::BackoffPolicy retry{absl::Seconds(2), absl::Minutes(5)};
  absl::Duration resync = absl::Minutes(5);
  absl::Duration ready_poll = absl::Milliseconds(200);
  int concurrency = 4;  // tenants reconciled at once
};

class ReconcileLoop {
 public:
  using ReportFn = std::function<void(const ReconcileReport&)>;

  ReconcileLoop(ReconcileEnvironment* env, common::Clock* clock, common::Random* random,
                ReportFn report, ReconcileLoopOptions options = {});

  // The link received `revision`; reconciled as soon as the loop is free (a newer one wins).
  void Desire(int64_t revision, v1::ClusterSpec spec);
  // Runs until `stop` is notified. `on_applied_loaded` is called once the agent's own record
  // of its applied revision has been read (for Hello).
  void Run(const absl::Notification* stop, const std::function<void(int64_t)>& on_applied_loaded);

  int64_t applied_revision() const;

 private:
  struct Desired {
    int64_t revision = 0;
    v1::ClusterSpec spec;
  };
  // Waits until there is something to reconcile (or `deadline`, or stop); returns it.
  std::optional<Desired> Next(absl::Time deadline, const absl::Notification* stop);

  ReconcileEnvironment* env_;
  common::Clock* clock_;
  ReportFn report_;
  ReconcileLoopOptions options_;
  common::Backoff backoff_;

  mutable absl::Mutex mu_;
  std::optional<Desired> desired_ ABSL_GUARDED_BY(mu_);   // newest, not yet taken
  int64_t applied_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tether::agent
