// Liveness: what the mothership concludes from an agent's last heartbeat. Pure functions, so
// the rule is tested with a fake clock.
#pragma once

#include <optional>

#include "absl/time/time.h"
#include "tether/v1/types.pb.h"

namespace tether::controlplane {

// REGISTERED when never seen, HEALTHY while now - last_seen <= ttl, LOST after.
v1::AgentStatus LivenessOf(std::optional<absl::Time> last_seen, absl::Time now,
                           absl::Duration ttl);

}  // namespace tether::controlplane
