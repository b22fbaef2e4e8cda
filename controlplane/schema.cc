// Runs the embedded mothership migrations through the common Migrator.
#include "controlplane/schema.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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
  // Look first without the lock: a replica that finds nothing pending does not queue for it.
  auto report = migrator.Status();
  if (!report.ok()) return report.status();
  const bool clean = std::none_of(report->migrations.begin(), report->migrations.end(),
                                  [](const common::MigrationState& m) {
                                    return m.dirty || m.checksum_drift || m.unknown;
                                  });
  if (report->pending == 0 && clean) return absl::OkStatus();
  auto applied = migrator.Up();
  if (!applied.ok()) return applied.status();
  if (*applied > 0) spdlog::info("schema migrated applied={}", *applied);
  return absl::OkStatus();
}

}  // namespace tether::controlplane
