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
  PartsShape parts;
  for (v1::CommandState s : agents) {
    parts.open = parts.open || !IsTerminal(s);
    parts.begun = parts.begun || s != v1::COMMAND_STATE_QUEUED;
    parts.failed = parts.failed || s == v1::COMMAND_STATE_FAILED;
    parts.cancelled = parts.cancelled || s == v1::COMMAND_STATE_CANCELLED;
  }
  return OverallStateOf(parts);
}

v1::CommandState OverallStateOf(const PartsShape& parts) {
  if (parts.open) return parts.begun ? v1::COMMAND_STATE_RUNNING : v1::COMMAND_STATE_QUEUED;
  if (parts.failed) return v1::COMMAND_STATE_FAILED;
  if (parts.cancelled) return v1::COMMAND_STATE_CANCELLED;
  return v1::COMMAND_STATE_SUCCEEDED;  // every agent succeeded, or there are none
}

}  // namespace tether::controlplane
