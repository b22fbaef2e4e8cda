// `tether-agent migrate`: the agent's migrator run once, for platforms that migrate as a
// release step (a Kubernetes Job or init container) instead of through the fleet. It applies
// (or with --status only lists) the NNNN_name.up.sql / .down.sql files of a directory to one
// database, under the same advisory lock as the agent, so several pods starting at once still
// migrate once. Prints a line per migration as it runs.
#pragma once

#include <CLI/CLI.hpp>

#include <optional>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "common/clock.h"

namespace tether::agent {

struct MigrateOnceOptions {
  std::string database_url;
  std::string source;              // the migrations directory
  std::optional<int64_t> to;       // stop after this version; unset: all
  bool status = false;             // list, change nothing
  std::string set_name = "tenant"; // the bookkeeping set, as the agent's tenant migrations use
  absl::Duration lock_wait = absl::Minutes(10);
};

// Declares `migrate` on `app`, filling `options`; returns the subcommand.
CLI::App* AddMigrateOnceCommand(CLI::App& app, MigrateOnceOptions* options);

// Runs it: 0 when every migration asked for is applied (or, with status, the database is
// clean); 1 with a one-line reason on `err` otherwise (a dirty or drifted database, a failing
// migration, the lock not had within lock_wait, no database); 2 for a bad directory.
int RunMigrateOnce(const MigrateOnceOptions& options, common::Clock* clock, std::ostream& out,
                   std::ostream& err);

}  // namespace tether::agent
