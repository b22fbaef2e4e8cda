// HealthState: the agent's current view of its own PostgreSQL, written by the provisioning
// loop, and of its role in the cluster, written by the leadership loop (pro mode); read by the
// heartbeat sender and the agent's health endpoint. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "tether/v1/types.pb.h"

namespace tether::agent {

class HealthState {
 public:
  // PostgreSQL's health; the role set by SetRole is kept.
  void Set(const v1::Health& health) {
    std::function<void(const v1::Health&)> listener;
    v1::Health now;
    {
      absl::MutexLock lock(&mu_);
      health_ = health;
      now = MergedLocked();
      listener = listener_;
    }
    if (listener) listener(now);
  }
  void SetRole(v1::AgentRole role, int64_t epoch) {
    std::function<void(const v1::Health&)> listener;
    v1::Health now;
    {
      absl::MutexLock lock(&mu_);
      role_ = role;
      epoch_ = epoch;
      now = MergedLocked();
      listener = listener_;
    }
    if (listener) listener(now);
  }
  // Called (outside the lock, on the setter's thread) after every Set and SetRole.
  void SetListener(std::function<void(const v1::Health&)> listener) {
    absl::MutexLock lock(&mu_);
    listener_ = std::move(listener);
  }
  v1::Health Get() const {
    absl::MutexLock lock(&mu_);
    return MergedLocked();
  }

 private:
  v1::Health MergedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::Health h = health_;
    h.set_role(role_);
    h.set_epoch(epoch_);
    return h;
  }

  mutable absl::Mutex mu_;
  v1::Health health_ ABSL_GUARDED_BY(mu_);
  v1::AgentRole role_ ABSL_GUARDED_BY(mu_) = v1::AGENT_ROLE_STANDALONE;
  int64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;
  std::function<void(const v1::Health&)> listener_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::agent
