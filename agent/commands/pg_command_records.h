// PgCommandRecords: CommandRecords in the agent_commands table of the agent's own database
// (agent migrations 0001 and 0003), over a small pool; every value is a bound parameter. A pro
// agent's writes carry its fence (agent/leadership/write_fence.h).
// Thread-safe.
#pragma once

#include <string>

#include "agent/commands/command_records.h"
#include "agent/leadership/write_fence.h"
#include "common/pg/pool.h"

namespace tether::agent {

class PgCommandRecords final : public CommandRecords {
 public:
  // `fence` (null for a lite agent) outlives the records.
  explicit PgCommandRecords(const std::string& url, const WriteFence* fence = nullptr,
                            int connections = 2)
      : fence_(fence), pool_(url, connections) {}

  absl::StatusOr<std::optional<CommandRecord>> Get(const std::string& id) override;
  absl::Status Put(const CommandRecord& record) override;
  absl::StatusOr<bool> Create(const CommandRecord& record) override;
  absl::StatusOr<std::vector<CommandRecord>> ListUnfinished() override;

 private:
  // INSERT; on an existing record, replaces it (`replace`) or leaves it. True when written.
  absl::StatusOr<bool> Write(const CommandRecord& record, bool replace);

  const WriteFence* fence_;
  common::PgPool pool_;
};

}  // namespace tether::agent
