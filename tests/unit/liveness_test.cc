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

TEST(LivenessTest, AnAgentNotHeardSinceTheMothershipStartedIsUnknownForOneTtl) {
  testing::FakeClock clock;
  const absl::Time seen = clock.Now();
  clock.Advance(absl::Hours(1));  // the mothership was away
  const absl::Time started = clock.Now();
  EXPECT_EQ(LivenessOf(seen, clock.Now(), absl::Seconds(15), started), v1::AGENT_STATUS_UNKNOWN);
  clock.Advance(absl::Seconds(15));
  EXPECT_EQ(LivenessOf(seen, clock.Now(), absl::Seconds(15), started), v1::AGENT_STATUS_UNKNOWN);
  clock.Advance(absl::Milliseconds(1));
  EXPECT_EQ(LivenessOf(seen, clock.Now(), absl::Seconds(15), started), v1::AGENT_STATUS_LOST);
  // Heard from since the start: judged by that, as always.
  EXPECT_EQ(LivenessOf(started + absl::Seconds(1), started + absl::Seconds(2), absl::Seconds(15),
                       started),
            v1::AGENT_STATUS_HEALTHY);
  EXPECT_EQ(LivenessOf(std::nullopt, clock.Now(), absl::Seconds(15), started),
            v1::AGENT_STATUS_REGISTERED);
}

}  // namespace
}  // namespace tether::controlplane
