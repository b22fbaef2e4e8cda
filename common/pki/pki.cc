// The fleet's PKI on OpenSSL 3: RAII holders for its C objects, PEM in and out.
#include "common/pki/pki.h"

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tether::common {
namespace {

constexpr size_t kMaxPemBytes = 16 * 1024;
constexpr char kUriScheme[] = "tether://";

template <typename T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Key = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using Cert = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Req = std::unique_ptr<X509_REQ, Deleter<X509_REQ, X509_REQ_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Store = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using StoreCtx = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using Names = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;
struct StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};

// OpenSSL's most recent error, as words; clears the queue.
std::string OpensslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(code, buf, sizeof(buf));
  return buf;
}

Bio ReadBio(const std::string& pem) {
  return Bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

std::string BioText(BIO* bio) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  return std::string(data, n > 0 ? static_cast<size_t>(n) : 0);
}

absl::StatusOr<Key> ParseKey(const std::string& pem) {
  if (pem.size() > kMaxPemBytes) return absl::InvalidArgumentError("the key is too large");
  Bio bio = ReadBio(pem);
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(absl::StrCat("not a PEM private key: ", OpensslError()));
  }
  return key;
}

absl::StatusOr<Cert> ParseCert(const std::string& pem) {
  if (pem.size() > kMaxPemBytes) return absl::InvalidArgumentError("the certificate is too large");
  Bio bio = ReadBio(pem);
  Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    return absl::InvalidArgumentError(absl::StrCat("not a PEM certificate: ", OpensslError()));
  }
  return cert;
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

std::string CertPem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

bool AddName(X509_NAME* name, const char* field, const std::string& value) {
  return X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                    0) == 1;
}

// A random 128-bit serial, positive.
bool SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return false;
  bytes[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(bytes, sizeof(bytes), nullptr);
  if (bn == nullptr) return false;
  const bool ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
  BN_free(bn);
  return ok;
}

bool SetValidity(X509* cert, absl::Time from, absl::Time until) {
  return ASN1_TIME_set(X509_getm_notBefore(cert), absl::ToTimeT(from)) != nullptr &&
         ASN1_TIME_set(X509_getm_notAfter(cert), absl::ToTimeT(until)) != nullptr;
}

absl::Time TimeOf(const ASN1_TIME* t) {
  struct tm parts {};
  if (ASN1_TIME_to_tm(t, &parts) != 1) return absl::InfinitePast();
  return absl::FromTM(parts, absl::UTCTimeZone());
}

// The subject's entry `nid`, or empty.
std::string NameEntry(X509_NAME* name, int nid) {
  const int i = X509_NAME_get_index_by_NID(name, nid, -1);
  if (i < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
  unsigned char* utf8 = nullptr;
  const int n = ASN1_STRING_to_UTF8(&utf8, data);
  if (n < 0) return "";
  std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(n));
  OPENSSL_free(utf8);
  return out;
}

// A CSR, checked to be signed by the key it names (its requester holds that key).
absl::StatusOr<Req> ParseCsr(const std::string& csr_pem) {
  if (csr_pem.size() > kMaxPemBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("the CSR is ", csr_pem.size(), " bytes; at most ", kMaxPemBytes));
  }
  Bio bio = ReadBio(csr_pem);
  Req req(PEM_read_bio_X509_REQ(bio.get(), nullptr, nullptr, nullptr));
  if (!req) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CSR is not a PEM certificate request");
  }
  EVP_PKEY* requested = X509_REQ_get0_pubkey(req.get());
  if (requested == nullptr || X509_REQ_verify(req.get(), requested) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "the CSR's signature does not verify: it was not made with the key it names");
  }
  return req;
}

}  // namespace

std::string AgentUri(const std::string& cluster, const std::string& agent_id) {
  return absl::StrCat(kUriScheme, cluster, "/agents/", agent_id);
}

absl::StatusOr<std::string> GeneratePrivateKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return absl::InternalError(absl::StrCat("cannot make a key: ", OpensslError()));
  return KeyPem(key.get());
}

