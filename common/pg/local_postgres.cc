// initdb/pg_ctl orchestration for LocalPostgres.
#include "common/pg/local_postgres.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/files.h"

namespace tether::common {
namespace fs = std::filesystem;
namespace {

// The last `n` non-empty lines of a tool's output, as one line.
std::string LastLines(absl::string_view text, size_t n) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) {
    lines.emplace_back(absl::StripAsciiWhitespace(line));
  }
  if (lines.size() > n) lines.erase(lines.begin(), lines.end() - n);
  return absl::StrJoin(lines, "; ");
}

}  // namespace

absl::StatusOr<std::string> FindPostgresBinDir(int preferred_major) {
  const std::string preferred = absl::StrCat("/usr/lib/postgresql/", preferred_major, "/bin");
  if (fs::exists(preferred + "/initdb")) return preferred;
  std::string best;
  int best_major = -1;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    int major = 0;
    if (absl::SimpleAtoi(entry.path().filename().string(), &major) && major > best_major &&
        fs::exists(entry.path() / "bin/initdb")) {
      best_major = major;
      best = (entry.path() / "bin").string();
    }
  }
  if (best.empty()) {
    return absl::NotFoundError(
        "no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql-15)");
  }
  return best;
}

absl::StatusOr<int> PickFreeLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    return absl::UnavailableError("cannot bind a loopback port");
  }
  ::close(fd);
  return ntohs(addr.sin_port);
}

LocalPostgres::LocalPostgres(LocalPostgresOptions options, ProcessRunner* runner)
    : options_([&] {
        // The tools run in `root` as another user, so every path handed to them must be
        // absolute and free of symlinks through directories that user may not enter.
        std::error_code ec;
        options.root = fs::weakly_canonical(fs::absolute(options.root, ec), ec).string();
        return std::move(options);
      }()),
      runner_(runner),
      data_dir_(options_.root + "/pgdata"),
      socket_dir_(options_.root + "/run"),
      log_file_(options_.root + "/postgres.log"),
      port_(options_.port) {}

absl::StatusOr<ProcessResult> LocalPostgres::RunTool(const std::string& tool,
                                                     std::vector<std::string> args) {
  ProcessSpec spec;
  spec.argv.push_back(options_.bin_dir + "/" + tool);
  for (auto& a : args) spec.argv.push_back(std::move(a));
  spec.run_as_user = options_.os_user;
  spec.cwd = options_.root;  // the OS user may not be able to enter our working directory
  spec.timeout = absl::Minutes(2);
  // Keep the child's locale simple: initdb fails on locales that are not generated.
  spec.extra_env = {"LC_ALL=C.UTF-8", "LANG=C.UTF-8"};
  return runner_->Run(spec);
}

absl::Status LocalPostgres::ChownToOsUser(const std::string& path) {
  if (!RunningAsRoot()) return absl::OkStatus();
  auto ids = LookupUser(options_.os_user);
  if (!ids.ok()) return ids.status();
  if (::chown(path.c_str(), ids->uid, ids->gid) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot chown ", path, " to ",
                                                    options_.os_user));
  }
  return absl::OkStatus();
}

absl::Status LocalPostgres::ReadPort() {
  auto conf = ReadFile(data_dir_ + "/tether.conf");
  if (!conf.ok()) return conf.status();
  std::smatch m;
  static const std::regex kPort(R"(port\s*=\s*(\d+))");
  if (!std::regex_search(*conf, m, kPort) || !absl::SimpleAtoi(m[1].str(), &port_)) {
    return absl::DataLossError(absl::StrCat(data_dir_, "/tether.conf has no port line"));
  }
  return absl::OkStatus();
}

