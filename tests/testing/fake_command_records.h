// FakeCommandRecords: the agent's command records in memory, for unit tests. It keeps every
// successful Put in order, so a test can check what was written when, and Put or Get can be
// made to fail like a database that stopped answering. The real one is PgCommandRecords
// (agent/commands/), covered by the integration tests. Thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/commands/command_records.h"

namespace tether::testing {

class FakeCommandRecords final : public agent::CommandRecords {
 public:
  // --- Set-up.

  // A record left by an earlier run of the agent (not counted among puts()).
  void Seed(const agent::CommandRecord& record) {
    absl::MutexLock lock(&mu_);
    records_[record.id] = record;
  }
  // From now on every call fails with `status`; an OK status undoes it.
  void Fail(absl::Status status) {
    absl::MutexLock lock(&mu_);
    failure_ = std::move(status);
  }

  // --- What was written.

  std::optional<agent::CommandRecord> Find(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(id);
    if (it == records_.end()) return std::nullopt;
    return it->second;
  }
  // Every successful Put, in order.
  std::vector<agent::CommandRecord> puts() const {
    absl::MutexLock lock(&mu_);
    return puts_;
  }
  // The states command `id` was put in, in order.
  std::vector<v1::CommandState> StatesOf(const std::string& id) const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::CommandState> states;
    for (const auto& r : puts_) {
      if (r.id == id) states.push_back(r.state);
    }
    return states;
  }

  // --- agent::CommandRecords.

  absl::StatusOr<std::optional<agent::CommandRecord>> Get(const std::string& id) override {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    auto it = records_.find(id);
    if (it == records_.end()) return std::optional<agent::CommandRecord>();
    return std::optional<agent::CommandRecord>(it->second);
  }

  absl::Status Put(const agent::CommandRecord& record) override {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    records_[record.id] = record;
    puts_.push_back(record);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<agent::CommandRecord>> ListUnfinished() override {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    std::vector<agent::CommandRecord> out;
    for (const auto& [id, record] : records_) {
      if (!agent::IsFinished(record.state)) out.push_back(record);
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, agent::CommandRecord> records_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::CommandRecord> puts_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::testing
