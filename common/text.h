// Bounding text that crosses a trust boundary: cut to a size without splitting a UTF-8
// character, saying how much was left out.
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace tether::common {

// `s` when it fits in `max_bytes`; otherwise its first bytes up to a character boundary and
// "... (N more bytes)".
std::string CutText(absl::string_view s, size_t max_bytes);

}  // namespace tether::common
