// gRPC credentials from PEM files, shared by the three binaries: server credentials (TLS, and
// mutual TLS when a client CA is given) and channel credentials (TLS when a CA is given,
// presenting a client certificate when one is given). Plaintext when nothing is configured.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tether::common {

// kInvalidArgument naming the file that cannot be read.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const std::string& cert_file, const std::string& key_file, const std::string& client_ca_file);

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(
    const std::string& ca_file, const std::string& client_cert_file,
    const std::string& client_key_file);

}  // namespace tether::common
