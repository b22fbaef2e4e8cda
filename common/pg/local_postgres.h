// LocalPostgres: a PostgreSQL cluster in a directory of ours, driven with initdb and pg_ctl
// (no systemd). Used by the mothership's lite mode, the agent's local provisioner and the test
// harness. When we run as root, initdb and pg_ctl run as an unprivileged OS user.
// Layout under `root`: pgdata/ (the cluster), run/ (unix socket), postgres.log.
// Not thread-safe: one owner drives it.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/process.h"

namespace tether::common {

struct LocalPostgresOptions {
  std::string root;
  // Where initdb and pg_ctl live; empty: the newest /usr/lib/postgresql/*/bin, preferring 15.
  std::string bin_dir;
  // The loopback port; 0 picks a free one at initdb time and keeps it in the cluster's config.
  int port = 0;
  std::string superuser = "tether";
  // Password for `superuser` (scram-sha-256 on every connection). Empty: trust, for throwaway
  // test clusters only.
  std::string password;
  // OS user that owns and runs the cluster when we are root.
  std::string os_user = "postgres";
  // false: fsync, synchronous_commit and full_page_writes off, for tests.
  bool durable = true;
};

class LocalPostgres {
 public:
  LocalPostgres(LocalPostgresOptions options, ProcessRunner* runner);

  // initdb unless the cluster already exists. Idempotent.
  absl::Status EnsureInitialized();
  // Starts the server unless it is running, and waits until it accepts connections.
  absl::Status EnsureRunning();
  // Stops the server (fast mode) if it runs.
  absl::Status Stop();
  // kOk with true/false; an error when pg_ctl itself fails.
  absl::StatusOr<bool> IsRunning();

  // libpq URL for `dbname` over loopback TCP.
  std::string ConnectionUrl(const std::string& dbname) const;
  int port() const { return port_; }

 private:
  absl::StatusOr<ProcessResult> RunTool(const std::string& tool,
                                        std::vector<std::string> args);
  absl::Status ReadPort();
  absl::Status ChownToOsUser(const std::string& path);

  LocalPostgresOptions options_;
  ProcessRunner* runner_;
  std::string data_dir_;
  std::string socket_dir_;
  std::string log_file_;
  int port_ = 0;
};

// The newest installed PostgreSQL server's bin dir, preferring `preferred_major`.
// kNotFound when no server is installed.
absl::StatusOr<std::string> FindPostgresBinDir(int preferred_major = 15);

// A free TCP port on 127.0.0.1 at the moment of asking.
absl::StatusOr<int> PickFreeLoopbackPort();

}  // namespace tether::common
