// Launching child processes (initdb, pg_ctl, install scripts), behind an interface so logic
// that drives them can be tested with a fake. RealProcessRunner is thread-safe.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tether::common {

struct ProcessSpec {
  std::vector<std::string> argv;
  // When non-empty and we are root, the child drops to this user (uid, gid, no other groups).
  std::string run_as_user;
  std::vector<std::string> extra_env;  // KEY=VALUE, added to our environment
  std::string cwd;
  absl::Duration timeout = absl::Minutes(5);
  // Called with each line of combined stdout/stderr as it arrives.
  std::function<void(const std::string&)> on_line;
};

struct ProcessResult {
  int exit_code = 0;   // 128+N when killed by signal N
  std::string output;  // combined stdout and stderr
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // kNotFound when argv[0] cannot be executed; kDeadlineExceeded when the timeout killed it.
  // A non-zero exit is not an error here: callers read exit_code.
  virtual absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec) = 0;
};

class RealProcessRunner final : public ProcessRunner {
 public:
  absl::StatusOr<ProcessResult> Run(const ProcessSpec& spec) override;
};

// True when this process runs as root.
bool RunningAsRoot();

// uid/gid of a local user. kNotFound when there is no such user.
struct UserIds {
  uid_t uid;
  gid_t gid;
};
absl::StatusOr<UserIds> LookupUser(const std::string& name);

}  // namespace tether::common
