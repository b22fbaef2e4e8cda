// The liveness rule.
#include "controlplane/agents/liveness.h"

namespace tether::controlplane {

v1::AgentStatus LivenessOf(std::optional<absl::Time> last_seen, absl::Time now,
                           absl::Duration ttl, absl::Time watching_since) {
  if (!last_seen.has_value()) return v1::AGENT_STATUS_REGISTERED;
  if (now - *last_seen <= ttl) return v1::AGENT_STATUS_HEALTHY;
  if (*last_seen < watching_since && now - watching_since <= ttl) return v1::AGENT_STATUS_UNKNOWN;
  return v1::AGENT_STATUS_LOST;
}

}  // namespace tether::controlplane
