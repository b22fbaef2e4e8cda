// FakeTenantRecords: the agent's record of its tenants, in memory, for unit tests. It keeps every
// successful Put in order, so a test can check a record was written before a change and after
// it, and a test can make Put fail as a database that stopped answering. The real one is
// PgTenantRecords (agent/tenants/), covered by the integration tests. Thread-safe: the executor
// writes records from several workers at once.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "agent/tenants/tenant_records.h"

namespace tether::testing {

class FakeTenantRecords final : public agent::TenantRecords {
 public:
  // --- Set-up.

  // A record left by an earlier run (not counted among puts()).
  void Seed(const std::string& name, v1::TenantState state, int64_t version, bool held = false) {
    absl::MutexLock lock(&mu_);
    agent::TenantRecord record;
    record.name = name;
    record.state = state;
    record.version = version;
    record.held = held;
    records_[name] = record;
  }
  // From now on Put of `tenant` fails with `status` (of every tenant when `tenant` is empty);
  // an OK status undoes it.
  void FailPut(absl::Status status, const std::string& tenant = "") {
    absl::MutexLock lock(&mu_);
    if (status.ok()) {
      put_failures_.erase(tenant);
    } else {
      put_failures_[tenant] = std::move(status);
    }
  }

  // --- What was written.

  std::optional<agent::TenantRecord> Get(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    auto it = records_.find(name);
    if (it == records_.end()) return std::nullopt;
    return it->second;
  }
  // Every successful Put, in order.
  std::vector<agent::TenantRecord> puts() const {
    absl::MutexLock lock(&mu_);
    return puts_;
  }
  // The states `name` was put in, in order.
  std::vector<v1::TenantState> StatesOf(const std::string& name) const {
    absl::MutexLock lock(&mu_);
    std::vector<v1::TenantState> states;
    for (const auto& r : puts_) {
      if (r.name == name) states.push_back(r.state);
    }
    return states;
  }

  // --- agent::TenantRecords.

  absl::StatusOr<std::map<std::string, agent::TenantRecord>> List() override {
    absl::MutexLock lock(&mu_);
    return records_;
  }

  absl::Status Put(const agent::TenantRecord& record) override {
    absl::MutexLock lock(&mu_);
    for (const std::string& key : {record.name, std::string()}) {
      auto it = put_failures_.find(key);
      if (it != put_failures_.end()) return it->second;
    }
    agent::TenantRecord kept = record;
    auto before = records_.find(record.name);
    if (before != records_.end() && kept.onboarding.empty()) {  // as PgTenantRecords keeps them
      kept.onboarding = before->second.onboarding;
      kept.fingerprint = before->second.fingerprint;
      kept.replay_fingerprint = before->second.replay_fingerprint;
    }
    records_[record.name] = kept;
    puts_.push_back(record);
    return absl::OkStatus();
  }

  absl::Status Remove(const std::string& name) override {
    absl::MutexLock lock(&mu_);
    records_.erase(name);
    return absl::OkStatus();
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, agent::TenantRecord> records_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::TenantRecord> puts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> put_failures_ ABSL_GUARDED_BY(mu_);  // "" for every tenant
};

}  // namespace tether::testing
