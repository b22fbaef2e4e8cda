// Liveness: what the mothership concludes from an agent's last heartbeat. Pure functions, so
// the rule is tested with a fake clock.
#pragma once

#include <optional>

#include "absl/time/time.h"
#include "tether/v1/types.pb.h"

namespace tether::controlplane {

// REGISTERED when never seen, HEALTHY while now - last_seen <= ttl, LOST after — except that
// a mothership judges no one by a silence it was not there to hear: an agent last seen before
// `watching_since` (when this mothership started) is UNKNOWN until one TTL has passed since
// then, as its heartbeats could not arrive while the mothership was away.
v1::AgentStatus LivenessOf(std::optional<absl::Time> last_seen, absl::Time now,
                           absl::Duration ttl, absl::Time watching_since = absl::InfinitePast());

}  // namespace tether::controlplane
