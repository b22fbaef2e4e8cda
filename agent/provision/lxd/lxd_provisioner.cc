// LxdProvisioner: password file, instance check, pushes (script, bundle), exec, result.
#include "agent/provision/lxd/lxd_provisioner.h"

#include <curl/curl.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/secrets.h"

namespace tether::agent {
namespace {

// Where the agent's files go inside the instance. Not /tmp: nothing cleans this behind us.
constexpr char kRemoteDir[] = "/var/lib/tether-provision";
constexpr char kRemoteScript[] = "/var/lib/tether-provision/install-postgres.sh";
constexpr char kRemoteBundle[] = "/var/lib/tether-provision/bundle";
constexpr int kStderrTailLines = 3;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    if (!line.empty()) lines.emplace_back(line);
  }
  return lines;
}

// Percent-encodes a value for the userinfo part of a URL (libcurl's escaping: all but
// unreserved characters).
std::string EncodeUserinfo(const std::string& s) {
  char* escaped = curl_easy_escape(nullptr, s.data(), static_cast<int>(s.size()));
  if (escaped == nullptr) return "";
  std::string out(escaped);
  curl_free(escaped);
  return out;
}

}  // namespace

LxdProvisioner::LxdProvisioner(LxdProvisionerOptions options,
                               std::unique_ptr<LxdTransport> transport, common::Clock* clock)
    : options_(std::move(options)),
      transport_(std::move(transport)),
      client_(transport_.get(), clock) {
  auto password = common::ReadFile(options_.data_dir + "/postgres.password");
  if (password.ok()) password_ = std::string(absl::StripAsciiWhitespace(*password));
}

absl::Status LxdProvisioner::EnsurePassword() {
  if (!password_.empty()) return absl::OkStatus();
  if (auto st = common::MakeDirs(options_.data_dir, 0755); !st.ok()) return st;
  auto password = common::ReadOrCreateSecretFile(options_.data_dir + "/postgres.password");
  if (!password.ok()) return password.status();
  password_ = *password;
  return absl::OkStatus();
}

absl::Status LxdProvisioner::PushBundle(const std::string& target_dir, const ProgressFn& progress) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> packages;
  for (fs::directory_iterator it(options_.bundle_dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string ext = it->path().extension().string();
    if ((ext == ".deb" || ext == ".apk") && it->is_regular_file()) packages.push_back(it->path());
  }
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read the package bundle ", options_.bundle_dir, ": ", ec.message()));
  }
  if (packages.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("the package bundle ", options_.bundle_dir, " holds no .deb or .apk files"));
  }
  std::sort(packages.begin(), packages.end());
  uintmax_t bytes = 0;
  for (const auto& p : packages) bytes += fs::file_size(p, ec);
  progress(absl::StrCat("pushing ", packages.size(), " packages (", bytes >> 20, " MiB) from ",
                        options_.bundle_dir, " into LXD instance ", options_.instance));
  if (auto st = client_.MakeDirectory(options_.instance, target_dir, {0, 0, 0700}); !st.ok()) {
    return st;
  }
  for (const auto& p : packages) {
    auto contents = common::ReadFile(p.string());
    if (!contents.ok()) return contents.status();
    if (auto st = client_.PushFile(options_.instance,
                                   absl::StrCat(target_dir, "/", p.filename().string()), *contents,
                                   {0, 0, 0644});
        !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status LxdProvisioner::Provision(const ProgressFn& progress) {
  if (auto st = EnsurePassword(); !st.ok()) return st;
  const std::string& instance = options_.instance;
  auto not_found = [&] {
    return absl::NotFoundError(absl::StrCat("LXD instance ", instance, " not found"));
  };

  auto info = client_.GetInstance(instance);
  if (absl::IsNotFound(info.status())) return not_found();
  if (!info.ok()) return info.status();
  if (info->status != "Running") {
    return absl::FailedPreconditionError(
        absl::StrCat("LXD instance ", instance, " is not running (", info->status, ")"));
  }

  progress(absl::StrCat("pushing install-postgres.sh into LXD instance ", instance));
  absl::Status st = client_.MakeDirectory(instance, kRemoteDir, {0, 0, 0700});
  if (st.ok()) st = client_.PushFile(instance, kRemoteScript, LxdInstallScript(), {0, 0, 0700});
  if (st.ok() && !options_.bundle_dir.empty()) st = PushBundle(kRemoteBundle, progress);
  if (absl::IsNotFound(st) && absl::StrContains(st.message(), "Instance not found")) {
    return not_found();
  }
  if (!st.ok()) return st;

  LxdExecRequest request;
  request.command = {"/bin/sh", kRemoteScript};
  request.cwd = "/";
  request.environment = {{"TETHER_POSTGRES_PASSWORD", password_},
                         {"TETHER_POSTGRES_VERSION", absl::StrCat(options_.postgres_major)}};
  if (!options_.bundle_dir.empty()) request.environment["TETHER_BUNDLE_DIR"] = kRemoteBundle;

  progress(absl::StrCat("running install-postgres.sh in LXD instance ", instance));
  auto result = client_.Exec(instance, request, options_.install_timeout);
  if (absl::IsNotFound(result.status())) return not_found();
  if (!result.ok()) return result.status();

  // LXD records the output; it arrives once the script has ended.
  for (const std::string& line : Lines(result->stdout_text)) progress(line);
  const std::vector<std::string> errors = Lines(result->stderr_text);
  for (const std::string& line : errors) progress(line);
  if (result->exit_code != 0) {
    std::vector<std::string> tail(errors.end() - std::min<size_t>(errors.size(), kStderrTailLines),
                                  errors.end());
    return absl::InternalError(absl::StrCat("install-postgres.sh failed in LXD instance ", instance,
                                            " (exit status ", result->exit_code, ")",
                                            tail.empty() ? "" : ": ", absl::StrJoin(tail, " | ")));
  }
  return absl::OkStatus();
}

std::string LxdProvisioner::AdminUrl(const std::string& dbname) const {
  if (password_.empty()) return "";
  return absl::StrCat("postgresql://tether:", EncodeUserinfo(password_), "@",
                      options_.postgres_address, "/", dbname, "?connect_timeout=5");
}

}  // namespace tether::agent
