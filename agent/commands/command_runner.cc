// CommandRunner: migrate, rollback, drop_tenant and reprovision, step by step.
#include "agent/commands/command_runner.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/onboarding/onboarding.h"
#include "agent/reconcile/executor.h"
#include "common/pg/identifiers.h"
#include "common/spec/spec.h"

namespace tether::agent {
namespace {

constexpr size_t kMaxCommandIdBytes = 128;
constexpr int kMaxRollbackSteps = 1000;

CommandResult Failed(std::string error) {
  return {v1::COMMAND_STATE_FAILED, std::move(error), false};
}

CommandResult Failed(const absl::Status& st) { return Failed(std::string(st.message())); }

// Between steps: the agent stopping leaves the command to be resumed; an operator's cancel
// ends it.
std::optional<CommandResult> Stopped(CommandStops stops, int done, int total, bool changed) {
  if (stops.shutdown != nullptr && stops.shutdown->HasBeenNotified()) {
    return CommandResult{v1::COMMAND_STATE_RUNNING, "the agent is stopping", changed};
  }
  if (stops.cancel != nullptr && stops.cancel->HasBeenNotified()) {
    return CommandResult{v1::COMMAND_STATE_CANCELLED,
                         absl::StrCat("cancelled after ", done, " of ", total, " steps"), changed};
  }
  return std::nullopt;
}

bool InSpec(const v1::ClusterSpec& spec, const std::string& tenant) {
  for (const auto& t : spec.tenants()) {
    if (t.name() == tenant) return true;
  }
  return false;
}

std::string MigrationFileName(const common::Migration& m) {
  return absl::StrFormat("%04d_%s", m.version, m.name);
}

std::string Took(absl::Duration d) {
  return absl::StrFormat("%.0f ms", absl::ToDoubleMilliseconds(d));
}

absl::Status ValidTenant(const std::string& field, const std::string& tenant) {
  if (auto st = common::ValidateIdentifier("tenant", tenant); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", st.message()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateCommand(const v1::Command& command) {
  const std::string& id = command.id();
  if (id.empty() || id.size() > kMaxCommandIdBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("id: must be 1 to ", kMaxCommandIdBytes, " characters"));
  }
  for (char c : id) {
    if (!absl::ascii_isgraph(static_cast<unsigned char>(c))) {
      return absl::InvalidArgumentError("id: only printable characters without spaces");
    }
  }
  if (command.revision() < 0 || command.attempt() < 0 || command.lines_stored() < 0) {
    return absl::InvalidArgumentError("revision, attempt and lines_stored must not be negative");
  }
  switch (command.kind_case()) {
    case v1::Command::kMigrate:
      if (command.migrate().to_version() < 0) {
        return absl::InvalidArgumentError("migrate.to_version must not be negative");
      }
      if (!command.migrate().tenant().empty()) {
        return ValidTenant("migrate.tenant", command.migrate().tenant());
      }
      return absl::OkStatus();
    case v1::Command::kRollback:
      if (command.rollback().steps() < 0 || command.rollback().steps() > kMaxRollbackSteps) {
        return absl::InvalidArgumentError(
            absl::StrCat("rollback.steps must be 0 to ", kMaxRollbackSteps));
      }
      return ValidTenant("rollback.tenant", command.rollback().tenant());
    case v1::Command::kDropTenant:
      return ValidTenant("drop_tenant.tenant", command.drop_tenant().tenant());
    case v1::Command::kReprovision:
      return absl::OkStatus();
    case v1::Command::kApply:
      if (command.apply().revision() <= 0) {
        return absl::InvalidArgumentError("apply.revision must be positive");
      }
      return absl::OkStatus();
    case v1::Command::KIND_NOT_SET:
      break;
  }
  return absl::InvalidArgumentError("the command has no kind this agent knows");
}

std::string DescribeCommand(const v1::Command& command) {
  switch (command.kind_case()) {
    case v1::Command::kMigrate: {
      const auto& m = command.migrate();
      return absl::StrCat("migrate ", m.tenant().empty() ? "every tenant" : m.tenant(), " to ",
                          m.to_version() == 0 ? std::string("the latest version")
                                              : absl::StrCat("version ", m.to_version()));
    }
    case v1::Command::kRollback:
      return absl::StrCat("roll back ", command.rollback().tenant(), " by ",
                          std::max(1, command.rollback().steps()), " migration(s)");
    case v1::Command::kDropTenant:
      return absl::StrCat("drop tenant ", command.drop_tenant().tenant(),
                          command.drop_tenant().force() ? " (forced)" : "");
    case v1::Command::kReprovision:
      return "reprovision PostgreSQL";
    case v1::Command::kApply:
      return absl::StrCat("apply revision ", command.apply().revision());
    case v1::Command::KIND_NOT_SET:
      break;
  }
  return "nothing";
}

CommandRunner::CommandRunner(ClusterAdmin* admin, TenantRecords* tenants, common::Clock* clock,
                             ReprovisionFn reprovision)
    : admin_(admin), tenants_(tenants), clock_(clock), reprovision_(std::move(reprovision)) {}

absl::Status CommandRunner::Record(const std::string& tenant, v1::TenantState state,
                                   int64_t version, bool held, const std::string& error) {
  TenantRecord record;
  record.name = tenant;
  record.state = state;
  record.version = version;
  record.held = held;
  record.error = error;
  record.updated_at = clock_->Now();
  return tenants_->Put(record);
}

CommandResult CommandRunner::Run(const v1::Command& command, const v1::ClusterSpec& spec,
                                 const nlohmann::json& detail, const CommandIo& io,
                                 CommandStops stops) {
  if (auto st = ValidateCommand(command); !st.ok()) return Failed(st);
  if (command.kind_case() != v1::Command::kReprovision) {
    if (auto st = common::ValidateSpec(spec); !st.ok()) return Failed(st);
  }
  switch (command.kind_case()) {
    case v1::Command::kMigrate: return Migrate(command.migrate(), spec, io, stops);
    case v1::Command::kRollback: return Rollback(command.rollback(), spec, detail, io, stops);
    case v1::Command::kDropTenant: return DropTenant(command.drop_tenant(), spec, io, stops);
    case v1::Command::kReprovision: return Reprovision(io, stops);
    default: break;
  }
  return Failed("an apply command ends with the agent's ack or nack of its revision");
}

CommandResult CommandRunner::Migrate(const v1::MigrateCommand& cmd, const v1::ClusterSpec& spec,
                                     const CommandIo& io, CommandStops stops) {
  auto migrations = common::SpecMigrations(spec);
  if (!migrations.ok()) return Failed(migrations.status());
  const int64_t latest = migrations->empty() ? 0 : migrations->back().version;
  const int64_t to = cmd.to_version() == 0 ? latest : cmd.to_version();
  if (to > latest) {
    return Failed(absl::StrCat("version ", to, " is above the spec's latest migration (", latest,
                               "); nothing was migrated"));
  }
  std::vector<std::string> names;
  if (cmd.tenant().empty()) {
    for (const auto& t : spec.tenants()) names.push_back(t.name());
  } else if (InSpec(spec, cmd.tenant())) {
    names.push_back(cmd.tenant());
  } else {
    return Failed(absl::StrCat("tenant ", cmd.tenant(),
                               " is not in the cluster's spec; nothing was migrated"));
  }
  auto existing = admin_->ListTenants();
  if (!existing.ok()) return Failed(existing.status());
  auto records = tenants_->List();
  if (!records.ok()) return Failed(records.status());

  // A migrate never goes down: that is a rollback's (which runs the down migrations).
  for (const std::string& name : names) {
    auto rec = records->find(name);
    if (existing->count(name) != 0 && rec != records->end() && rec->second.version > to) {
      return Failed(absl::StrCat("tenant ", name, " is at version ", rec->second.version,
                                 ", above ", to, "; a migrate does not go down, use rollback; "
                                 "nothing was migrated"));
    }
  }
  // Below the latest, the tenants are held there: the reconcile that follows would otherwise
  // migrate them on to the latest at once (policy auto). A migrate to the latest clears it.
  const bool hold = to < latest;

  // A tenant a migrate finds missing is created by replay, to the version it names.
  ReplayOnboarding onboarding(admin_);
  Executor executor(admin_, tenants_, &onboarding, clock_, /*concurrency=*/1);
  executor.set_hooks({spec.hooks().begin(), spec.hooks().end()});
  const int total = static_cast<int>(names.size());
  io.line(absl::StrCat("migrating ", total, " tenant(s) to version ", to,
                       hold ? " (held there, below the latest)" : ""));
  std::vector<TenantFailure> failures;
  bool changed = false;
  for (int i = 0; i < total; ++i) {
    if (auto stopped = Stopped(stops, i, total, changed)) return *stopped;
    const std::string& name = names[i];
    io.progress(i, total, absl::StrCat("migrate ", name));
    auto rec = records->find(name);
    Action action;
    action.tenant = name;
    action.to_version = to;
    action.held = hold;  // a migrate to the latest clears a rollback's hold
    if (existing->count(name) != 0 && rec != records->end() &&
        rec->second.state != v1::TENANT_STATE_CREATING) {
      action.kind = ActionKind::kMigrate;
      action.from_version = rec->second.version;
      action.after_failure = rec->second.state == v1::TENANT_STATE_FAILED;
    } else {
      action.kind = ActionKind::kOnboard;
      action.from_version = rec != records->end() ? rec->second.version : 0;
    }
    const ExecutionResult result =
        executor.Run(Plan{{action}, {}}, *migrations, latest, io.line, nullptr);
    changed = true;
    for (const auto& f : result.failures) failures.push_back(f);
    io.progress(i + 1, total, "");
  }
  if (!failures.empty()) {
    std::vector<std::string> parts;
    for (size_t i = 0; i < failures.size() && i < 3; ++i) {
      parts.push_back(absl::StrCat(failures[i].tenant, ": ", failures[i].status.message()));
    }
    if (failures.size() > 3) parts.push_back(absl::StrCat("and ", failures.size() - 3, " more"));
    return {v1::COMMAND_STATE_FAILED,
            absl::StrCat(failures.size(), " of ", total, " tenants failed: ",
                         absl::StrJoin(parts, "; ")),
            changed};
  }
  return {v1::COMMAND_STATE_SUCCEEDED, "", changed};
}

CommandResult CommandRunner::Rollback(const v1::RollbackCommand& cmd, const v1::ClusterSpec& spec,
                                      const nlohmann::json& detail, const CommandIo& io,
                                      CommandStops stops) {
  const std::string& tenant = cmd.tenant();
  auto tenant_line = [&](const std::string& line) { io.line(absl::StrCat(tenant, ": ", line)); };
  auto migrations = common::SpecMigrations(spec);
  if (!migrations.ok()) return Failed(migrations.status());
  const int64_t latest = migrations->empty() ? 0 : migrations->back().version;
  auto existing = admin_->ListTenants();
  if (!existing.ok()) return Failed(existing.status());
  if (existing->count(tenant) == 0) {
    return Failed(absl::StrCat("tenant ", tenant, " does not exist on this agent; nothing was "
                               "rolled back"));
  }
  auto report = admin_->MigrationStatus(tenant, *migrations);
  if (!report.ok()) return Failed(report.status());
  if (auto st = common::CheckMigrationReport(*report); !st.ok()) return Failed(st);
  const int64_t current = report->current_version;

  int64_t target = 0;
  if (detail.contains("target_version") && detail["target_version"].is_number_integer()) {
    // Resumed: the target was decided at first start; never undo past it.
    target = detail["target_version"].get<int64_t>();
    tenant_line(absl::StrCat("resuming the rollback to version ", target));
  } else {
    const int steps = std::max(1, cmd.steps());
    std::vector<int64_t> applied;  // newest first
    for (auto it = report->migrations.rbegin(); it != report->migrations.rend(); ++it) {
      if (it->applied) applied.push_back(it->version);
    }
    if (applied.empty()) {
      return Failed(absl::StrCat("tenant ", tenant, " has no migration applied; nothing was "
                                 "rolled back"));
    }
    const size_t undo = std::min<size_t>(static_cast<size_t>(steps), applied.size());
    std::map<int64_t, const common::Migration*> by_version;
    for (const auto& m : *migrations) by_version[m.version] = &m;
    for (size_t i = 0; i < undo; ++i) {
      const common::Migration* m = by_version.at(applied[i]);  // known: the report was checked
      if (m->down_sql.empty()) {
        return Failed(absl::StrCat("migration ", m->version, " (", MigrationFileName(*m),
                                   ") has no down file; nothing was rolled back"));
      }
    }
    target = undo < applied.size() ? applied[undo] : 0;
    if (auto st = io.save_detail({{"target_version", target}, {"from_version", current}});
        !st.ok()) {
      return Failed(absl::StrCat("cannot record the rollback's target: ", st.message(),
                                 "; nothing was rolled back"));
    }
  }
  if (auto stopped = Stopped(stops, 0, 1, false)) return *stopped;
  io.progress(0, 1, absl::StrCat("roll back ", tenant, " to version ", target));
  const absl::Time start = clock_->Now();
  // Recorded at the target before anything is undone: a reconcile that runs after a crash
  // part-way then never migrates the tenant up past it.
  if (auto st = Record(tenant, v1::TENANT_STATE_MIGRATING, target, /*held=*/true); !st.ok()) {
    return Failed(st);
  }
  auto undone = admin_->RollbackMigrations(tenant, *migrations, target, tenant_line);
  auto after = admin_->MigrationStatus(tenant, *migrations);
  const int64_t version = after.ok() ? after->current_version : target;
  if (!undone.ok()) {
    (void)Record(tenant, v1::TENANT_STATE_FAILED, version, /*held=*/true,
                 std::string(undone.status().message()));
    return {v1::COMMAND_STATE_FAILED, std::string(undone.status().message()), true};
  }
  const v1::TenantState state =
      version >= latest ? v1::TENANT_STATE_READY : v1::TENANT_STATE_PENDING;
  if (auto st = Record(tenant, state, version, /*held=*/true); !st.ok()) {
    return {v1::COMMAND_STATE_FAILED, std::string(st.message()), true};
  }
  tenant_line(absl::StrCat("rolled back ", *undone, " migration(s) in ", Took(clock_->Now() - start),
                           "; held at version ", version, " until a migrate"));
  io.progress(1, 1, "");
  return {v1::COMMAND_STATE_SUCCEEDED, "", true};
}

CommandResult CommandRunner::DropTenant(const v1::DropTenantCommand& cmd,
                                        const v1::ClusterSpec& spec, const CommandIo& io,
                                        CommandStops stops) {
  const std::string& tenant = cmd.tenant();
  if (InSpec(spec, tenant) && !cmd.force()) {
    return Failed(absl::StrCat("tenant ", tenant, " is in the cluster's spec; remove it from the "
                               "spec first, or force; nothing was dropped"));
  }
  if (auto stopped = Stopped(stops, 0, 1, false)) return *stopped;
  io.progress(0, 1, absl::StrCat("drop ", tenant));
  const absl::Time start = clock_->Now();
  auto existing = admin_->ListTenants();
  if (!existing.ok()) return Failed(existing.status());
  auto records = tenants_->List();
  if (!records.ok()) return Failed(records.status());
  const bool exists = existing->count(tenant) != 0;
  const bool recorded = records->count(tenant) != 0;
  if (exists) {
    if (auto st = admin_->DropTenant(tenant); !st.ok()) return Failed(st);
  }
  if (recorded) {
    if (auto st = tenants_->Remove(tenant); !st.ok()) return {v1::COMMAND_STATE_FAILED,
                                                              std::string(st.message()), exists};
  }
  io.line(exists ? absl::StrCat(tenant, ": dropped in ", Took(clock_->Now() - start))
                 : absl::StrCat(tenant, ": already gone", recorded ? "; record forgotten" : ""));
  io.progress(1, 1, "");
  return {v1::COMMAND_STATE_SUCCEEDED, "", exists || recorded};
}

CommandResult CommandRunner::Reprovision(const CommandIo& io, CommandStops stops) {
  if (!reprovision_) return Failed("this agent cannot reprovision");
  if (auto stopped = Stopped(stops, 0, 1, false)) return *stopped;
  io.progress(0, 1, "reprovision");
  const absl::Time start = clock_->Now();
  io.line("provisioning PostgreSQL again");
  if (auto st = reprovision_(io.line, stops.shutdown); !st.ok()) {
    if (absl::IsCancelled(st)) return {v1::COMMAND_STATE_RUNNING, "the agent is stopping", false};
    return Failed(absl::StrCat("reprovisioning failed: ", st.message()));
  }
  io.line(absl::StrCat("PostgreSQL is ready again after ", Took(clock_->Now() - start)));
  io.progress(1, 1, "");
  return {v1::COMMAND_STATE_SUCCEEDED, "", false};
}

}  // namespace tether::agent
