// RealClock: absl time, with sleeps that a Notification can cut short.
#include "common/clock.h"

namespace tether::common {

bool RealClock::SleepUntil(absl::Time deadline, const absl::Notification* stop) {
  if (stop == nullptr) {
    absl::SleepFor(deadline - absl::Now());
    return true;
  }
  return !stop->WaitForNotificationWithDeadline(deadline);
}

RealClock* RealClock::Get() {
  static RealClock* clock = new RealClock();
  return clock;
}

}  // namespace tether::common
