// CommandRunner: carries out one command (migrate, rollback, drop_tenant, reprovision) on the
// agent's PostgreSQL through ClusterAdmin and TenantRecords, with the migrations and hooks of a
// cluster spec. Work is split into steps, one per tenant, reported as done/total; between steps
// it stops when cancelled (state CANCELLED) or when the agent shuts down (state RUNNING: the
// command is resumed at the next start). Every check that can refuse a command runs before
// anything changes. Migrations go through the Executor, so tenant records and hooks behave as
// in a reconcile. Used by one thread at a time; the dispatcher owns the command's record.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "agent/reconcile/cluster_admin.h"
#include "agent/tenants/tenant_records.h"
#include "common/clock.h"
#include "tether/v1/command.pb.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

// Where a run reports: its progress lines, its steps, and what it decided at first start.
struct CommandIo {
  StepFn line;
  std::function<void(int steps_done, int steps_total, const std::string& step)> progress;
  // Persists the command's detail before anything changes; a failure fails the command.
  std::function<absl::Status(const nlohmann::json& detail)> save_detail;
};

struct CommandStops {
  const absl::Notification* cancel = nullptr;    // the operator asked to stop it
  const absl::Notification* shutdown = nullptr;  // the agent is stopping
};

struct CommandResult {
  // SUCCEEDED, FAILED or CANCELLED; RUNNING when the agent's shutdown interrupted it.
  v1::CommandState state = v1::COMMAND_STATE_FAILED;
  std::string error;             // one line, for FAILED
  bool changed_tenants = false;  // a reconcile should report the tenants afresh
  // Not run: what it needs is not there yet (no desired state, PostgreSQL not ready). The
  // dispatcher runs it again later; `state` and `error` are ignored.
  bool again = false;
};

// Runs provisioning again and waits until PostgreSQL is ready again; kCancelled when `stop`
// fired first, the provisioner's error when it failed.
using ReprovisionFn = std::function<absl::Status(const StepFn& line, const absl::Notification* stop)>;

// Checks a command off the wire: an id of at most 128 printable characters, a kind, tenant
// names that are identifiers, rollback steps in 0..1000, non-negative versions and counters.
// kInvalidArgument naming the field.
absl::Status ValidateCommand(const v1::Command& command);

// What a command does, in words ("migrate acme to version 3").
std::string DescribeCommand(const v1::Command& command);

class CommandRunner {
 public:
  CommandRunner(ClusterAdmin* admin, TenantRecords* tenants, common::Clock* clock,
                ReprovisionFn reprovision);

  // Runs `command` with the migrations and hooks of `spec`. `detail` is what an earlier attempt
  // saved (empty object at first start): a resumed rollback undoes only down to its target.
  CommandResult Run(const v1::Command& command, const v1::ClusterSpec& spec,
                    const nlohmann::json& detail, const CommandIo& io, CommandStops stops);

 private:
  CommandResult Migrate(const v1::MigrateCommand& cmd, const v1::ClusterSpec& spec,
                        const CommandIo& io, CommandStops stops);
  CommandResult Rollback(const v1::RollbackCommand& cmd, const v1::ClusterSpec& spec,
                         const nlohmann::json& detail, const CommandIo& io, CommandStops stops);
  CommandResult DropTenant(const v1::DropTenantCommand& cmd, const v1::ClusterSpec& spec,
                           const CommandIo& io, CommandStops stops);
  CommandResult Reprovision(const CommandIo& io, CommandStops stops);
  absl::Status Record(const std::string& tenant, v1::TenantState state, int64_t version,
                      bool held, const std::string& error = "");

  ClusterAdmin* admin_;
  TenantRecords* tenants_;
  common::Clock* clock_;
  ReprovisionFn reprovision_;
};

}  // namespace tether::agent
