// StreamRegistry: one stream per agent; a newer one closes the older; stale removals are
// ignored.
#include "controlplane/agents/stream_registry.h"

#include <gtest/gtest.h>

namespace tether::controlplane {
namespace {

class RecordingStream : public AgentStream {
 public:
  void Close(const absl::Status& status) override { closed.push_back(status); }
  std::vector<absl::Status> closed;
};

TEST(StreamRegistryTest, NewerStreamClosesTheOlder) {
  StreamRegistry registry;
  RecordingStream first, second;
  registry.Add("a", 1, &first);
  registry.Add("a", 1, &second);
  ASSERT_EQ(first.closed.size(), 1u);
  EXPECT_EQ(first.closed[0].code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(second.closed.empty());
  EXPECT_EQ(registry.size(), 1);
}

TEST(StreamRegistryTest, StaleRemoveKeepsTheCurrentStream) {
  StreamRegistry registry;
  RecordingStream first, second;
  const uint64_t old_handle = registry.Add("a", 1, &first);
  registry.Add("a", 1, &second);
  registry.Remove("a", old_handle);
  EXPECT_TRUE(registry.IsConnected("a"));
  registry.Close("a", absl::UnauthenticatedError("deleted"));
  ASSERT_EQ(second.closed.size(), 1u);
  EXPECT_EQ(second.closed[0].code(), absl::StatusCode::kUnauthenticated);
}

TEST(StreamRegistryTest, AStaleIncarnationCannotDisplaceTheCurrentOne) {
  StreamRegistry registry;
  RecordingStream old_stream, new_stream;
  // The old incarnation authenticated, but its Hello arrives after the re-registration.
  registry.Supersede("a", 2, absl::UnauthenticatedError("re-registered"));
  ASSERT_NE(registry.Add("a", 2, &new_stream), 0u);
  EXPECT_EQ(registry.Add("a", 1, &old_stream), 0u);
  EXPECT_TRUE(new_stream.closed.empty());
}

TEST(StreamRegistryTest, SupersedeClosesOnlyOlderIncarnations) {
  StreamRegistry registry;
  RecordingStream current;
  registry.Add("a", 3, &current);
  registry.Supersede("a", 3, absl::UnauthenticatedError("same"));
  EXPECT_TRUE(current.closed.empty());
  registry.Supersede("a", 4, absl::UnauthenticatedError("re-registered"));
  ASSERT_EQ(current.closed.size(), 1u);
  EXPECT_EQ(current.closed[0].code(), absl::StatusCode::kUnauthenticated);
}

TEST(StreamRegistryTest, ClosingAnUnknownAgentIsHarmless) {
  StreamRegistry registry;
  registry.Close("nobody", absl::OkStatus());
  EXPECT_FALSE(registry.IsConnected("nobody"));
}

}  // namespace
}  // namespace tether::controlplane
