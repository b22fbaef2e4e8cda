// Runs the real tether-mothership binary for end-to-end tests: starts it on a data dir and
// waits until it has written its address file (it is ready then), reading its address and
// operator token.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "tests/testing/child_process.h"

namespace tether::testing {

struct MothershipProcess {
  std::unique_ptr<ChildProcess> process;
  std::string server;  // HOST:PORT from DATA_DIR/mothership.addr
  std::string token;   // from DATA_DIR/operator.token; "" when another replica made it
};

// `args` are the binary's flags besides --data-dir. kUnavailable, with the log, when the
// process exits before it is ready or is not ready within a minute.
absl::StatusOr<MothershipProcess> StartMothershipProcess(const std::string& binary,
                                                         const std::string& data_dir,
                                                         const std::vector<std::string>& args,
                                                         const std::string& log_path);

}  // namespace tether::testing
