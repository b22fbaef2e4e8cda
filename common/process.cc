// fork/exec with a pipe for output, poll for the timeout, and a privilege drop in the child.
#include "common/process.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace tether::common {

bool RunningAsRoot() { return ::geteuid() == 0; }

absl::StatusOr<UserIds> LookupUser(const std::string& name) {
  struct passwd pw;
  struct passwd* result = nullptr;
  std::vector<char> buf(16384);
  if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &result) != 0 || result == nullptr) {
    return absl::NotFoundError(absl::StrCat("no local user \"", name, "\""));
  }
  return UserIds{pw.pw_uid, pw.pw_gid};
}

absl::StatusOr<ProcessResult> RealProcessRunner::Run(const ProcessSpec& spec) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("empty command");
  std::optional<UserIds> drop_to;
  if (!spec.run_as_user.empty() && RunningAsRoot()) {
    auto ids = LookupUser(spec.run_as_user);
    if (!ids.ok()) return ids.status();
    drop_to = *ids;
  }
  // Everything the child needs is prepared before fork: after it only async-signal-safe calls.
  std::vector<std::string> env_storage;
  for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
  for (const auto& kv : spec.extra_env) env_storage.push_back(kv);
  std::vector<char*> envp;
  for (auto& s : env_storage) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_storage = spec.argv;
  std::vector<char*> argv;
  for (auto& s : argv_storage) argv.push_back(s.data());
  argv.push_back(nullptr);

  int out[2];
  int exec_err[2];  // reports an exec failure's errno to the parent
  if (::pipe2(out, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  if (::pipe2(exec_err, O_CLOEXEC) != 0) {
    const int err = errno;
    ::close(out[0]);
    ::close(out[1]);
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(err)));
  }
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int err = errno;
    for (int fd : {out[0], out[1], exec_err[0], exec_err[1]}) ::close(fd);
    return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    ::dup2(out[1], 1);
    ::dup2(out[1], 2);
    int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) ::dup2(devnull, 0);  // the duplicate on 0 does not inherit CLOEXEC
    if (!spec.cwd.empty() && ::chdir(spec.cwd.c_str()) != 0) {
      int err = errno;
      (void)!::write(exec_err[1], &err, sizeof(err));
      ::_exit(127);
    }
    if (drop_to.has_value()) {
      if (::setgroups(1, &drop_to->gid) != 0 || ::setgid(drop_to->gid) != 0 ||
          ::setuid(drop_to->uid) != 0) {
        int err = errno;
        (void)!::write(exec_err[1], &err, sizeof(err));
        ::_exit(127);
      }
    }
    ::execvpe(argv[0], argv.data(), envp.data());
    int err = errno;
    (void)!::write(exec_err[1], &err, sizeof(err));
    ::_exit(127);
  }
  ::close(out[1]);
  ::close(exec_err[1]);

  ProcessResult result;
  std::string pending;
  const absl::Time deadline = absl::Now() + spec.timeout;
  bool timed_out = false;
  char buf[4096];
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
      break;
    }
    struct pollfd pfd = {out[0], POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno != EINTR) break;
    if (ready <= 0) continue;
    ssize_t n = ::read(out[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, n);
    pending.append(buf, n);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      if (spec.on_line) spec.on_line(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
  }
  if (!pending.empty() && spec.on_line) spec.on_line(pending);
  ::close(out[0]);
  // The child closed its output; it may still run (or a grandchild may have kept the pipe),
  // so the deadline still holds for its exit.
  int status = 0;
  for (;;) {
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) break;
    if (absl::Now() >= deadline && !timed_out) {
      timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  int child_errno = 0;
  const bool exec_failed = ::read(exec_err[0], &child_errno, sizeof(child_errno)) ==
                           static_cast<ssize_t>(sizeof(child_errno));
  ::close(exec_err[0]);
  const std::string what = absl::StrJoin(spec.argv, " ");
  if (exec_failed) {
    return absl::NotFoundError(absl::StrCat("cannot run ", spec.argv[0], ": ",
                                            std::strerror(child_errno)));
  }
  if (timed_out) {
    return absl::DeadlineExceededError(
        absl::StrCat("`", what, "` did not finish within ", absl::FormatDuration(spec.timeout)));
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

}  // namespace tether::common
