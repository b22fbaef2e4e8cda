// The state machine of a durable command, as pure functions: per agent
//   queued → running → succeeded | failed | cancelled, and queued → cancelled;
// a terminal state never changes (a late or repeated update of a finished command changes
// nothing), and the overall state follows from the agents'. Thread-safe (no state).
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "common/spec/commands.h"
#include "tether/v1/command.pb.h"

namespace tether::controlplane {

using common::IsTerminal;

// OK when an agent's command may move from `from` to `to` (staying put is allowed: updates are
// delivered at least once). kFailedPrecondition naming both states otherwise; kInvalidArgument
// for a state that is not one.
absl::Status CheckTransition(v1::CommandState from, v1::CommandState to);

// The command's state from its agents': failed once every agent is done and any failed;
// cancelled once every agent is done and any was cancelled (none failed); succeeded when every
// agent succeeded (or there are none); queued while no agent has started; running otherwise.
v1::CommandState OverallState(const std::vector<v1::CommandState>& agents);

// The same from what the parts' states show, not the states themselves.
struct PartsShape {
  bool open = false;       // some agent is queued or running
  bool begun = false;      // some agent is past queued
  bool failed = false;     // some agent failed
  bool cancelled = false;  // some agent was cancelled
};
v1::CommandState OverallStateOf(const PartsShape& parts);

}  // namespace tether::controlplane
