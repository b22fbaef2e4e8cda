// ChildProcess over posix_spawn.
#include "tests/testing/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace tether::testing {
namespace {

std::vector<std::string> MergedEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& kv : extra) env.push_back(kv);
  return env;
}

std::vector<char*> Pointers(std::vector<std::string>& v) {
  std::vector<char*> p;
  for (auto& s : v) p.push_back(s.data());
  p.push_back(nullptr);
  return p;
}

int DecodeStatus(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

pid_t Spawn(std::vector<std::string> argv, const std::vector<std::string>& env, const std::string& out,
            const std::string& err) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  auto merged = MergedEnv(env);
  auto envp = Pointers(merged);
  auto args = Pointers(argv);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("posix_spawn failed for " + argv[0]);
  return pid;
}

}  // namespace

ChildProcess::ChildProcess(std::vector<std::string> argv, std::vector<std::string> env,
                           std::string log_path)
    : log_path_(std::move(log_path)) {
  pid_ = Spawn(std::move(argv), env, log_path_, log_path_);
}

ChildProcess::~ChildProcess() {
  if (Running()) {
    ::kill(pid_, SIGKILL);
    Wait();
  }
}

void ChildProcess::Signal(int sig) {
  if (status_ < 0) ::kill(pid_, sig);
}

int ChildProcess::Wait() {
  if (status_ >= 0) return DecodeStatus(status_);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
  }
  status_ = status;
  return DecodeStatus(status_);
}

bool ChildProcess::Running() {
  if (status_ >= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    status_ = status;
    return false;
  }
  return true;
}

std::string ChildProcess::Log() const { return Slurp(log_path_); }

int RunCommand(const std::vector<std::string>& argv, const std::vector<std::string>& env,
               std::string* out, std::string* err) {
  char out_path[] = "/tmp/tether-cmd-out-XXXXXX";
  char err_path[] = "/tmp/tether-cmd-err-XXXXXX";
  ::close(::mkstemp(out_path));
  ::close(::mkstemp(err_path));
  pid_t pid = Spawn(argv, env, out_path, err_path);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
  }
  if (out != nullptr) *out = Slurp(out_path);
  if (err != nullptr) *err = Slurp(err_path);
  ::unlink(out_path);
  ::unlink(err_path);
  return DecodeStatus(status);
}

}  // namespace tether::testing
