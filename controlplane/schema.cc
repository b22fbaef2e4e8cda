// Runs the embedded mothership migrations through the common Migrator.
#include "controlplane/schema.h"

#include <spdlog/spdlog.h>

#include "common/logging.h"

#include "common/migrator.h"

namespace tether::controlplane {

absl::Status MigrateMothershipSchema(const std::string& url, common::Clock* clock) {
  auto migrations = common::ParseMigrations(MothershipMigrationFiles());
  if (!migrations.ok()) return migrations.status();
  common::MigratorOptions options;
  options.set_name = "tether-mothership";
  options.on_progress = [](const std::string& line) { spdlog::info("migrate: {}", line); };
  common::Migrator migrator(url, *std::move(migrations), options, clock);
  auto applied = migrator.Up();
  if (!applied.ok()) return applied.status();
  if (*applied > 0) spdlog::info("schema migrated applied={}", *applied);
  return absl::OkStatus();
}

}  // namespace tether::controlplane
