// Test PKI with OpenSSL 3: P-256 keys, X.509 v3 certificates with the extensions gRPC checks.
#include "tests/testing/test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

#include "absl/strings/str_cat.h"

namespace tether::testing {
namespace {

struct KeyFree { void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); } };
struct CertFree { void operator()(X509* x) const { X509_free(x); } };
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;
using Cert = std::unique_ptr<X509, CertFree>;

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// Signs a certificate for `key` named `cn` with `issuer` (self-signed when null).
Cert MakeCert(EVP_PKEY* key, const char* cn, X509* issuer, EVP_PKEY* issuer_key, bool ca,
              const char* san, long serial) {
  Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7 * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn),
                             -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  AddExtension(cert.get(), signer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
  AddExtension(cert.get(), signer, NID_key_usage,
               ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,keyEncipherment");
  if (san != nullptr) AddExtension(cert.get(), signer, NID_subject_alt_name, san);
  X509_sign(cert.get(), issuer_key != nullptr ? issuer_key : key, EVP_sha256());
  return cert;
}

bool WriteCert(const std::string& path, X509* cert) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = PEM_write_X509(f, cert) == 1;
  return std::fclose(f) == 0 && ok;
}

bool WriteKey(const std::string& path, EVP_PKEY* key) {
  FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) return false;
  const bool ok = PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  return std::fclose(f) == 0 && ok;
}

}  // namespace

absl::StatusOr<TestPki> WriteTestPki(const std::string& dir) {
  Key ca_key(EVP_EC_gen("P-256"));
  Key server_key(EVP_EC_gen("P-256"));
  Key client_key(EVP_EC_gen("P-256"));
  Key other_key(EVP_EC_gen("P-256"));
  if (!ca_key || !server_key || !client_key || !other_key) {
    return absl::InternalError("cannot generate test keys");
  }
  Cert ca = MakeCert(ca_key.get(), "tether test CA", nullptr, nullptr, true, nullptr, 1);
  Cert server = MakeCert(server_key.get(), "127.0.0.1", ca.get(), ca_key.get(), false,
                         "IP:127.0.0.1,DNS:localhost", 2);
  Cert client = MakeCert(client_key.get(), "tether test client", ca.get(), ca_key.get(), false,
                         nullptr, 3);
  Cert other = MakeCert(other_key.get(), "unrelated CA", nullptr, nullptr, true, nullptr, 4);
  TestPki pki{dir + "/ca.crt",     dir + "/server.crt", dir + "/server.key",
              dir + "/client.crt", dir + "/client.key", dir + "/other-ca.crt"};
  if (!WriteCert(pki.ca_cert, ca.get()) || !WriteCert(pki.server_cert, server.get()) ||
      !WriteKey(pki.server_key, server_key.get()) || !WriteCert(pki.client_cert, client.get()) ||
      !WriteKey(pki.client_key, client_key.get()) || !WriteCert(pki.other_ca_cert, other.get())) {
    return absl::InternalError(absl::StrCat("cannot write the test PKI into ", dir));
  }
  return pki;
}

}  // namespace tether::testing
