// HealthState: the agent's current view of its own PostgreSQL, written by the provisioning
// loop and read by the heartbeat sender and the agent's health endpoint. Thread-safe.
#pragma once

#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "tether/v1/types.pb.h"

namespace tether::agent {

class HealthState {
 public:
  void Set(const v1::Health& health) {
    std::function<void(const v1::Health&)> listener;
    {
      absl::MutexLock lock(&mu_);
      health_ = health;
      listener = listener_;
    }
    if (listener) listener(health);
  }
  // Called (outside the lock, on the setter's thread) after every Set.
  void SetListener(std::function<void(const v1::Health&)> listener) {
    absl::MutexLock lock(&mu_);
    listener_ = std::move(listener);
  }
  v1::Health Get() const {
    absl::MutexLock lock(&mu_);
    return health_;
  }

 private:
  mutable absl::Mutex mu_;
  v1::Health health_ ABSL_GUARDED_BY(mu_);
  std::function<void(const v1::Health&)> listener_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::agent
