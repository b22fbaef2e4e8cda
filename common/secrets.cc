// Secrets through OpenSSL's RAND_bytes and SHA-256.
#include "common/secrets.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <stdexcept>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace tether::common {

std::string RandomHex(int bytes) {
  std::vector<unsigned char> buf(bytes);
  if (RAND_bytes(buf.data(), bytes) != 1) {
    // Without entropy no credential can be made safely; there is nothing sensible to go on with.
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

std::string NewSecret(absl::string_view prefix) { return absl::StrCat(prefix, RandomHex(32)); }

std::string HashSecret(absl::string_view secret) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

absl::StatusOr<std::string> ReadOrCreateSecretFile(const std::string& path) {
  auto secret = ReadFile(path);
  if (absl::IsNotFound(secret.status())) {
    secret = RandomHex(24);
    if (auto st = WriteFileAtomically(path, *secret, 0600); !st.ok()) return st;
  }
  if (!secret.ok()) return secret.status();
  std::string value(absl::StripAsciiWhitespace(*secret));
  if (value.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is empty; delete it to get a new one"));
  }
  return value;
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace tether::common
