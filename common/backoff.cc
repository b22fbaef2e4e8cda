// Backoff: exponential growth, a cap, then multiplicative jitter downward from the cap.
#include "common/backoff.h"

#include <algorithm>
#include <cmath>

namespace tether::common {

Backoff::Backoff(BackoffPolicy policy, Random* random) : policy_(policy), random_(random) {}

absl::Duration Backoff::Next() {
  const double growth = std::pow(policy_.multiplier, std::min(attempt_, 62));
  const absl::Duration uncapped = policy_.initial * growth;
  const absl::Duration base = std::min(uncapped, policy_.max);
  ++attempt_;
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  return base * (1.0 - jitter * random_->Uniform01());
}

}  // namespace tether::common
