// ClientCertificate: the agent's TLS identity in its data dir, for a mothership that serves
// TLS: a P-256 key the agent makes once and never sends (agent.key, mode 0600) and the client
// certificate the mothership issued for it (agent.crt), which names the agent's id, name and
// cluster. The link asks for the first one when it registers and a new one over its stream at
// two thirds of its life; a certificate that expired anyway (the agent was off for longer)
// means registering again. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tether::agent {

class ClientCertificate {
 public:
  // Reads what `data_dir` holds; nothing is made until it is needed.
  explicit ClientCertificate(std::string data_dir);

  // A CSR for the agent's key (made now, if there is none), naming `name`.
  absl::StatusOr<std::string> Request(const std::string& name);
  // Keeps a certificate the mothership issued for the key; kInvalidArgument when it is not a
  // certificate.
  absl::Status Store(const std::string& certificate_pem);

  struct Current {
    std::string certificate_pem, key_pem;
    absl::Time not_after;
    int64_t generation = 0;  // bumped by every Store
  };
  // The stored certificate and its key; nullopt before the first Store.
  std::optional<Current> current() const;
  // When to ask for the next one: two thirds of the way through the current one's life.
  std::optional<absl::Time> renew_at() const;

 private:
  absl::StatusOr<std::string> KeyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string key_file_, cert_file_;
  mutable absl::Mutex mu_;
  std::string key_pem_ ABSL_GUARDED_BY(mu_);
  std::optional<Current> current_ ABSL_GUARDED_BY(mu_);
  absl::Time not_before_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::agent
