// CutText.
#include "common/text.h"

#include "absl/strings/str_cat.h"

namespace tether::common {

std::string CutText(absl::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return std::string(s);
  size_t cut = max_bytes;
  // Back off from the middle of a multi-byte character (continuation bytes are 10xxxxxx).
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(s.substr(0, cut), "... (", s.size() - cut, " more bytes)");
}

}  // namespace tether::common
