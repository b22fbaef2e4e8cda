// The one place where absl::Status becomes grpc::Status and back. Codes map one to one; the
// message is kept, so a client can show it as the one-line reason.
#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace tether::common {

grpc::Status ToGrpcStatus(const absl::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

}  // namespace tether::common
