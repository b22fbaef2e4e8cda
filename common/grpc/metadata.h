// Reading what a client put in its call metadata: a header's value, and the token of an
// `authorization: Bearer <token>` header (agents' credentials and operators' tokens both travel
// that way), and the retry hint a refused agent stream carries back.
#pragma once

#include <grpcpp/server_context.h>

#include <string>

namespace tether::common {

// Trailing metadata of a refused agent stream: milliseconds to wait before connecting again
// (a replica admitting new streams at a bounded rate spreads a reconnecting fleet this way).
inline constexpr char kRetryAfterMetadata[] = "x-tether-retry-after-ms";

// The value of metadata `key` ("" when absent).
std::string MetadataValue(const grpc::ServerContextBase* context, const std::string& key);
// The token of an "authorization: Bearer <token>" header ("" when absent or not Bearer).
std::string BearerToken(const grpc::ServerContextBase* context);

}  // namespace tether::common
