// FakeClusterAdmin: the agent's PostgreSQL as the reconciler sees it, in memory, for unit tests:
// which tenants exist and which migrations each has applied, failures a test plants, and
// counters of every create, drop, applied and rolled-back migration and hook run, so a test can tell nothing was done
// twice. Its errors and report follow the migrator's (common/pg/migrator.h); the real one is
// PgClusterAdmin (agent/tenants/), covered by the integration tests. Thread-safe: the executor
// calls it from several workers at once. Step lines are reported outside the lock.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "agent/reconcile/cluster_admin.h"
#include "common/pg/migrator.h"

namespace tether::testing {

class FakeClusterAdmin final : public agent::ClusterAdmin {
 public:
  // --- Set-up.

  // `tenant` exists with these migration versions applied (as if done before the test).
  void AddTenant(const std::string& tenant, std::set<int64_t> applied = {}) {
    absl::MutexLock lock(&mu_);
    tenants_[tenant] = std::move(applied);
  }
  // Applying migration `version` to `tenant` fails, as a migration whose SQL PostgreSQL
  // refuses, until ClearFailures().
  void FailMigration(const std::string& tenant, int64_t version,
                     std::string error = "syntax error at or near \"BROKEN\"") {
    absl::MutexLock lock(&mu_);
    failures_[{tenant, version}] = std::move(error);
  }
  void ClearFailures() {
    absl::MutexLock lock(&mu_);
    failures_.clear();
    hook_failures_.clear();
  }
  // Hook `event` on `tenant` fails, as SQL PostgreSQL refuses, until ClearFailures().
  void FailHook(const std::string& tenant, const std::string& event,
                std::string error = "relation \"plans\" does not exist") {
    absl::MutexLock lock(&mu_);
    hook_failures_[{tenant, event}] = std::move(error);
  }
  // What Ping reports: the server's major version.
  void set_major_version(int major) {
    absl::MutexLock lock(&mu_);
    major_ = major;
  }

  // --- What was done.

  bool Exists(const std::string& tenant) const {
    absl::MutexLock lock(&mu_);
    return tenants_.count(tenant) != 0;
  }
  // The versions applied to `tenant`; empty when it does not exist.
  std::set<int64_t> Applied(const std::string& tenant) const {
    absl::MutexLock lock(&mu_);
    auto it = tenants_.find(tenant);
    return it == tenants_.end() ? std::set<int64_t>() : it->second;
  }
  // How many times migration `version` ran on `tenant` (those given to AddTenant not counted).
  int applied_count(const std::string& tenant, int64_t version) const {
    absl::MutexLock lock(&mu_);
    auto it = applied_count_.find({tenant, version});
    return it == applied_count_.end() ? 0 : it->second;
  }
  // Calls of CreateTenant and DropTenant for `tenant` (including those that found nothing to do).
  int creates(const std::string& tenant) const {
    absl::MutexLock lock(&mu_);
    auto it = creates_.find(tenant);
    return it == creates_.end() ? 0 : it->second;
  }
  int drops(const std::string& tenant) const {
    absl::MutexLock lock(&mu_);
    auto it = drops_.find(tenant);
    return it == drops_.end() ? 0 : it->second;
  }
  // How many times hook `event` ran on `tenant` (a run skipped because it ran before is not
  // counted, nor one that failed).
  int hook_runs(const std::string& tenant, const std::string& event) const {
    absl::MutexLock lock(&mu_);
    auto it = hook_runs_.find({tenant, event});
    return it == hook_runs_.end() ? 0 : it->second;
  }
  // How many times migration `version` was rolled back on `tenant`.
  int rolled_back_count(const std::string& tenant, int64_t version) const {
    absl::MutexLock lock(&mu_);
    auto it = rolled_back_.find({tenant, version});
    return it == rolled_back_.end() ? 0 : it->second;
  }
  int total_rolled_back() const {
    absl::MutexLock lock(&mu_);
    return Sum(rolled_back_);
  }
  // Totals over every tenant: creates, drops and migrations run.
  int total_creates() const {
    absl::MutexLock lock(&mu_);
    return Sum(creates_);
  }
  int total_drops() const {
    absl::MutexLock lock(&mu_);
    return Sum(drops_);
  }
  int total_applied() const {
    absl::MutexLock lock(&mu_);
    return Sum(applied_count_);
  }

