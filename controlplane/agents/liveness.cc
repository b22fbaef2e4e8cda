// The liveness rule.
#include "controlplane/agents/liveness.h"

namespace tether::controlplane {

v1::AgentStatus LivenessOf(std::optional<absl::Time> last_seen, absl::Time now,
                           absl::Duration ttl) {
  if (!last_seen.has_value()) return v1::AGENT_STATUS_REGISTERED;
  return now - *last_seen <= ttl ? v1::AGENT_STATUS_HEALTHY : v1::AGENT_STATUS_LOST;
}

}  // namespace tether::controlplane
