// libpqxx exceptions become absl::Status at this edge, with one-line messages.
#pragma once

#include <exception>

#include "absl/status/status.h"

namespace tether::common {

// Maps a libpqxx or standard exception to a canonical code: a lost connection is kUnavailable,
// a unique violation kAlreadyExists, a serialization failure kAborted, a lock or statement
// timeout kDeadlineExceeded, anything else kInternal.
absl::Status StatusFromException(const std::exception& e);

}  // namespace tether::common
