// Runs the embedded mothership migrations through the common Migrator.
#include "controlplane/schema.h"

#include <spdlog/spdlog.h>

#include "common/logging.h"

#include "common/pg/migrator.h"

namespace tether::controlplane {

absl::Status MigrateMothershipSchema(const std::string& url, common::Clock* clock) {
  auto migrations = common::ParseMigrations(MothershipMigrationFiles());
  if (!migrations.ok()) return migrations.status();
  common::MigratorOptions options;
  options.set_name = "tether-mothership";
  options.on_progress = [](const std::string& line) { spdlog::info("migrate: {}", line); };
  common::Migrator migrator(url, *std::move(migrations), options, clock);
  // Look first without the lock: a replica that finds nothing pending does not queue for it.
  auto report = migrator.Status();
  if (!report.ok()) return report.status();
  if (auto st = common::CheckMigrationReport(*report); !st.ok()) return st;
  if (report->pending == 0) return absl::OkStatus();
  auto applied = migrator.Up();
  if (!applied.ok()) return applied.status();
  if (*applied > 0) spdlog::info("schema migrated applied={}", *applied);
  return absl::OkStatus();
}

}  // namespace tether::controlplane
