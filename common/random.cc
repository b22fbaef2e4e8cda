// RealRandom: a Mersenne Twister seeded from the OS, guarded by a mutex.
#include "common/random.h"

namespace tether::common {

RealRandom::RealRandom() : engine_(std::random_device{}()) {}

double RealRandom::Uniform01() {
  absl::MutexLock lock(&mu_);
  return std::uniform_real_distribution<double>(0.0, 1.0)(engine_);
}

}  // namespace tether::common
