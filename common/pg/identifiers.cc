// Identifier validation and quoting.
#include "common/pg/identifiers.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace tether::common {

absl::Status ValidateIdentifier(absl::string_view kind, absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 63 && absl::ascii_islower(name[0]);
  for (char c : name) {
    ok = ok && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_');
  }
  if (ok) return absl::OkStatus();
  const bool long_name = name.size() > 80;
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid ", kind, " name \"", absl::CEscape(name.substr(0, 80)), long_name ? "\"..." : "\"",
      ": use 1 to 63 characters of a-z, 0-9 and _, starting with a letter"));
}

std::string QuoteIdentifier(absl::string_view name) {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

}  // namespace tether::common
