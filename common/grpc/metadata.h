// Reading what a client put in its call metadata: a header's value, and the token of an
// `authorization: Bearer <token>` header (agents' credentials and operators' tokens both travel
// that way).
#pragma once

#include <grpcpp/server_context.h>

#include <string>

namespace tether::common {

// The value of metadata `key` ("" when absent).
std::string MetadataValue(const grpc::ServerContextBase* context, const std::string& key);
// The token of an "authorization: Bearer <token>" header ("" when absent or not Bearer).
std::string BearerToken(const grpc::ServerContextBase* context);

}  // namespace tether::common
