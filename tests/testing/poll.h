// PollUntil: waits for a condition by looking at it again and again until a generous
// deadline — the way tests synchronise with other threads and processes instead of sleeping.
#pragma once

#include <functional>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace tether::testing {

inline bool PollUntil(const std::function<bool()>& condition,
                      absl::Duration deadline = absl::Seconds(60)) {
  const absl::Time until = absl::Now() + deadline;
  while (!condition()) {
    if (absl::Now() >= until) return false;
    absl::SleepFor(absl::Milliseconds(20));  // polling interval, not synchronisation
  }
  return true;
}

}  // namespace tether::testing
