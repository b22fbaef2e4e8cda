// CommandRecords: the agent's own record of every command it was given (agent_commands in its
// database): the command itself, so one under way when the agent stopped is resumed from here
// without waiting for the mothership to deliver it again; its state, attempt and steps; and
// what it decided once at first start (`detail`, e.g. a rollback's target version).
// Implementations are thread-safe.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/spec/commands.h"
#include "tether/v1/command.pb.h"

namespace tether::agent {

struct CommandRecord {
  std::string id;
  std::string kind;  // migrate | rollback | reprovision | drop_tenant | apply
  v1::CommandState state = v1::COMMAND_STATE_QUEUED;
  v1::Command command;
  int64_t attempt = 0;  // runs started; 0 while queued
  nlohmann::json detail = nlohmann::json::object();
  int steps_done = 0;
  int steps_total = 0;
  std::string error;
  absl::Time started_at = absl::UnixEpoch();
  std::optional<absl::Time> finished_at;
};

// Succeeded, failed or cancelled: a command in such a state never runs again.
inline bool IsFinished(v1::CommandState state) { return common::IsTerminal(state); }
using common::CommandKind;

class CommandRecords {
 public:
  virtual ~CommandRecords() = default;
  // The record of command `id`, or nullopt when there is none. kUnavailable when the database
  // does not answer; kDataLoss when the stored command cannot be read back.
  virtual absl::StatusOr<std::optional<CommandRecord>> Get(const std::string& id) = 0;
  // Inserts or replaces the record of `record.id`. kUnavailable as Get.
  virtual absl::Status Put(const CommandRecord& record) = 0;
  // Inserts `record` only when command `record.id` has no record yet, atomically: true when it
  // was inserted, false when a record existed (left as it was). kUnavailable as Get.
  virtual absl::StatusOr<bool> Create(const CommandRecord& record) = 0;
  // Every record still queued or running, oldest first (by started_at, then by id as a number:
  // ids are decimal). kUnavailable, kDataLoss as Get.
  virtual absl::StatusOr<std::vector<CommandRecord>> ListUnfinished() = 0;
};

}  // namespace tether::agent
