// Clock: the one source of time for heartbeats, TTLs, backoff and timeouts, so tests can drive
// time with FakeClock (tests/testing) instead of sleeping. Implementations are thread-safe.
#pragma once

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace tether::common {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
  // Blocks until Now() >= deadline or `stop` (may be null) is notified. Returns true when the
  // deadline was reached, false when stopped first.
  virtual bool SleepUntil(absl::Time deadline, const absl::Notification* stop) = 0;
  bool SleepFor(absl::Duration d, const absl::Notification* stop) {
    return SleepUntil(Now() + d, stop);
  }
};

// Wall-clock time; sleeps really sleep.
class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  bool SleepUntil(absl::Time deadline, const absl::Notification* stop) override;
  static RealClock* Get();  // a process-wide instance; stateless, so sharing it is safe
};

}  // namespace tether::common
