// A small lexer: enough of PostgreSQL's lexical rules to find statement boundaries.
#include "common/pg/sql_split.h"

#include "absl/strings/ascii.h"

namespace tether::common {
namespace {

bool OnlyCommentsOrSpace(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (absl::ascii_isspace(s[i])) {
      ++i;
    } else if (s.substr(i, 2) == "--") {
      size_t nl = s.find('\n', i);
      i = nl == absl::string_view::npos ? s.size() : nl + 1;
    } else if (s.substr(i, 2) == "/*") {
      size_t end = s.find("*/", i + 2);
      i = end == absl::string_view::npos ? s.size() : end + 2;
    } else {
      return false;
    }
  }
  return true;
}

// If s[i] opens a dollar quote ($$ or $tag$), returns the whole delimiter, else "".
absl::string_view DollarTag(absl::string_view s, size_t i) {
  if (s[i] != '$') return {};
  size_t j = i + 1;
  while (j < s.size() && (absl::ascii_isalnum(s[j]) || s[j] == '_')) ++j;
  if (j < s.size() && s[j] == '$' && (j == i + 1 || !absl::ascii_isdigit(s[i + 1]))) {
    return s.substr(i, j - i + 1);
  }
  return {};
}

}  // namespace

std::vector<std::string> SplitSqlStatements(absl::string_view sql) {
  std::vector<std::string> out;
  size_t start = 0;
  size_t i = 0;
  int block_depth = 0;  // PostgreSQL block comments nest
  auto flush = [&](size_t end) {
    absl::string_view piece = sql.substr(start, end - start);
    if (!OnlyCommentsOrSpace(piece)) {
      out.emplace_back(absl::StripAsciiWhitespace(piece));
    }
    start = end + 1;
  };
  while (i < sql.size()) {
    const char c = sql[i];
    if (block_depth > 0) {
      if (sql.substr(i, 2) == "/*") {
        ++block_depth;
        i += 2;
      } else if (sql.substr(i, 2) == "*/") {
        --block_depth;
        i += 2;
      } else {
        ++i;
      }
    } else if (sql.substr(i, 2) == "--") {
      size_t nl = sql.find('\n', i);
      i = nl == absl::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.substr(i, 2) == "/*") {
      block_depth = 1;
      i += 2;
    } else if (c == '\'' || c == '"') {
      // '' and "" inside a literal are escaped quotes: the loop simply re-enters.
      size_t end = sql.find(c, i + 1);
      i = end == absl::string_view::npos ? sql.size() : end + 1;
    } else if (absl::string_view tag = DollarTag(sql, i); !tag.empty()) {
      size_t end = sql.find(tag, i + tag.size());
      i = end == absl::string_view::npos ? sql.size() : end + tag.size();
    } else if (c == ';') {
      flush(i);
      ++i;
    } else {
      ++i;
    }
  }
  if (start < sql.size()) flush(sql.size());
  return out;
}

}  // namespace tether::common
