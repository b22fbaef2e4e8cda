// FakeClock: time that moves only when a test calls Advance(). Sleepers wake when the fake
// time passes their deadline or their stop notification fires. Thread-safe.
#pragma once

#include <algorithm>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/random.h"

namespace tether::testing {

class FakeClock final : public common::Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'800'000'000)) : now_(start) {}

  absl::Time Now() const override {
    absl::MutexLock lock(&mu_);
    return now_;
  }

  bool SleepUntil(absl::Time deadline, const absl::Notification* stop) override {
    absl::MutexLock lock(&mu_);
    ++sleepers_;
    for (;;) {
      if (now_ >= deadline) {
        --sleepers_;
        return true;
      }
      if (stop != nullptr && stop->HasBeenNotified()) {
        --sleepers_;
        return false;
      }
      // A stop notification cannot wake our mutex, so look again now and then (real time).
      auto reached = [this, deadline]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return now_ >= deadline;
      };
      mu_.AwaitWithTimeout(absl::Condition(&reached), absl::Milliseconds(5));
    }
  }

  void Advance(absl::Duration d) {
    absl::MutexLock lock(&mu_);
    now_ += d;
  }

  // How many threads are sleeping on this clock right now.
  int sleepers() const {
    absl::MutexLock lock(&mu_);
    return sleepers_;
  }

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
  int sleepers_ ABSL_GUARDED_BY(mu_) = 0;
};

// Returns the values it is given, in turn, then repeats the last.
class FakeRandom final : public common::Random {
 public:
  explicit FakeRandom(std::vector<double> values) : values_(std::move(values)) {}
  double Uniform01() override {
    absl::MutexLock lock(&mu_);
    double v = values_[std::min(next_, values_.size() - 1)];
    ++next_;
    return v;
  }

 private:
  absl::Mutex mu_;
  std::vector<double> values_;
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tether::testing
