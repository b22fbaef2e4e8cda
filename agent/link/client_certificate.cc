// The agent's key and client certificate on disk.
#include "agent/link/client_certificate.h"

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/logging.h"
#include "common/pki/pki.h"

namespace tether::agent {

ClientCertificate::ClientCertificate(std::string data_dir)
    : key_file_(data_dir + "/agent.key"), cert_file_(data_dir + "/agent.crt") {
  auto key = common::ReadFile(key_file_);
  auto cert = common::ReadFile(cert_file_);
  if (!key.ok() || !cert.ok()) return;
  auto info = common::ReadCertInfo(*cert);
  if (!info.ok()) {
    spdlog::warn("ignoring an unreadable client certificate file={} reason=\"{}\"", cert_file_,
                 info.status().message());
    return;
  }
  absl::MutexLock lock(&mu_);
  key_pem_ = *key;
  current_ = Current{*cert, *key, info->not_after, 1};
  not_before_ = info->not_before;
}

absl::StatusOr<std::string> ClientCertificate::KeyLocked() {
  if (!key_pem_.empty()) return key_pem_;
  if (auto stored = common::ReadFile(key_file_); stored.ok()) {
    key_pem_ = *stored;
    return key_pem_;
  }
  auto made = common::GeneratePrivateKey();
  if (!made.ok()) return made.status();
  if (auto st = common::WriteFileAtomically(key_file_, *made, 0600); !st.ok()) return st;
  spdlog::info("made the agent's TLS key file={}", key_file_);
  key_pem_ = *made;
  return key_pem_;
}

absl::StatusOr<std::string> ClientCertificate::Request(const std::string& name) {
  absl::MutexLock lock(&mu_);
  auto key = KeyLocked();
  if (!key.ok()) return key.status();
  return common::MakeCsr(*key, name);
}

absl::Status ClientCertificate::Store(const std::string& certificate_pem) {
  auto info = common::ReadCertInfo(certificate_pem);
  if (!info.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the mothership's certificate cannot be read: ", info.status().message()));
  }
  absl::MutexLock lock(&mu_);
  auto key = KeyLocked();
  if (!key.ok()) return key.status();
  if (auto st = common::WriteFileAtomically(cert_file_, certificate_pem, 0644); !st.ok()) {
    return st;
  }
  const int64_t generation = current_.has_value() ? current_->generation + 1 : 1;
  current_ = Current{certificate_pem, *key, info->not_after, generation};
  not_before_ = info->not_before;
  return absl::OkStatus();
}

std::optional<ClientCertificate::Current> ClientCertificate::current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

std::optional<absl::Time> ClientCertificate::renew_at() const {
  absl::MutexLock lock(&mu_);
  if (!current_.has_value()) return std::nullopt;
  return not_before_ + (current_->not_after - not_before_) * 2 / 3;
}

}  // namespace tether::agent
