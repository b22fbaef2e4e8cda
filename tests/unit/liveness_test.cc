// The liveness rule, driven by a fake clock.
#include "controlplane/agents/liveness.h"

#include <gtest/gtest.h>

#include "tests/testing/fake_clock.h"

namespace tether::controlplane {
namespace {

TEST(LivenessTest, NeverSeenIsRegistered) {
  testing::FakeClock clock;
  EXPECT_EQ(LivenessOf(std::nullopt, clock.Now(), absl::Seconds(15)), v1::AGENT_STATUS_REGISTERED);
}

TEST(LivenessTest, HealthyUntilTheTtlPassesThenLost) {
  testing::FakeClock clock;
  const absl::Time seen = clock.Now();
  EXPECT_EQ(LivenessOf(seen, clock.Now(), absl::Seconds(15)), v1::AGENT_STATUS_HEALTHY);
  clock.Advance(absl::Seconds(15));
  EXPECT_EQ(LivenessOf(seen, clock.Now(), absl::Seconds(15)), v1::AGENT_STATUS_HEALTHY);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(LivenessOf(seen, clock.Now(), absl::Seconds(15)), v1::AGENT_STATUS_LOST);
}

TEST(LivenessTest, AHeartbeatAfterLossMakesItHealthyAgain) {
  testing::FakeClock clock;
  const absl::Time first = clock.Now();
  clock.Advance(absl::Minutes(5));
  EXPECT_EQ(LivenessOf(first, clock.Now(), absl::Seconds(15)), v1::AGENT_STATUS_LOST);
  EXPECT_EQ(LivenessOf(clock.Now(), clock.Now(), absl::Seconds(15)), v1::AGENT_STATUS_HEALTHY);
}

}  // namespace
}  // namespace tether::controlplane
