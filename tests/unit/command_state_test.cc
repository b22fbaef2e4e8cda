// The command state machine: which moves an agent's command may make (terminal states never
// change, a repeated update is harmless) and the overall state that follows from the agents'.
#include "controlplane/commands/command_state.h"

#include <gtest/gtest.h>

namespace tether::controlplane {
namespace {

constexpr auto kQueued = v1::COMMAND_STATE_QUEUED;
constexpr auto kRunning = v1::COMMAND_STATE_RUNNING;
constexpr auto kSucceeded = v1::COMMAND_STATE_SUCCEEDED;
constexpr auto kFailed = v1::COMMAND_STATE_FAILED;
constexpr auto kCancelled = v1::COMMAND_STATE_CANCELLED;

TEST(CommandStateTest, MovesForwardOnlyAndTerminalStatesStay) {
  struct Case {
    v1::CommandState from, to;
    bool ok;
  };
  const std::vector<Case> cases = {
      {kQueued, kRunning, true},      {kQueued, kCancelled, true},     {kQueued, kFailed, true},
      {kQueued, kSucceeded, true},    {kRunning, kSucceeded, true},    {kRunning, kFailed, true},
      {kRunning, kCancelled, true},   {kRunning, kRunning, true},      {kSucceeded, kSucceeded, true},
      {kRunning, kQueued, false},     {kSucceeded, kRunning, false},   {kSucceeded, kFailed, false},
      {kFailed, kSucceeded, false},   {kCancelled, kRunning, false},   {kFailed, kQueued, false},
  };
  for (const auto& c : cases) {
    absl::Status st = CheckTransition(c.from, c.to);
    EXPECT_EQ(st.ok(), c.ok) << v1::CommandState_Name(c.from) << " -> "
                             << v1::CommandState_Name(c.to) << ": " << st;
    if (!c.ok) {
      EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_NE(st.message().find(v1::CommandState_Name(c.to)), std::string::npos);
    }
  }
  EXPECT_EQ(CheckTransition(kQueued, static_cast<v1::CommandState>(42)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckTransition(kQueued, v1::COMMAND_STATE_UNSPECIFIED).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CommandStateTest, TheOverallStateFollowsTheAgents) {
  EXPECT_EQ(OverallState({}), kSucceeded);
  EXPECT_EQ(OverallState({kQueued, kQueued}), kQueued);
  EXPECT_EQ(OverallState({kQueued, kRunning}), kRunning);
  EXPECT_EQ(OverallState({kSucceeded, kQueued}), kRunning);
  EXPECT_EQ(OverallState({kFailed, kRunning}), kRunning);  // not done until every agent is
  EXPECT_EQ(OverallState({kSucceeded, kSucceeded}), kSucceeded);
  EXPECT_EQ(OverallState({kSucceeded, kFailed}), kFailed);
  EXPECT_EQ(OverallState({kCancelled, kSucceeded}), kCancelled);
  EXPECT_EQ(OverallState({kCancelled, kFailed}), kFailed);
}

// What the store reads of a command's parts (whether any is open, has begun, failed, was
// cancelled) decides the state as the parts' states do.
TEST(CommandStateTest, TheShapeOfThePartsDecidesTheState) {
  auto of = [](bool open, bool begun, bool failed, bool cancelled) {
    return OverallStateOf(PartsShape{open, begun, failed, cancelled});
  };
  EXPECT_EQ(of(false, false, false, false), kSucceeded);  // no parts
  EXPECT_EQ(of(true, false, false, false), kQueued);
  EXPECT_EQ(of(true, true, false, false), kRunning);
  EXPECT_EQ(of(true, true, true, false), kRunning);  // not done until every agent is
  EXPECT_EQ(of(false, true, false, false), kSucceeded);
  EXPECT_EQ(of(false, true, true, false), kFailed);
  EXPECT_EQ(of(false, true, false, true), kCancelled);
  EXPECT_EQ(of(false, true, true, true), kFailed);
}

}  // namespace
}  // namespace tether::controlplane
