// Admission: a burst is let in at once, then one stream an interval; the refused are promised
// slots one interval apart, so a herd comes back spread at the admission rate; a rate of 0
// admits everything.
#include "controlplane/agents/admission.h"

#include <gtest/gtest.h>

#include "tests/testing/fake_clock.h"

namespace tether::controlplane {
namespace {

TEST(AdmissionTest, ABurstThenOneAnIntervalAndTheRestPromisedSpreadSlots) {
  testing::FakeClock clock;
  Admission admission(/*rate=*/10, /*burst=*/3, &clock);  // one each 100 ms
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(admission.Admit().has_value()) << i;
  // The bucket is full until 100 ms from now: the refused get 100, 200, 300 ms.
  EXPECT_EQ(admission.Admit(), absl::Milliseconds(100));
  EXPECT_EQ(admission.Admit(), absl::Milliseconds(200));
  EXPECT_EQ(admission.Admit(), absl::Milliseconds(300));
  clock.Advance(absl::Milliseconds(100));
  EXPECT_FALSE(admission.Admit().has_value());  // the first promised slot
  EXPECT_EQ(admission.Admit(), absl::Milliseconds(300));  // after the two still promised
  clock.Advance(absl::Seconds(10));  // quiet: the burst is back
  for (int i = 0; i < 3; ++i) EXPECT_FALSE(admission.Admit().has_value()) << i;
  EXPECT_EQ(admission.Admit(), absl::Milliseconds(100));
}

TEST(AdmissionTest, ARateOfZeroAdmitsEverything) {
  testing::FakeClock clock;
  Admission admission(0, 1, &clock);
  for (int i = 0; i < 10000; ++i) ASSERT_FALSE(admission.Admit().has_value());
}

}  // namespace
}  // namespace tether::controlplane
