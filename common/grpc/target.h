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

// The authority a channel to a list of replicas names (its first entry, as HOST:PORT), which
// is also the name TLS checks every replica's certificate against: the replicas of a fleet
// serve one certificate, or certificates that all name it. "" for a single address, whose
// authority is itself.
std::string ChannelAuthority(const std::string& addresses);

}  // namespace tether::common
