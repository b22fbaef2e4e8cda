// A separate process for the concurrent-migrators test: runs Migrator::Up on a database with
// the migrations of a directory and prints how many it applied.
#include <iostream>

#include "common/clock.h"
#include "common/pg/migrator.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: migrate_worker URL DIR\n";
    return 2;
  }
  auto files = tether::common::ReadMigrationDir(argv[2]);
  if (!files.ok()) {
    std::cerr << files.status() << "\n";
    return 1;
  }
  auto migrations = tether::common::ParseMigrations(*files);
  if (!migrations.ok()) {
    std::cerr << migrations.status() << "\n";
    return 1;
  }
  tether::common::MigratorOptions options;
  options.set_name = "concurrent";
  options.lock_poll = absl::Milliseconds(10);
  tether::common::Migrator migrator(argv[1], *migrations, options,
                                    tether::common::RealClock::Get());
  auto applied = migrator.Up();
  if (!applied.ok()) {
    std::cerr << applied.status() << "\n";
    return 1;
  }
  std::cout << *applied << "\n";
  return 0;
}
