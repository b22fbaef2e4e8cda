// Backoff: growth, cap, jitter bounds and reset.
#include "common/backoff.h"

#include <gtest/gtest.h>

#include "tests/testing/fake_clock.h"

namespace tether::common {
namespace {

TEST(BackoffTest, GrowsExponentiallyUpToTheCap) {
  testing::FakeRandom no_jitter({0.0});
  Backoff b({absl::Milliseconds(250), absl::Seconds(5), 2.0, 0.5}, &no_jitter);
  EXPECT_EQ(b.Next(), absl::Milliseconds(250));
  EXPECT_EQ(b.Next(), absl::Milliseconds(500));
  EXPECT_EQ(b.Next(), absl::Seconds(1));
  EXPECT_EQ(b.Next(), absl::Seconds(2));
  EXPECT_EQ(b.Next(), absl::Seconds(4));
  EXPECT_EQ(b.Next(), absl::Seconds(5));
  for (int i = 0; i < 100; ++i) EXPECT_EQ(b.Next(), absl::Seconds(5));
}

TEST(BackoffTest, JitterOnlyShortensWithinItsFraction) {
  testing::FakeRandom almost_one({0.999999});
  Backoff b({absl::Seconds(1), absl::Seconds(8), 2.0, 0.5}, &almost_one);
  const absl::Duration d = b.Next();
  EXPECT_GT(d, absl::Milliseconds(500));
  EXPECT_LT(d, absl::Milliseconds(501));
}

TEST(BackoffTest, DifferentRandomDrawsSpreadAFleet) {
  testing::FakeRandom a({0.1});
  testing::FakeRandom b({0.9});
  Backoff first({absl::Seconds(2), absl::Seconds(2), 2.0, 0.5}, &a);
  Backoff second({absl::Seconds(2), absl::Seconds(2), 2.0, 0.5}, &b);
  EXPECT_EQ(first.Next(), absl::Milliseconds(1900));
  EXPECT_EQ(second.Next(), absl::Milliseconds(1100));
}

TEST(BackoffTest, ResetStartsOver) {
  testing::FakeRandom no_jitter({0.0});
  Backoff b({absl::Milliseconds(100), absl::Seconds(10), 3.0, 0.0}, &no_jitter);
  b.Next();
  b.Next();
  EXPECT_EQ(b.attempt(), 2);
  b.Reset();
  EXPECT_EQ(b.attempt(), 0);
  EXPECT_EQ(b.Next(), absl::Milliseconds(100));
}

TEST(BackoffTest, HugeAttemptCountsStayAtTheCap) {
  testing::FakeRandom no_jitter({0.0});
  Backoff b({absl::Milliseconds(1), absl::Seconds(30), 2.0, 0.0}, &no_jitter);
  for (int i = 0; i < 200; ++i) b.Next();
  EXPECT_EQ(b.Next(), absl::Seconds(30));
}

}  // namespace
}  // namespace tether::common
