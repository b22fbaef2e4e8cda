// Command kinds and terminal states.
#include "common/spec/commands.h"

namespace tether::common {

std::string CommandKind(const v1::Command& command) {
  switch (command.kind_case()) {
    case v1::Command::kMigrate: return "migrate";
    case v1::Command::kRollback: return "rollback";
    case v1::Command::kReprovision: return "reprovision";
    case v1::Command::kDropTenant: return "drop_tenant";
    case v1::Command::kApply: return "apply";
    case v1::Command::KIND_NOT_SET: break;
  }
  return "";
}

bool IsTerminal(v1::CommandState state) {
  return state == v1::COMMAND_STATE_SUCCEEDED || state == v1::COMMAND_STATE_FAILED ||
         state == v1::COMMAND_STATE_CANCELLED;
}

}  // namespace tether::common
