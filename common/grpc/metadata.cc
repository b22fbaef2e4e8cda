// Call metadata.
#include "common/grpc/metadata.h"

#include "absl/strings/match.h"

namespace tether::common {

std::string MetadataValue(const grpc::ServerContextBase* context, const std::string& key) {
  const auto& md = context->client_metadata();
  auto it = md.find(key);
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

std::string BearerToken(const grpc::ServerContextBase* context) {
  std::string value = MetadataValue(context, "authorization");
  constexpr char kBearer[] = "Bearer ";
  if (absl::StartsWith(value, kBearer)) return value.substr(sizeof(kBearer) - 1);
  return "";
}

}  // namespace tether::common
