// WriteFence: what every write of a pro agent to the shared database carries. The leadership
// loop sets the epoch this agent leads in (0 while it stands by); each writer begins its
// transaction with Check(), which refuses at once while the agent does not lead and otherwise
// asks the database (Fence) whether the epoch is still the cluster's. A lite agent has no fence:
// writers given a null fence write unchecked (CheckFence). Thread-safe.
#pragma once

#include <pqxx/pqxx>

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace tether::agent {

class WriteFence {
 public:
  // The cluster is set once it is known (the agent's identity), before any writer runs.
  void set_cluster(std::string cluster) { cluster_ = std::move(cluster); }

  // Where tether_fence lives (Leadership::own_schema()); set before the first epoch.
  void set_schema(std::string schema) {
    absl::MutexLock lock(&mu_);
    schema_ = std::move(schema);
  }
  void set_epoch(int64_t epoch) { epoch_.store(epoch); }
  int64_t epoch() const { return epoch_.load(); }
  bool leads() const { return epoch() != 0; }

  // kFailedPrecondition when this agent does not lead, or its epoch is over (asked of the
  // shared database, in `tx`).
  absl::Status Check(pqxx::transaction_base& tx) const;
  // Only what this agent knows: kFailedPrecondition when it does not lead. For writes to a
  // database other than the shared one (a tenant's own), which cannot ask the epoch's row;
  // those are kept to one writer by their migrator lock and their own bookkeeping.
  absl::Status CheckLeads() const;

 private:
  std::string cluster_;
  std::atomic<int64_t> epoch_{0};
  mutable absl::Mutex mu_;
  std::string schema_ ABSL_GUARDED_BY(mu_);
};

// OK without a fence (a lite agent); otherwise fence->Check(tx).
absl::Status CheckFence(const WriteFence* fence, pqxx::transaction_base& tx);

}  // namespace tether::agent
