// Command state transitions.
#include "controlplane/commands/command_state.h"

#include "absl/strings/str_cat.h"

namespace tether::controlplane {

absl::Status CheckTransition(v1::CommandState from, v1::CommandState to) {
  auto valid = [](v1::CommandState s) {
    return v1::CommandState_IsValid(s) && s != v1::COMMAND_STATE_UNSPECIFIED;
  };
  if (!valid(from) || !valid(to)) {
    return absl::InvalidArgumentError(absl::StrCat("command state ", static_cast<int>(to),
                                                   " is not a state"));
  }
  if (from == to) return absl::OkStatus();
  const bool allowed = (from == v1::COMMAND_STATE_QUEUED && to != v1::COMMAND_STATE_QUEUED) ||
                       (from == v1::COMMAND_STATE_RUNNING && IsTerminal(to));
  if (allowed) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("a command cannot go from ",
                                                    v1::CommandState_Name(from), " to ",
                                                    v1::CommandState_Name(to)));
}

v1::CommandState OverallState(const std::vector<v1::CommandState>& agents) {
  bool all_done = true, all_queued = true, any_failed = false, any_cancelled = false;
  for (v1::CommandState s : agents) {
    all_done = all_done && IsTerminal(s);
    all_queued = all_queued && s == v1::COMMAND_STATE_QUEUED;
    any_failed = any_failed || s == v1::COMMAND_STATE_FAILED;
    any_cancelled = any_cancelled || s == v1::COMMAND_STATE_CANCELLED;
  }
  if (agents.empty()) return v1::COMMAND_STATE_SUCCEEDED;
  if (all_done) {
    if (any_failed) return v1::COMMAND_STATE_FAILED;
    if (any_cancelled) return v1::COMMAND_STATE_CANCELLED;
    return v1::COMMAND_STATE_SUCCEEDED;
  }
  return all_queued ? v1::COMMAND_STATE_QUEUED : v1::COMMAND_STATE_RUNNING;
}

}  // namespace tether::controlplane
