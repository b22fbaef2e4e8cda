// HealthState: the agent's current view of its own PostgreSQL, written by the provisioning
// loop and read by the heartbeat sender and the agent's health endpoint. Thread-safe.
#pragma once

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "tether/v1/types.pb.h"

namespace tether::agent {

class HealthState {
 public:
  void Set(const v1::Health& health) {
    absl::MutexLock lock(&mu_);
    health_ = health;
  }
  v1::Health Get() const {
    absl::MutexLock lock(&mu_);
    return health_;
  }

 private:
  mutable absl::Mutex mu_;
  v1::Health health_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::agent
