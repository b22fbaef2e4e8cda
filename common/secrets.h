// Secrets: random tokens and credentials, and the hashes the databases keep instead of them.
// Tokens have 256 bits of entropy, so a plain SHA-256 is the right hash (no salt or stretching
// is needed for a secret nobody chose). Thread-safe.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tether::common {

// `bytes` random bytes from OpenSSL, hex-encoded.
std::string RandomHex(int bytes);

// A fresh token "<prefix><64 hex chars>".
std::string NewSecret(absl::string_view prefix);

// Hex SHA-256 of `secret`.
std::string HashSecret(absl::string_view secret);

// The secret kept in `path` (surrounding whitespace removed); when the file does not exist, a
// new random one is written there first with mode 0600. kFailedPrecondition for an empty file.
absl::StatusOr<std::string> ReadOrCreateSecretFile(const std::string& path);

// Compares without leaking where the first difference is.
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace tether::common
