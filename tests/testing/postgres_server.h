// The test harness's PostgreSQL: one real PostgreSQL (initdb + pg_ctl, no systemd, fsync off,
// trust auth) per test binary in a temporary directory, and a fresh database per test.
// Start it by linking tether_testing_main (a gtest main that registers the environment).
#pragma once

#include <string>

#include "common/pg/local_postgres.h"

namespace tether::testing {

class PostgresServer {
 public:
  // The running server of this test binary; fails the calling test when it could not start.
  static PostgresServer& Get();

  // Creates a new, empty database and returns its URL.
  std::string FreshDatabase();
  // URL of the maintenance database.
  std::string AdminUrl() const;
  int port() const;

  // For the environment's SetUp/TearDown.
  static void Start();
  static void Stop();

 private:
  PostgresServer() = default;
  std::string root_;
  common::RealProcessRunner runner_;
  std::unique_ptr<common::LocalPostgres> postgres_;
  int counter_ = 0;
};

// A fresh temporary directory (0755, so the postgres OS user can pass through it); removed
// by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace tether::testing
