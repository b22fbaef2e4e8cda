// The agent's identity on disk: its id, current credential and incarnation, kept in
// DATA_DIR/identity.json (mode 0600) so a restart reconnects without registering again.
// Written atomically; a recreated container has none and registers afresh.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace tether::agent {

struct Identity {
  std::string agent_id;
  std::string credential;
  int64_t incarnation = 0;
  std::string name;
  std::string cluster;
};

// kNotFound when there is no identity file; kDataLoss when it cannot be read as one.
absl::StatusOr<Identity> LoadIdentity(const std::string& data_dir);
absl::Status SaveIdentity(const std::string& data_dir, const Identity& identity);

}  // namespace tether::agent
