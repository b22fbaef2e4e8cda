// Commands in words both sides agree on: a command's kind as it is stored, listed and logged,
// and which states end one. Pure functions; thread-safe.
#pragma once

#include <string>

#include "tether/v1/command.pb.h"

namespace tether::common {

// "migrate", "rollback", "reprovision", "drop_tenant" or "apply"; "" when no kind is set.
std::string CommandKind(const v1::Command& command);

// Succeeded, failed or cancelled: a command (or an agent's part in one) in such a state never
// changes again.
bool IsTerminal(v1::CommandState state);

}  // namespace tether::common
