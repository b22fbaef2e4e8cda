// When the agent applies its own schema's migrations (not the tenants'; those follow the spec).
#pragma once

namespace tether::agent {

enum class MigrationPolicy {
  kAuto,    // apply the agent's pending own migrations when it provisions
  kManual,  // only report them; they run when an operator asks
};

}  // namespace tether::agent
