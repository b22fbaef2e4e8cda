// FakeClock: sleepers wake on Advance or on their stop notification, never on real time.
#include "tests/testing/fake_clock.h"

#include <gtest/gtest.h>

#include <thread>

#include "tests/testing/poll.h"

namespace tether::testing {
namespace {

TEST(FakeClockTest, SleeperWakesWhenTimeIsAdvancedPastItsDeadline) {
  FakeClock clock;
  bool reached = false;
  std::thread sleeper([&] { reached = clock.SleepFor(absl::Seconds(10), nullptr); });
  ASSERT_TRUE(PollUntil([&] { return clock.sleepers() == 1; }));
  clock.Advance(absl::Seconds(9));
  EXPECT_EQ(clock.sleepers(), 1);
  clock.Advance(absl::Seconds(1));
  sleeper.join();
  EXPECT_TRUE(reached);
}

TEST(FakeClockTest, StopNotificationEndsTheSleepEarly) {
  FakeClock clock;
  absl::Notification stop;
  bool reached = true;
  std::thread sleeper([&] { reached = clock.SleepFor(absl::Hours(1), &stop); });
  ASSERT_TRUE(PollUntil([&] { return clock.sleepers() == 1; }));
  stop.Notify();
  sleeper.join();
  EXPECT_FALSE(reached);
}

}  // namespace
}  // namespace tether::testing
