// Where a client's channel points: one HOST:PORT as given (a DNS name may resolve to several
// addresses, and gRPC tries each), or a comma-separated list of IP:PORT addresses of mothership
// replicas, which becomes one `ipv4:`/`ipv6:` target: the channel connects to the first that
// answers and moves to another when that one goes away.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tether::common {

// kInvalidArgument, naming the entry, for an empty entry, one without a port, a list that mixes
// address families, or a list that names hosts (a list takes addresses; a name with several
// addresses goes alone).
absl::StatusOr<std::string> ChannelTarget(const std::string& addresses);

}  // namespace tether::common
