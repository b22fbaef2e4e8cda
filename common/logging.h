// Logging set-up shared by the binaries: spdlog to stderr, one line per event with key=value
// fields in the message, as text or as one JSON object per line. Call once from main().
#pragma once

#include <string>
#include <string_view>

#include <spdlog/fmt/fmt.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tether::common {

enum class LogFormat { kText, kJson };

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view s);

void InitLogging(absl::string_view program, LogFormat format, absl::string_view level = "info");

// A text log line's message as written: newlines, tabs, ESC and the other control characters
// escaped (\n, \t, \x1b), so no client-supplied string can forge a line or drive a terminal.
std::string EscapeLogText(absl::string_view text);

}  // namespace tether::common

// Lets log lines format absl::string_view (what absl::Status::message() returns): Debian's
// Abseil has its own string_view type, not std::string_view.
template <>
struct fmt::formatter<absl::string_view> : fmt::formatter<fmt::string_view> {
  template <typename FormatContext>
  auto format(absl::string_view s, FormatContext& ctx) const {
    return fmt::formatter<fmt::string_view>::format(fmt::string_view(s.data(), s.size()), ctx);
  }
};
