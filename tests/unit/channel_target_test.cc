// ChannelTarget: one address passes as given; a list of replicas becomes one ipv4:/ipv6:
// target; a list that names hosts, lacks a port or mixes families is refused, naming the entry.
#include "common/grpc/target.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace tether::common {
namespace {

TEST(ChannelTargetTest, OneAddressPassesAsGivenAndAListBecomesOneTarget) {
  EXPECT_EQ(*ChannelTarget("mothership.internal:7400"), "mothership.internal:7400");
  EXPECT_EQ(*ChannelTarget("127.0.0.1:7400,127.0.0.2:7401"), "ipv4:127.0.0.1:7400,127.0.0.2:7401");
  EXPECT_EQ(*ChannelTarget("10.0.0.1:7400, 10.0.0.2:7400"), "ipv4:10.0.0.1:7400,10.0.0.2:7400");
  EXPECT_EQ(*ChannelTarget("[::1]:7400,[fd00::2]:7400"), "ipv6:[::1]:7400,[fd00::2]:7400");
}

TEST(ChannelTargetTest, AListThatCannotBeOneTargetIsRefusedNamingTheEntry) {
  auto named = ChannelTarget("127.0.0.1:7400,mothership-b:7400");
  ASSERT_EQ(named.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(named.status().message(), "address 2 of the list (\"mothership-b:7400\")"))
      << named.status().message();
  EXPECT_FALSE(ChannelTarget("127.0.0.1:7400,127.0.0.2").ok());       // no port
  EXPECT_FALSE(ChannelTarget("127.0.0.1:7400,127.0.0.2:0").ok());     // no port either
  EXPECT_FALSE(ChannelTarget("127.0.0.1:7400,").ok());                // an empty entry
  EXPECT_FALSE(ChannelTarget("127.0.0.1:7400,[::1]:7400").ok());      // two families
  EXPECT_FALSE(ChannelTarget("").ok());
}

TEST(ChannelTargetTest, AListNamesItsFirstReplicaAsTheAuthorityTlsChecks) {
  EXPECT_EQ(ChannelAuthority("mothership.internal:7400"), "");
  EXPECT_EQ(ChannelAuthority("10.0.0.1:7400, 10.0.0.2:7400"), "10.0.0.1:7400");
  EXPECT_EQ(ChannelAuthority("[::1]:7400,[::1]:7401"), "[::1]:7400");
}

}  // namespace
}  // namespace tether::common