absl::StatusOr<std::string> MakeCsr(const std::string& key_pem, const std::string& common_name) {
  auto key = ParseKey(key_pem);
  if (!key.ok()) return key.status();
  Req req(X509_REQ_new());
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      !AddName(X509_REQ_get_subject_name(req.get()), "CN", common_name) ||
      X509_REQ_set_pubkey(req.get(), key->get()) != 1 ||
      X509_REQ_sign(req.get(), key->get(), EVP_sha256()) <= 0) {
    return absl::InternalError(absl::StrCat("cannot make a CSR: ", OpensslError()));
  }
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(bio.get(), req.get());
  return BioText(bio.get());
}

absl::StatusOr<CertificateAuthority> CertificateAuthority::Create(const std::string& common_name,
                                                                  absl::Time now,
                                                                  absl::Duration validity) {
  Key key(EVP_EC_gen("P-256"));
  Cert cert(X509_new());
  if (!key || !cert || X509_set_version(cert.get(), 2) != 1 || !SetRandomSerial(cert.get()) ||
      !SetValidity(cert.get(), now - absl::Minutes(1), now + validity) ||
      X509_set_pubkey(cert.get(), key.get()) != 1 ||
      !AddName(X509_get_subject_name(cert.get()), "CN", common_name) ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
      !AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
      !AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
      !AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash") ||
      X509_sign(cert.get(), key.get(), EVP_sha256()) <= 0) {
    return absl::InternalError(absl::StrCat("cannot make a CA: ", OpensslError()));
  }
  return CertificateAuthority(CertPem(cert.get()), KeyPem(key.get()));
}

absl::StatusOr<CertificateAuthority> CertificateAuthority::Load(const std::string& cert_pem,
                                                                const std::string& key_pem) {
  auto cert = ParseCert(cert_pem);
  if (!cert.ok()) return cert.status();
  auto key = ParseKey(key_pem);
  if (!key.ok()) return key.status();
  if (X509_check_private_key(cert->get(), key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CA key does not belong to the CA certificate");
  }
  if (X509_check_ca(cert->get()) == 0) {
    return absl::InvalidArgumentError("the CA certificate is not a CA's (no CA:TRUE)");
  }
  return CertificateAuthority(CertPem(cert->get()), KeyPem(key->get()));
}

absl::StatusOr<std::string> CertificateAuthority::SignAgent(const std::string& csr_pem,
                                                            const AgentCertIdentity& who,
                                                            absl::Time now,
                                                            absl::Duration validity) const {
  auto req = ParseCsr(csr_pem);
  if (!req.ok()) return req.status();
  EVP_PKEY* requested = X509_REQ_get0_pubkey(req->get());
  auto ca_cert = ParseCert(cert_pem_);
  auto ca_key = ParseKey(key_pem_);
  if (!ca_cert.ok() || !ca_key.ok()) return absl::InternalError("the CA cannot be read");
  Cert cert(X509_new());
  X509_NAME* subject = cert ? X509_get_subject_name(cert.get()) : nullptr;
  // The subject and SAN are the mothership's word on who this is; the CSR's are ignored.
  if (!cert || X509_set_version(cert.get(), 2) != 1 || !SetRandomSerial(cert.get()) ||
      !SetValidity(cert.get(), now - absl::Minutes(1), now + validity) ||
      X509_set_pubkey(cert.get(), requested) != 1 || !AddName(subject, "CN", who.name) ||
      !AddName(subject, "UID", who.agent_id) ||
      X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert->get())) != 1 ||
      !AddExtension(cert.get(), ca_cert->get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !AddExtension(cert.get(), ca_cert->get(), NID_key_usage, "critical,digitalSignature") ||
      !AddExtension(cert.get(), ca_cert->get(), NID_ext_key_usage, "clientAuth") ||
      !AddExtension(cert.get(), ca_cert->get(), NID_authority_key_identifier, "keyid:always") ||
      !AddExtension(cert.get(), ca_cert->get(), NID_subject_alt_name,
                    absl::StrCat("URI:", AgentUri(who.cluster, who.agent_id))) ||
      X509_sign(cert.get(), ca_key->get(), EVP_sha256()) <= 0) {
    return absl::InternalError(absl::StrCat("cannot sign the agent's certificate: ", OpensslError()));
  }
  return CertPem(cert.get());
}

