// Admission: how fast a replica takes new agent streams, so a fleet reconnecting at once (a
// restart, a replica lost) does not overload it or its database. A token bucket (GCRA: `rate`
// a second, bursts of `burst`) lets streams in while there is room. The rest are refused with a
// hint of when to come back, and the hints spread them: each refused stream is promised the
// next free slot after those promised already, so a herd comes back at the admission rate
// instead of all together. A rate of 0 admits everything. Thread-safe.
#pragma once

#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace tether::controlplane {

class Admission {
 public:
  Admission(double rate, int burst, common::Clock* clock);

  // nullopt: admitted now. Otherwise how long the caller should wait before trying again.
  std::optional<absl::Duration> Admit();

  double rate() const { return rate_; }

 private:
  const double rate_;
  const absl::Duration interval_;  // 1 / rate
  const absl::Duration slack_;     // (burst - 1) intervals: how far ahead arrivals may run
  common::Clock* clock_;
  absl::Mutex mu_;
  absl::Time due_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();       // the bucket's next slot
  absl::Time promised_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();  // the last slot promised
};

}  // namespace tether::controlplane
