// StreamRegistry: one stream per agent; a newer one closes the older; stale removals are
// ignored.
#include "controlplane/agents/stream_registry.h"

#include <gtest/gtest.h>

namespace tether::controlplane {
namespace {

class RecordingStream : public AgentStream {
 public:
  void Close(const absl::Status& status) override { closed.push_back(status); }
  void OnRevision(int64_t revision) override { revisions.push_back(revision); }
  void OnCommand(int64_t id) override { commands.push_back(id); }
  std::vector<absl::Status> closed;
  std::vector<int64_t> revisions;
  std::vector<int64_t> commands;
};

// A stream the registry may hold, owned by the test.
std::shared_ptr<AgentStream> Held(RecordingStream* stream) {
  return std::shared_ptr<AgentStream>(stream, [](AgentStream*) {});
}

TEST(StreamRegistryTest, NewerStreamClosesTheOlder) {
  StreamRegistry registry;
  RecordingStream first, second;
  registry.Add("a", 1, "shop", Held(&first));
  registry.Add("a", 1, "shop", Held(&second));
  ASSERT_EQ(first.closed.size(), 1u);
  EXPECT_EQ(first.closed[0].code(), absl::StatusCode::kAborted);
  EXPECT_TRUE(second.closed.empty());
  EXPECT_EQ(registry.size(), 1);
}

TEST(StreamRegistryTest, StaleRemoveKeepsTheCurrentStream) {
  StreamRegistry registry;
  RecordingStream first, second;
  const uint64_t old_handle = registry.Add("a", 1, "shop", Held(&first));
  registry.Add("a", 1, "shop", Held(&second));
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
  ASSERT_NE(registry.Add("a", 2, "shop", Held(&new_stream)), 0u);
  EXPECT_EQ(registry.Add("a", 1, "shop", Held(&old_stream)), 0u);
  EXPECT_TRUE(new_stream.closed.empty());
}

TEST(StreamRegistryTest, SupersedeClosesOnlyOlderIncarnations) {
  StreamRegistry registry;
  RecordingStream current;
  registry.Add("a", 3, "shop", Held(&current));
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

TEST(StreamRegistryTest, ChangesOnTheBusReachTheStreams) {
  InProcessChangeBus bus;
  StreamRegistry registry(&bus);
  RecordingStream shop, billing;
  registry.Add("a", 1, "shop", Held(&shop));
  registry.Add("b", 1, "billing", Held(&billing));
  bus.Publish({Change::Kind::kRevision, "shop", "", 7});
  EXPECT_EQ(shop.revisions, std::vector<int64_t>{7});
  EXPECT_TRUE(billing.revisions.empty());
  bus.Publish({Change::Kind::kIncarnation, "shop", "a", 2});
  ASSERT_EQ(shop.closed.size(), 1u);
  EXPECT_EQ(shop.closed[0].code(), absl::StatusCode::kUnauthenticated);
  bus.Publish({Change::Kind::kAgentDeleted, "billing", "b", 0});
  ASSERT_EQ(billing.closed.size(), 1u);
}

TEST(StreamRegistryTest, AQueuedCommandReachesItsClusterOrOnlyItsAgent) {
  InProcessChangeBus bus;
  StreamRegistry registry(&bus);
  RecordingStream a, b, other;
  registry.Add("a", 1, "shop", Held(&a));
  registry.Add("b", 1, "shop", Held(&b));
  registry.Add("c", 1, "billing", Held(&other));
  bus.Publish({Change::Kind::kCommand, "shop", "", 3});
  bus.Publish({Change::Kind::kCommand, "shop", "b", 4});
  // Progress of a command is for followers, not agents.
  bus.Publish({Change::Kind::kCommandProgress, "shop", "", 3});
  EXPECT_EQ(a.commands, std::vector<int64_t>{3});
  EXPECT_EQ(b.commands, (std::vector<int64_t>{3, 4}));
  EXPECT_TRUE(other.commands.empty());
}

}  // namespace
}  // namespace tether::controlplane
