// PgCommandRecords: CommandRecords in the agent_commands table of the agent's own database
// (agent migrations 0001 and 0003), over a small pool; every value is a bound parameter.
// Thread-safe.
#pragma once

#include <string>

#include "agent/commands/command_records.h"
#include "common/pg/pool.h"

namespace tether::agent {

class PgCommandRecords final : public CommandRecords {
 public:
  explicit PgCommandRecords(const std::string& url, int connections = 2)
      : pool_(url, connections) {}

  absl::StatusOr<std::optional<CommandRecord>> Get(const std::string& id) override;
  absl::Status Put(const CommandRecord& record) override;
  absl::StatusOr<std::vector<CommandRecord>> ListUnfinished() override;

 private:
  common::PgPool pool_;
};

}  // namespace tether::agent
