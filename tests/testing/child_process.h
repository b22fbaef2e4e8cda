// ChildProcess: a real binary run by an end-to-end test, its output in a log file, killed
// (SIGKILL) when the test object goes away. Not thread-safe.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace tether::testing {

class ChildProcess {
 public:
  // Starts argv with the extra KEY=VALUE environment; output goes to log_path.
  ChildProcess(std::vector<std::string> argv, std::vector<std::string> env, std::string log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void Signal(int sig);
  // Waits for it to end and returns its exit status (128+N for signal N).
  int Wait();
  bool Running();
  std::string Log() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
};

// Runs a command to completion and returns {exit status, stdout}; stderr goes to *err.
int RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               std::string* out, std::string* err);

}  // namespace tether::testing
