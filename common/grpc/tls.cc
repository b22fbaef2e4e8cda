// PEM files → gRPC credentials.
#include "common/grpc/tls.h"

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace tether::common {
namespace {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  auto pem = ReadFile(path);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, ": ", pem.status().message()));
  }
  return pem;
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file) {
  if (cert_file.empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadPem(cert_file, "the TLS certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(key_file, "the TLS key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  if (!client_ca_file.empty()) {
    auto ca = ReadPem(client_ca_file, "the client CA");
    if (!ca.ok()) return ca.status();
    opts.pem_root_certs = *ca;
    opts.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(opts);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const std::string& ca_file, const std::string& client_cert_file,
    const std::string& client_key_file) {
  if (ca_file.empty()) {
    if (!client_cert_file.empty()) {
      return absl::InvalidArgumentError("a client certificate needs the server's CA (--tls-ca)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (client_cert_file.empty() != client_key_file.empty()) {
    return absl::InvalidArgumentError("--tls-client-cert and --tls-client-key go together");
  }
  grpc::SslCredentialsOptions opts;
  auto ca = ReadPem(ca_file, "the CA certificate");
  if (!ca.ok()) return ca.status();
  opts.pem_root_certs = *ca;
  if (!client_cert_file.empty()) {
    auto cert = ReadPem(client_cert_file, "the client certificate");
    if (!cert.ok()) return cert.status();
    auto key = ReadPem(client_key_file, "the client key");
    if (!key.ok()) return key.status();
    opts.pem_cert_chain = *cert;
    opts.pem_private_key = *key;
  }
  return grpc::SslCredentials(opts);
}

}  // namespace tether::common
