// FakeCommandRecords: the agent's command records in memory, for unit tests. It keeps every
// successful Put in order, so a test can check what was written when, and Put or Get can be
// made to fail like a database that stopped answering. Create inserts only a new record, as
// agent_commands' INSERT … ON CONFLICT DO NOTHING. The real one is PgCommandRecords
// (agent/commands/), covered by the integration tests. Thread-safe.
#pragma once

#include <algorithm>
#include <functional>
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

  // Called after every Get (outside the lock), with the id: a test does there what another
  // thread would do between a Get and what follows it.
  void set_after_get(std::function<void(const std::string& id)> fn) {
    absl::MutexLock lock(&mu_);
    after_get_ = std::move(fn);
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
    absl::StatusOr<std::optional<agent::CommandRecord>> out;
    std::function<void(const std::string&)> after;
    {
      absl::MutexLock lock(&mu_);
      after = after_get_;
      auto it = records_.find(id);
      if (!failure_.ok()) {
        out = failure_;
      } else if (it == records_.end()) {
        out = std::optional<agent::CommandRecord>();
      } else {
        out = std::optional<agent::CommandRecord>(it->second);
      }
    }
    if (after) after(id);
    return out;
  }

  absl::StatusOr<bool> Create(const agent::CommandRecord& record) override {
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) return failure_;
    if (records_.count(record.id) != 0) return false;
    records_[record.id] = record;
    puts_.push_back(record);
    return true;
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
    // As agent_commands orders them: by start, then by id as a number.
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      if (a.started_at != b.started_at) return a.started_at < b.started_at;
      if (a.id.size() != b.id.size()) return a.id.size() < b.id.size();
      return a.id < b.id;
    });
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, agent::CommandRecord> records_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::CommandRecord> puts_ ABSL_GUARDED_BY(mu_);
  absl::Status failure_ ABSL_GUARDED_BY(mu_);
  std::function<void(const std::string&)> after_get_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::testing
