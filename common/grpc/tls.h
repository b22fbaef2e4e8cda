// gRPC credentials from PEM files, shared by the three binaries: server credentials (TLS,
// asking clients for a certificate that the services check themselves) and channel credentials
// (TLS when a CA is given, presenting a client certificate when one is given). Plaintext when
// nothing is configured.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_context.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tether::common {

// kInvalidArgument naming the file that cannot be read. With TLS the server asks every client
// for a certificate but lets the handshake through without one or with one it cannot verify
// there: an agent registering has none yet, and what a certificate must chain to depends on
// who presents it (agents: the mothership's own CA; operators: --tls-client-ca), so each
// service checks the peer's certificate itself (PeerCertificateOf).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert_file, const std::string& key_file);

// A file of PEM text (a certificate, a key, a bundle of CAs); kInvalidArgument naming `what`
// when it cannot be read.
absl::StatusOr<std::string> ReadPem(const std::string& path, const char* what);

// The client certificate a TLS peer presented (PEM; empty when none, or without TLS) and the
// chain it sent with it. The handshake proved the peer holds its key; nothing else is checked.
struct PeerCertificate {
  std::string leaf;
  std::string chain;
};
PeerCertificate PeerCertificateOf(const grpc::ServerContextBase& context);

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const std::string& ca_file, const std::string& client_cert_file,
    const std::string& client_key_file);

}  // namespace tether::common
