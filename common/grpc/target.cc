// ChannelTarget.
#include "common/grpc/target.h"

#include <arpa/inet.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tether::common {

absl::StatusOr<std::string> ChannelTarget(const std::string& addresses) {
  std::vector<std::string> entries = absl::StrSplit(addresses, ',');
  if (entries.size() == 1) {
    if (addresses.empty()) return absl::InvalidArgumentError("no mothership address given");
    return addresses;
  }
  bool v6 = false;
  std::vector<std::string> out;
  for (size_t i = 0; i < entries.size(); ++i) {
    std::string entry(absl::StripAsciiWhitespace(entries[i]));
    const size_t colon = entry.rfind(':');
    int port = 0;
    if (entry.empty() || colon == std::string::npos ||
        !absl::SimpleAtoi(entry.substr(colon + 1), &port) || port <= 0 || port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mothership address ", i + 1, " of the list (\"", entry.substr(0, 64),
          "\") is not IP:PORT"));
    }
    std::string host = entry.substr(0, colon);
    const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    if (bracketed) host = host.substr(1, host.size() - 2);
    unsigned char buf[16];
    const bool is_v4 = !bracketed && inet_pton(AF_INET, host.c_str(), buf) == 1;
    const bool is_v6 = bracketed && inet_pton(AF_INET6, host.c_str(), buf) == 1;
    if (!is_v4 && !is_v6) {
      return absl::InvalidArgumentError(absl::StrCat(
          "mothership address ", i + 1, " of the list (\"", entry.substr(0, 64),
          "\") is not an IP address: a list takes addresses (IPv6 in brackets); give a DNS name "
          "with several addresses alone"));
    }
    if (i > 0 && is_v6 != v6) {
      return absl::InvalidArgumentError("a list of mothership addresses must not mix IPv4 and IPv6");
    }
    v6 = is_v6;
    out.push_back(entry);
  }
  return absl::StrCat(v6 ? "ipv6:" : "ipv4:", absl::StrJoin(out, ","));
}

std::string ChannelAuthority(const std::string& addresses) {
  const size_t comma = addresses.find(',');
  if (comma == std::string::npos) return "";
  return std::string(absl::StripAsciiWhitespace(addresses.substr(0, comma)));
}

}  // namespace tether::common
