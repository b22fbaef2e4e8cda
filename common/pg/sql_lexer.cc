// PostgreSQL's lexical rules (src/backend/parser/scan.l), reduced to where tokens start and
// end. Every branch consumes at least one byte, so the loop ends on any input.
#include "common/pg/sql_lexer.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

namespace tether::common {
namespace {

using Kind = SqlTokenKind;

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Bytes of a multi-byte character count as letters, as in scan.l.
bool IsIdentStart(char c) {
  return absl::ascii_isalpha(c) || c == '_' || static_cast<unsigned char>(c) >= 0x80;
}
bool IsDigit(char c) { return absl::ascii_isdigit(c); }
bool IsDollarTagChar(char c) { return IsIdentStart(c) || IsDigit(c); }
bool IsIdentChar(char c) { return IsDollarTagChar(c) || c == '$'; }

bool At(absl::string_view sql, size_t i, absl::string_view s) {
  return absl::StartsWith(sql.substr(i), s);
}

size_t SkipWhile(absl::string_view sql, size_t i, bool (*pred)(char)) {
  while (i < sql.size() && pred(sql[i])) ++i;
  return i;
}

enum class QuoteRule {
  kDoubling,         // '' or "" stands for the quote itself
  kBackslashEscape,  // E'...': also \x for any x
  kNoEscape,         // B'...' and X'...': the first quote ends it
};

// `from` is just past the opening quote; returns the end of the literal.
size_t EndOfQuoted(absl::string_view sql, size_t from, char quote, QuoteRule rule) {
  size_t i = from;
  while (i < sql.size()) {
    if (rule == QuoteRule::kBackslashEscape && sql[i] == '\\') {
      i += 2;
    } else if (sql[i] != quote) {
      ++i;
    } else if (rule != QuoteRule::kNoEscape && i + 1 < sql.size() && sql[i + 1] == quote) {
      i += 2;
    } else {
      return i + 1;
    }
  }
  return sql.size();
}

size_t EndOfBlockComment(absl::string_view sql, size_t i) {
  int depth = 0;
  while (i < sql.size()) {
    if (At(sql, i, "/*")) {
      ++depth;
      i += 2;
    } else if (At(sql, i, "*/")) {
      i += 2;
      if (--depth == 0) return i;
    } else {
      ++i;
    }
  }
  return sql.size();
}

// sql[i] is '$': a parameter ($1), a dollar-quoted string, or a lone operator character.
std::pair<Kind, size_t> LexDollar(absl::string_view sql, size_t i) {
  if (i + 1 < sql.size() && absl::ascii_isdigit(sql[i + 1])) {
    return {Kind::kParameter, SkipWhile(sql, i + 1, IsDigit)};
  }
  // A tag cannot start with a digit; that is what keeps $1 a parameter.
  size_t close = i + 1;
  if (close < sql.size() && IsIdentStart(sql[close])) close = SkipWhile(sql, close, IsDollarTagChar);
  if (close >= sql.size() || sql[close] != '$') return {Kind::kOperator, i + 1};
  const absl::string_view delimiter = sql.substr(i, close + 1 - i);
  const size_t end = sql.find(delimiter, close + 1);
  return {Kind::kDollarString, end == absl::string_view::npos ? sql.size() : end + delimiter.size()};
}

size_t EndOfNumber(absl::string_view sql, size_t i) {
  i = SkipWhile(sql, i, IsDigit);
  // "1..2" is 1 followed by "..": PL/pgSQL writes integer ranges that way.
  if (At(sql, i, ".") && !At(sql, i, "..")) i = SkipWhile(sql, i + 1, IsDigit);
  if (i < sql.size() && (sql[i] == 'e' || sql[i] == 'E')) {
    size_t exponent = i + 1;
    if (exponent < sql.size() && (sql[exponent] == '+' || sql[exponent] == '-')) ++exponent;
    if (exponent < sql.size() && absl::ascii_isdigit(sql[exponent])) {
      i = SkipWhile(sql, exponent, IsDigit);
    }
  }
  return i;
}

// The token that starts at sql[i], as its kind and its end.
std::pair<Kind, size_t> NextToken(absl::string_view sql, size_t i, bool line_start) {
  const char c = sql[i];
  const char next = i + 1 < sql.size() ? sql[i + 1] : '\0';
  if (IsSpace(c)) return {Kind::kWhitespace, SkipWhile(sql, i, IsSpace)};
  if (c == '\\' && line_start) {
    const size_t newline = sql.find('\n', i);
    return {Kind::kMetaCommand, newline == absl::string_view::npos ? sql.size() : newline};
  }
  if (At(sql, i, "--")) {
    const size_t eol = sql.find_first_of("\r\n", i);
    return {Kind::kLineComment, eol == absl::string_view::npos ? sql.size() : eol};
  }
  if (At(sql, i, "/*")) return {Kind::kBlockComment, EndOfBlockComment(sql, i)};
  if (c == '\'') return {Kind::kString, EndOfQuoted(sql, i + 1, '\'', QuoteRule::kDoubling)};
  if (c == '"') return {Kind::kQuotedIdentifier, EndOfQuoted(sql, i + 1, '"', QuoteRule::kDoubling)};
  if (next == '\'') {
    switch (c) {
      case 'e': case 'E':
        return {Kind::kString, EndOfQuoted(sql, i + 2, '\'', QuoteRule::kBackslashEscape)};
      case 'b': case 'B': case 'x': case 'X':
        return {Kind::kString, EndOfQuoted(sql, i + 2, '\'', QuoteRule::kNoEscape)};
      case 'n': case 'N':
        return {Kind::kString, EndOfQuoted(sql, i + 2, '\'', QuoteRule::kDoubling)};
    }
  }
  if ((c == 'u' || c == 'U') && At(sql, i + 1, "&'")) {
    return {Kind::kString, EndOfQuoted(sql, i + 3, '\'', QuoteRule::kDoubling)};
  }
  if ((c == 'u' || c == 'U') && At(sql, i + 1, "&\"")) {
    return {Kind::kQuotedIdentifier, EndOfQuoted(sql, i + 3, '"', QuoteRule::kDoubling)};
  }
  if (c == '$') return LexDollar(sql, i);
  if (IsIdentStart(c)) return {Kind::kWord, SkipWhile(sql, i, IsIdentChar)};
  if (absl::ascii_isdigit(c) || (c == '.' && absl::ascii_isdigit(next))) {
    return {Kind::kNumber, EndOfNumber(sql, i)};
  }
  if (At(sql, i, "::")) return {Kind::kOperator, i + 2};
  return {Kind::kOperator, i + 1};
}

}  // namespace

std::vector<SqlToken> LexSql(absl::string_view sql) {
  std::vector<SqlToken> tokens;
  bool line_start = true;  // nothing but whitespace since the last newline
  size_t i = 0;
  while (i < sql.size()) {
    const auto [kind, end] = NextToken(sql, i, line_start);
    const absl::string_view text = sql.substr(i, end - i);
    if (kind != Kind::kWhitespace) {
      line_start = false;
    } else if (text.find('\n') != absl::string_view::npos) {
      line_start = true;
    }
    tokens.push_back({kind, text});
    i = end;
  }
  return tokens;
}

}  // namespace tether::common