  // --- agent::ClusterAdmin.

  absl::StatusOr<std::set<std::string>> ListTenants() override {
    absl::MutexLock lock(&mu_);
    std::set<std::string> names;
    for (const auto& [name, applied] : tenants_) names.insert(name);
    return names;
  }

  absl::Status CreateTenant(const std::string& tenant) override {
    absl::MutexLock lock(&mu_);
    ++creates_[tenant];
    tenants_.try_emplace(tenant);
    return absl::OkStatus();
  }

  // As Migrator::Up: refuses a tenant with an applied migration it does not know, then runs
  // the missing ones up to `to` in order, one "applying N_name" line each, stopping at the
  // first that fails.
  absl::StatusOr<int> ApplyMigrations(const std::string& tenant,
                                      const std::vector<common::Migration>& migrations,
                                      std::optional<int64_t> to,
                                      const agent::StepFn& step) override {
    {
      absl::MutexLock lock(&mu_);
      auto it = tenants_.find(tenant);
      if (it == tenants_.end()) return MissingTenant(tenant);
      if (auto st = CheckKnown(it->second, migrations); !st.ok()) return st;
    }
    int ran = 0;
    for (const common::Migration& m : migrations) {
      if (to.has_value() && m.version > *to) break;
      std::optional<std::string> failure;
      {
        absl::MutexLock lock(&mu_);
        auto it = tenants_.find(tenant);
        if (it == tenants_.end()) return MissingTenant(tenant);
        if (it->second.count(m.version) != 0) continue;
        auto f = failures_.find({tenant, m.version});
        if (f != failures_.end()) failure = f->second;
      }
      if (step) step(absl::StrCat("applying ", m.version, "_", m.name));
      if (failure.has_value()) {
        return absl::InternalError(absl::StrCat("migration ", m.version, " (", m.name,
                                                ") failed and was rolled back: ", *failure));
      }
      absl::MutexLock lock(&mu_);
      tenants_[tenant].insert(m.version);
      ++applied_count_[{tenant, m.version}];
      ++ran;
    }
    return ran;
  }

  // As Migrator::Status: every known migration by version, applied or pending, and those
  // applied that `migrations` does not know.
  absl::StatusOr<common::MigrationReport> MigrationStatus(
      const std::string& tenant, const std::vector<common::Migration>& migrations) override {
    absl::MutexLock lock(&mu_);
    auto it = tenants_.find(tenant);
    if (it == tenants_.end()) return MissingTenant(tenant);
    const std::set<int64_t>& applied = it->second;
    std::map<int64_t, common::MigrationState> states;
    common::MigrationReport report;
    for (const auto& m : migrations) {
      common::MigrationState& s = states[m.version];
      s.version = m.version;
      s.name = m.name;
      s.applied = applied.count(m.version) != 0;
      report.latest_version = std::max(report.latest_version, m.version);
    }
    for (int64_t version : applied) {
      auto [state, inserted] = states.try_emplace(version);
      state->second.version = version;
      state->second.applied = true;
      state->second.unknown = inserted;
      report.current_version = std::max(report.current_version, version);
    }
    for (const auto& [version, s] : states) {
      if (!s.applied) ++report.pending;
      report.migrations.push_back(s);
    }
    return report;
  }

