// Backoff: capped exponential delays with jitter, for reconnects and provisioning retries.
// Jitter spreads a fleet's retries so a mothership restart does not cause a reconnect storm.
// Not thread-safe: each retry loop owns its own Backoff.
#pragma once

#include "absl/time/time.h"
#include "common/random.h"

namespace tether::common {

struct BackoffPolicy {
  absl::Duration initial = absl::Milliseconds(250);
  absl::Duration max = absl::Seconds(5);
  double multiplier = 2.0;
  // Each delay is drawn uniformly from [(1 - jitter) * d, d], d the capped exponential delay.
  double jitter = 0.5;
};

class Backoff {
 public:
  Backoff(BackoffPolicy policy, Random* random);
  // The delay before the next attempt; grows until it reaches the cap.
  absl::Duration Next();
  // Call after a success: the next delay starts from `initial` again.
  void Reset() { attempt_ = 0; }
  int attempt() const { return attempt_; }

 private:
  BackoffPolicy policy_;
  Random* random_;
  int attempt_ = 0;
};

}  // namespace tether::common
