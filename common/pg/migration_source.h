// A migration file as shipped: its file name (NNNN_name.up.sql or NNNN_name.down.sql) and SQL.
// Binaries embed their own schema's files (cmake/embed_migrations.cmake); tenants' files are
// read from a directory or uploaded with a cluster spec.
#pragma once

#include <string>

namespace tether::common {

struct MigrationFile {
  std::string filename;
  std::string contents;
};

}  // namespace tether::common
