// PEM files → gRPC credentials.
#include "common/grpc/tls.h"

#include <grpc/grpc_security_constants.h>

#include "absl/strings/str_cat.h"
#include "common/files.h"

namespace tether::common {

absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what) {
  auto pem = ReadFile(path);
  if (!pem.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", what, ": ", pem.status().message()));
  }
  return pem;
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty()) return grpc::InsecureServerCredentials();
  auto cert = ReadPem(cert_file, "the TLS certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadPem(key_file, "the TLS key");
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions opts;
  opts.pem_key_cert_pairs.push_back({*key, *cert});
  opts.client_certificate_request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY;
  return grpc::SslServerCredentials(opts);
}

PeerCertificate PeerCertificateOf(const grpc::ServerContextBase& context) {
  PeerCertificate peer;
  auto auth = context.auth_context();
  if (auth == nullptr) return peer;
  auto first = [&](const char* property) {
    auto values = auth->FindPropertyValues(property);
    return values.empty() ? std::string() : std::string(values[0].data(), values[0].size());
  };
  peer.leaf = first(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  peer.chain = first(GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME);
  return peer;
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
