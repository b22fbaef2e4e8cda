// Random: the source of jitter for backoff, behind an interface so tests can pin it.
// Not for secrets: those come from OpenSSL in secrets.h. Implementations are thread-safe.
#pragma once

#include <cstdint>
#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tether::common {

class Random {
 public:
  virtual ~Random() = default;
  // A number in [0, 1).
  virtual double Uniform01() = 0;
};

class RealRandom final : public Random {
 public:
  RealRandom();
  double Uniform01() override;

 private:
  absl::Mutex mu_;
  std::mt19937_64 engine_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::common