absl::Status CheckCsr(const std::string& csr_pem) { return ParseCsr(csr_pem).status(); }

absl::Status CertificateAuthority::Verify(const std::string& cert_pem, absl::Time now) const {
  return VerifyCertificate(cert_pem, "", cert_pem_, now);
}

absl::Status VerifyCertificate(const std::string& cert_pem, const std::string& chain_pem,
                               const std::string& trusted_pem, absl::Time now) {
  auto cert = ParseCert(cert_pem);
  if (!cert.ok()) return absl::UnauthenticatedError(cert.status().message());
  if (chain_pem.size() > 4 * kMaxPemBytes || trusted_pem.size() > 64 * kMaxPemBytes) {
    return absl::UnauthenticatedError("the certificate chain is too long");
  }
  Store store(X509_STORE_new());
  StoreCtx ctx(X509_STORE_CTX_new());
  std::unique_ptr<STACK_OF(X509), StackDeleter> untrusted(sk_X509_new_null());
  if (!store || !ctx || !untrusted) return absl::InternalError("cannot verify: out of memory");
  int trusted = 0;
  for (Bio bio = ReadBio(trusted_pem);;) {
    Cert ca(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!ca) break;
    if (X509_STORE_add_cert(store.get(), ca.get()) != 1) {
      return absl::InternalError(absl::StrCat("cannot verify: ", OpensslError()));
    }
    ++trusted;
  }
  ERR_clear_error();  // the end of the PEM text reads as an error
  if (trusted == 0) return absl::InternalError("no trusted CA certificate to verify against");
  for (Bio bio = ReadBio(chain_pem);;) {
    Cert link(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!link || sk_X509_push(untrusted.get(), link.get()) == 0) break;
    link.release();  // the stack owns it now
  }
  ERR_clear_error();
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert->get(), untrusted.get()) != 1) {
    return absl::InternalError(absl::StrCat("cannot verify: ", OpensslError()));
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(now));
  if (X509_verify_cert(ctx.get()) != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return absl::UnauthenticatedError(absl::StrCat("the certificate does not verify: ",
                                                   X509_verify_cert_error_string(err)));
  }
  return absl::OkStatus();
}

absl::StatusOr<AgentCertIdentity> ReadAgentIdentity(const std::string& cert_pem) {
  auto cert = ParseCert(cert_pem);
  if (!cert.ok()) return absl::UnauthenticatedError(cert.status().message());
  Names names(static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(cert->get(), NID_subject_alt_name, nullptr, nullptr)));
  AgentCertIdentity who;
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names.get(), i);
    if (name->type != GEN_URI) continue;
    const ASN1_IA5STRING* uri = name->d.uniformResourceIdentifier;
    absl::string_view text(reinterpret_cast<const char*>(ASN1_STRING_get0_data(uri)),
                           static_cast<size_t>(ASN1_STRING_length(uri)));
    if (!absl::ConsumePrefix(&text, kUriScheme)) continue;
    std::vector<std::string> parts = absl::StrSplit(text, '/');
    if (parts.size() == 3 && parts[1] == "agents" && !parts[0].empty() && !parts[2].empty()) {
      who.cluster = parts[0];
      who.agent_id = parts[2];
    }
  }
  X509_NAME* subject = X509_get_subject_name(cert->get());
  who.name = NameEntry(subject, NID_commonName);
  if (who.agent_id.empty() || who.agent_id != NameEntry(subject, NID_userId)) {
    return absl::UnauthenticatedError("the certificate names no tether agent");
  }
  return who;
}

absl::StatusOr<CertInfo> ReadCertInfo(const std::string& cert_pem) {
  auto cert = ParseCert(cert_pem);
  if (!cert.ok()) return cert.status();
  CertInfo info;
  info.not_before = TimeOf(X509_get0_notBefore(cert->get()));
  info.not_after = TimeOf(X509_get0_notAfter(cert->get()));
  BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert->get()), nullptr);
  if (bn != nullptr) {
    char* hex = BN_bn2hex(bn);
    info.serial = hex != nullptr ? hex : "";
    OPENSSL_free(hex);
    BN_free(bn);
  }
  return info;
}

}  // namespace tether::common