  // As PgClusterAdmin over Migrator::Down: every migration above `to_version` is checked for a
  // down file before any is undone, then they are undone newest first, one "rolling back
  // N_name" line each.
  absl::StatusOr<int> RollbackMigrations(const std::string& tenant,
                                         const std::vector<common::Migration>& migrations,
                                         int64_t to_version, const agent::StepFn& step) override {
    std::vector<const common::Migration*> targets;
    {
      absl::MutexLock lock(&mu_);
      auto it = tenants_.find(tenant);
      if (it == tenants_.end()) return MissingTenant(tenant);
      if (auto st = CheckKnown(it->second, migrations); !st.ok()) return st;
      for (auto m = migrations.rbegin(); m != migrations.rend(); ++m) {
        if (m->version <= to_version || it->second.count(m->version) == 0) continue;
        if (m->down_sql.empty()) {
          return absl::FailedPreconditionError(absl::StrCat(
              "migration ", m->version, " (", m->name, ") has no down file; nothing was rolled back"));
        }
        targets.push_back(&*m);
      }
    }
    for (const common::Migration* m : targets) {
      if (step) step(absl::StrCat("rolling back ", m->version, "_", m->name));
      absl::MutexLock lock(&mu_);
      tenants_[tenant].erase(m->version);
      ++rolled_back_[{tenant, m->version}];
    }
    return static_cast<int>(targets.size());
  }

  // As PgClusterAdmin: once per (tenant, event, key); a failing hook is not recorded.
  absl::StatusOr<bool> RunHook(const std::string& tenant, const std::string& event,
                               const std::string& key, const std::string& sql) override {
    absl::MutexLock lock(&mu_);
    if (tenants_.count(tenant) == 0) return MissingTenant(tenant);
    if (hook_keys_.count({tenant, event, key}) != 0) return false;
    auto f = hook_failures_.find({tenant, event});
    if (f != hook_failures_.end()) return absl::InvalidArgumentError(f->second);
    hook_keys_.insert({tenant, event, key});
    ++hook_runs_[{tenant, event}];
    return true;
  }

  // One line per applied migration: equal for tenants with the same versions applied.
  absl::StatusOr<agent::SchemaFingerprint> Fingerprint(const std::string& tenant) override {
    absl::MutexLock lock(&mu_);
    auto it = tenants_.find(tenant);
    if (it == tenants_.end()) return MissingTenant(tenant);
    agent::SchemaFingerprint fp;
    for (int64_t version : it->second) {
      fp.lines.push_back(absl::StrCat("migration tenant ", version));
    }
    fp.sha256 = absl::StrCat("fake-", absl::StrJoin(it->second, ","));  // e.g. fake-1,2,3
    return fp;
  }

  absl::Status DropTenant(const std::string& tenant) override {
    absl::MutexLock lock(&mu_);
    ++drops_[tenant];
    tenants_.erase(tenant);  // its migration history lives in it, and goes with it
    for (auto it = hook_keys_.begin(); it != hook_keys_.end();) {  // and so do its hook runs
      it = std::get<0>(*it) == tenant ? hook_keys_.erase(it) : std::next(it);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<int> Ping() override {
    absl::MutexLock lock(&mu_);
    return major_;
  }

 private:
  template <typename Map>
  static int Sum(const Map& counts) {
    int total = 0;
    for (const auto& [key, n] : counts) total += n;
    return total;
  }
  // What connecting to a database that is not there gives.
  static absl::Status MissingTenant(const std::string& tenant) {
    return absl::NotFoundError(absl::StrCat("database \"", tenant, "\" does not exist"));
  }
  static absl::Status CheckKnown(const std::set<int64_t>& applied,
                                 const std::vector<common::Migration>& migrations) {
    for (int64_t version : applied) {
      bool known = false;
      for (const auto& m : migrations) known = known || m.version == version;
      if (!known) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the database has migration ", version,
            " applied, which is not among the known migrations: is this an older build?"));
      }
    }
    return absl::OkStatus();
  }

  mutable absl::Mutex mu_;
  std::map<std::string, std::set<int64_t>> tenants_ ABSL_GUARDED_BY(mu_);  // name → applied
  std::map<std::pair<std::string, int64_t>, std::string> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int64_t>, int> applied_count_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> creates_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> drops_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, int64_t>, int> rolled_back_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::string> hook_failures_ ABSL_GUARDED_BY(mu_);
  std::set<std::tuple<std::string, std::string, std::string>> hook_keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, int> hook_runs_ ABSL_GUARDED_BY(mu_);
  int major_ ABSL_GUARDED_BY(mu_) = 15;
};

}  // namespace tether::testing