absl::Status LocalPostgres::EnsureInitialized() {
  if (options_.bin_dir.empty()) {
    auto bin = FindPostgresBinDir();
    if (!bin.ok()) return bin.status();
    options_.bin_dir = *bin;
  }
  if (fs::exists(data_dir_ + "/PG_VERSION")) return ReadPort();

  for (const std::string& dir : {options_.root, socket_dir_}) {
    if (auto st = MakeDirs(dir, 0700); !st.ok()) return st;
    if (auto st = ChownToOsUser(dir); !st.ok()) return st;
  }
  if (RunningAsRoot()) {
    // initdb would fail later with a bare "Permission denied"; say what is wrong instead.
    ProcessSpec probe;
    probe.argv = {"test", "-w", options_.root};
    probe.run_as_user = options_.os_user;
    auto reach = runner_->Run(probe);
    if (reach.ok() && reach->exit_code != 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the ", options_.os_user, " user cannot reach ", options_.root,
          " (a parent directory is private, like /root); use a data dir it can reach"));
    }
  }
  // The cluster is made whole in a side directory and renamed into place, so a crash at any
  // point leaves either no pgdata or a complete one; leftovers of a crash are removed here.
  const std::string staging = data_dir_ + ".initdb";
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::remove_all(data_dir_, ec);

  std::vector<std::string> args = {"-D", staging, "-U", options_.superuser, "-E", "UTF8",
                                   "--locale=C.UTF-8"};
  const std::string pwfile = options_.root + "/.initdb-password";
  if (options_.password.empty()) {
    args.push_back("--auth=trust");
  } else {
    if (auto st = WriteFileAtomically(pwfile, options_.password + "\n", 0600); !st.ok()) return st;
    if (auto st = ChownToOsUser(pwfile); !st.ok()) return st;
    args.insert(args.end(), {"--auth=scram-sha-256", "--pwfile", pwfile});
  }
  if (!options_.durable) args.push_back("--no-sync");
  auto result = RunTool("initdb", args);
  fs::remove(pwfile, ec);
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("initdb failed (exit ", result->exit_code,
                                            "): ", LastLines(result->output, 2)));
  }

  if (port_ == 0) {
    auto port = PickFreeLoopbackPort();
    if (!port.ok()) return port.status();
    port_ = *port;
  }
  std::string conf = absl::StrCat(
      "# Written by tether at initdb time.\n", "port = ", port_, "\n",
      "listen_addresses = '127.0.0.1'\n", "unix_socket_directories = '", socket_dir_, "'\n",
      "max_connections = 200\n");
  if (options_.durable) {
    // Template onboarding copies a database of ~7.5 MB of catalogs per tenant through the
    // WAL: compress its page images, and let a burst of clones run without checkpoints forced
    // by WAL volume (docs/benchmarks.md, onboarding).
    absl::StrAppend(&conf, "wal_compression = lz4\nmax_wal_size = 4GB\n");
  } else {
    absl::StrAppend(&conf, "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
  }
  if (auto st = WriteFileAtomically(staging + "/tether.conf", conf, 0600); !st.ok()) return st;
  if (auto st = ChownToOsUser(staging + "/tether.conf"); !st.ok()) return st;
  auto main_conf = ReadFile(staging + "/postgresql.conf");
  if (!main_conf.ok()) return main_conf.status();
  if (auto st = WriteFileAtomically(staging + "/postgresql.conf",
                                    *main_conf + "\ninclude 'tether.conf'\n", 0600);
      !st.ok()) {
    return st;
  }
  if (auto st = ChownToOsUser(staging + "/postgresql.conf"); !st.ok()) return st;
  fs::rename(staging, data_dir_, ec);
  if (ec) {
    return absl::UnavailableError(absl::StrCat("cannot move ", staging, " to ", data_dir_, ": ",
                                               ec.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> LocalPostgres::IsRunning() {
  auto result = RunTool("pg_ctl", {"status", "-D", data_dir_});
  if (!result.ok()) return result.status();
  // pg_ctl status: 0 running, 3 not running, 4 no accessible data directory.
  if (result->exit_code == 0) return true;
  if (result->exit_code == 3 || result->exit_code == 4) return false;
  return absl::InternalError(absl::StrCat("pg_ctl status failed: ", result->output));
}

absl::Status LocalPostgres::EnsureRunning() {
  auto running = IsRunning();
  if (!running.ok()) return running.status();
  if (*running) return absl::OkStatus();
  auto result = RunTool("pg_ctl", {"start", "-w", "-t", "60", "-D", data_dir_, "-l", log_file_});
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    auto log = ReadFile(log_file_);
    return absl::UnavailableError(absl::StrCat("pg_ctl start failed (exit ", result->exit_code,
                                               "): ", LastLines(log.ok() ? *log : result->output, 2),
                                               " (log: ", log_file_, ")"));
  }
  return absl::OkStatus();
}

absl::Status LocalPostgres::Stop() {
  auto running = IsRunning();
  if (!running.ok()) return running.status();
  if (!*running) return absl::OkStatus();
  auto result = RunTool("pg_ctl", {"stop", "-w", "-m", "fast", "-D", data_dir_});
  if (!result.ok()) return result.status();
  if (result->exit_code != 0) {
    return absl::InternalError(absl::StrCat("pg_ctl stop failed: ", LastLines(result->output, 2)));
  }
  return absl::OkStatus();
}

std::string LocalPostgres::ConnectionUrl(const std::string& dbname) const {
  std::string url = absl::StrCat("postgresql://", options_.superuser);
  if (!options_.password.empty()) absl::StrAppend(&url, ":", options_.password);
  absl::StrAppend(&url, "@127.0.0.1:", port_, "/", dbname, "?connect_timeout=5");
  return url;
}

}  // namespace tether::common
