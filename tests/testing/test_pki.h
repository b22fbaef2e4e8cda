// A throwaway PKI for TLS tests: a CA, a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files, made with OpenSSL at test time (nothing is checked in).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tether::testing {

struct TestPki {
  std::string ca_cert;
  std::string server_cert;
  std::string server_key;
  std::string client_cert;
  std::string client_key;
  std::string other_ca_cert;  // a CA that signed nothing of the above
};

absl::StatusOr<TestPki> WriteTestPki(const std::string& dir);

}  // namespace tether::testing
