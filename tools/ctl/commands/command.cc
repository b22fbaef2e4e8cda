// Helpers shared by the commands.
#include "tools/ctl/commands/command.h"

#include "absl/time/time.h"

namespace tether::ctl {

std::string EnumName(const std::string& full, const std::string& prefix) {
  std::string s = full.rfind(prefix, 0) == 0 ? full.substr(prefix.size()) : full;
  for (auto& c : s) c = static_cast<char>(std::tolower(c));
  return s;
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

}  // namespace tether::ctl
