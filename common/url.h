// Percent-encoding for the parts of URLs we build (LXD API paths, libpq connection URIs).
#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace tether::common {

// `s` with every byte but letters, digits, "-_.~" and those in `also_safe` as %XX.
std::string PercentEncode(absl::string_view s, absl::string_view also_safe = "");

}  // namespace tether::common
