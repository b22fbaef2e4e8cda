// tether-agent migrate.
#include "agent/migrate_once.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/config/flags.h"
#include "common/pg/migrator.h"

namespace tether::agent {

CLI::App* AddMigrateOnceCommand(CLI::App& app, MigrateOnceOptions* o) {
  CLI::App* cmd = app.add_subcommand(
      "migrate",
      "apply a directory of migrations to one database once, as a release step, and exit "
      "(several at once still migrate once)");
  cmd->add_option("--database-url", o->database_url, "the database to migrate")
      ->envname("DATABASE_URL")
      ->required();
  cmd->add_option("--source", o->source, "directory of NNNN_name.up.sql / NNNN_name.down.sql")
      ->required();
  cmd->add_option_function<int64_t>(
      "--to", [o](const int64_t& v) { o->to = v; }, "stop after this version (default: all)");
  cmd->add_flag("--status", o->status, "list what is applied, pending, dirty; change nothing");
  cmd->add_option("--set", o->set_name, "the migration set the database keeps them under")
      ->capture_default_str();
  common::AddDurationOption(*cmd, "--lock-timeout", &o->lock_wait,
                            "how long to wait for another migrator of the same database",
                            "TETHER_MIGRATE_LOCK_TIMEOUT");
  return cmd;
}

int RunMigrateOnce(const MigrateOnceOptions& options, common::Clock* clock, std::ostream& out,
                   std::ostream& err) {
  auto files = common::ReadMigrationDir(options.source);
  if (!files.ok()) {
    err << "tether-agent migrate: " << files.status().message() << "\n";
    return 2;
  }
  auto migrations = common::ParseMigrations(*files);
  if (!migrations.ok()) {
    err << "tether-agent migrate: " << migrations.status().message() << "\n";
    return 2;
  }
  common::MigratorOptions mopts;
  mopts.set_name = options.set_name;
  mopts.lock_wait = options.lock_wait;
  mopts.on_progress = [&out](const std::string& line) { out << line << std::endl; };
  common::Migrator migrator(options.database_url, *migrations, mopts, clock);
  auto report = migrator.Status();
  if (!report.ok()) {
    err << "tether-agent migrate: " << report.status().message() << "\n";
    return 1;
  }
  if (options.status) {
    for (const auto& m : report->migrations) {
      const char* state = m.dirty            ? "dirty"
                          : m.checksum_drift ? "changed since applied"
                          : m.unknown        ? "applied, not in the directory"
                          : m.applied        ? "applied"
                                             : "pending";
      out << absl::StrFormat("%04d  %-32s  %s%s\n", m.version, m.name, state,
                             m.error.empty() ? "" : absl::StrCat(": ", m.error));
    }
    out << "at version " << report->current_version << " of " << report->latest_version << ", "
        << report->pending << " pending\n";
    if (auto st = common::CheckMigrationReport(*report); !st.ok()) {
      err << "tether-agent migrate: " << st.message() << "\n";
      return 1;
    }
    return 0;
  }
  const absl::Time start = clock->Now();
  auto applied = migrator.Up(options.to);
  if (!applied.ok()) {
    err << "tether-agent migrate: " << applied.status().message() << "\n";
    return 1;
  }
  out << "applied " << *applied << " migration" << (*applied == 1 ? "" : "s") << " in "
      << absl::FormatDuration(absl::Trunc(clock->Now() - start, absl::Milliseconds(1)))
      << (*applied == 0 ? " (nothing was pending)" : "") << "\n";
  return 0;
}

}  // namespace tether::agent
