// Small file helpers: read a whole file, and write one atomically with a given mode (write to
// a temporary beside it, fsync, rename), so a crash never leaves a half-written credential.
#pragma once

#include <string>
#include <sys/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tether::common {

// kNotFound when the file does not exist; kUnavailable for other I/O errors.
absl::StatusOr<std::string> ReadFile(const std::string& path);

absl::Status WriteFileAtomically(const std::string& path, const std::string& contents,
                                 mode_t mode);

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

}  // namespace tether::common
