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
  absl::StatusOr<bool> Create(const CommandRecord& record) override;
  absl::StatusOr<std::vector<CommandRecord>> ListUnfinished() override;

 private:
  // INSERT; on an existing record, replaces it (`replace`) or leaves it. True when written.
  absl::StatusOr<bool> Write(const CommandRecord& record, bool replace);

  common::PgPool pool_;
};

}  // namespace tether::agent
