// PostgreSQL's lexical rules (src/backend/parser/scan.l), reduced to where tokens start and
// end; every branch consumes at least one byte, so the loop ends on any input. The pg_dump
// rewrites below decide from a token and its neighbours alone, so no text search can reach into
// a function body, a comment or a data value.
#include "common/pg/sql_lexer.h"

#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "common/pg/identifiers.h"

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

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

// The content of `text` if it is exactly one quote-delimited token with doubled quotes inside
// ('it''s', "a""b"); nullopt for an unterminated or prefixed one.
std::optional<std::string> Unquote(absl::string_view text, char quote) {
  if (text.size() < 2 || text.front() != quote) return std::nullopt;
  std::string content;
  size_t i = 1;
  while (i < text.size()) {
    if (text[i] != quote) {
      content += text[i++];
    } else if (i + 1 < text.size() && text[i + 1] == quote) {
      content += quote;
      i += 2;
    } else {
      return i + 1 == text.size() ? std::optional(content) : std::nullopt;
    }
  }
  return std::nullopt;
}

// Whether `token` names `name` the way PostgreSQL resolves it: a word after folding to lower
// case, a quoted identifier exactly. U&"..." is not decoded and never matches.
bool TokenNames(const SqlToken& token, absl::string_view name) {
  if (token.kind == SqlTokenKind::kWord) return absl::AsciiStrToLower(token.text) == name;
  if (token.kind == SqlTokenKind::kQuotedIdentifier) return Unquote(token.text, '"') == name;
  return false;
}

bool IsOperator(const SqlToken& token, absl::string_view op) {
  return token.kind == SqlTokenKind::kOperator && token.text == op;
}

// The nearest token after (before) tokens[i] that is not whitespace, or kNone.
size_t NextSolid(const std::vector<SqlToken>& tokens, size_t i) {
  for (++i; i < tokens.size(); ++i) {
    if (tokens[i].kind != SqlTokenKind::kWhitespace) return i;
  }
  return kNone;
}

size_t PrevSolid(const std::vector<SqlToken>& tokens, size_t i) {
  while (i-- > 0) {
    if (tokens[i].kind != SqlTokenKind::kWhitespace) return i;
  }
  return kNone;
}

// What a string literal's content is, judged from the tokens around it.
enum class LiteralRole {
  kData,           // anything we do not rewrite
  kQualifiedName,  // a possibly qualified object name, as the reg* types read it
  kSchemaName,     // a schema name alone (::regnamespace)
};

LiteralRole RoleOfLiteral(const std::vector<SqlToken>& tokens, size_t i) {
  if (const size_t cast = NextSolid(tokens, i); cast != kNone && IsOperator(tokens[cast], "::")) {
    if (const size_t type = NextSolid(tokens, cast); type != kNone) {
      if (TokenNames(tokens[type], "regnamespace")) return LiteralRole::kSchemaName;
      for (absl::string_view reg : {"regclass", "regproc", "regprocedure", "regtype", "regoper",
                                    "regoperator", "regconfig", "regdictionary"}) {
        if (TokenNames(tokens[type], reg)) return LiteralRole::kQualifiedName;
      }
    }
  }
  // setval('seq', ...) or pg_catalog.setval('seq', ...): the sequence is named by a string.
  const size_t paren = PrevSolid(tokens, i);
  if (paren == kNone || !IsOperator(tokens[paren], "(")) return LiteralRole::kData;
  const size_t function = PrevSolid(tokens, paren);
  if (function == kNone || !TokenNames(tokens[function], "setval")) return LiteralRole::kData;
  const size_t dot = PrevSolid(tokens, function);
  if (dot == kNone || !IsOperator(tokens[dot], ".")) return LiteralRole::kQualifiedName;
  const size_t schema = PrevSolid(tokens, dot);
  return schema != kNone && TokenNames(tokens[schema], "pg_catalog") ? LiteralRole::kQualifiedName
                                                                     : LiteralRole::kData;
}

// A piece of a name literal's content: a name part (plain, or "quoted") or anything between.
struct NamePiece {
  absl::string_view text;
  std::optional<std::string> name;  // as PostgreSQL resolves it; nullopt between parts
};

// Splits the content of a name literal; nullopt if a quoted part is left open.
std::optional<std::vector<NamePiece>> SplitName(absl::string_view content) {
  std::vector<NamePiece> pieces;
  size_t i = 0;
  while (i < content.size()) {
    size_t end = i + 1;
    std::optional<std::string> name;
    if (content[i] == '"') {
      end = EndOfQuoted(content, i + 1, '"', QuoteRule::kDoubling);
      name = Unquote(content.substr(i, end - i), '"');
      if (!name) return std::nullopt;
    } else if (IsIdentChar(content[i])) {
      end = SkipWhile(content, i, IsIdentChar);
      name = absl::AsciiStrToLower(content.substr(i, end - i));
    } else if (IsSpace(content[i])) {
      end = SkipWhile(content, i, IsSpace);
    }
    pieces.push_back({content.substr(i, end - i), std::move(name)});
    i = end;
  }
  return pieces;
}

// The literal with `from` replaced where it is a schema, or nullopt if nothing is replaced.
std::optional<std::string> RenameInNameLiteral(absl::string_view literal, LiteralRole role,
                                               absl::string_view from,
                                               absl::string_view quoted_to) {
  const std::optional<std::string> content = Unquote(literal, '\'');
  if (!content) return std::nullopt;
  const std::optional<std::vector<NamePiece>> pieces = SplitName(*content);
  if (!pieces) return std::nullopt;
  auto is_space = [&](size_t k) { return !(*pieces)[k].name && IsSpace((*pieces)[k].text[0]); };
  std::vector<bool> replace(pieces->size(), false);
  bool any = false;
  for (size_t k = 0; k < pieces->size(); ++k) {
    if ((*pieces)[k].name != from) continue;
    if (role == LiteralRole::kSchemaName) {
      // Only a literal that is the name alone, give or take surrounding whitespace.
      bool alone = true;
      for (size_t other = 0; other < pieces->size(); ++other) {
        alone = alone && (other == k || is_space(other));
      }
      replace[k] = alone;
    } else {
      size_t next = k + 1;
      while (next < pieces->size() && is_space(next)) ++next;
      replace[k] = next < pieces->size() && (*pieces)[next].text == ".";
    }
    any = any || replace[k];
  }
  if (!any) return std::nullopt;
  std::string renamed;
  for (size_t k = 0; k < pieces->size(); ++k) {
    absl::StrAppend(&renamed, replace[k] ? quoted_to : (*pieces)[k].text);
  }
  return absl::StrCat("'", absl::StrReplaceAll(renamed, {{"'", "''"}}), "'");
}

}  // namespace

std::string StripPsqlMetaCommands(absl::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  bool after_meta = false;
  for (const SqlToken& token : LexSql(sql)) {
    absl::string_view text = token.text;
    if (token.kind == SqlTokenKind::kMetaCommand) {
      // Only whitespace precedes the backslash on its line: that indentation goes too.
      while (!out.empty() && out.back() != '\n' && IsSpace(out.back())) out.pop_back();
      after_meta = true;
      continue;
    }
    if (after_meta) absl::ConsumePrefix(&text, "\n");
    after_meta = false;
    absl::StrAppend(&out, text);
  }
  return out;
}

std::string RenameSchemaInSql(absl::string_view sql, absl::string_view from,
                              absl::string_view to) {
  const std::vector<SqlToken> tokens = LexSql(sql);
  const std::string quoted_to = QuoteIdentifier(to);
  std::string out;
  out.reserve(sql.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    const SqlToken& token = tokens[i];
    if (TokenNames(token, from)) {
      // "a""b" is one identifier and U&"a" a Unicode one: a word turned quoted identifier
      // must not touch a quote or a U& before it.
      if (absl::EndsWith(out, "\"") || absl::EndsWithIgnoreCase(out, "u&")) out += ' ';
      absl::StrAppend(&out, quoted_to);
      continue;
    }
    // Likewise after a word that just became a quoted identifier (the original text never has
    // one quote token ending where the next begins).
    if (absl::StartsWith(token.text, "\"") && absl::EndsWith(out, "\"")) out += ' ';
    if (token.kind == SqlTokenKind::kString) {
      if (const LiteralRole role = RoleOfLiteral(tokens, i); role != LiteralRole::kData) {
        if (std::optional<std::string> renamed =
                RenameInNameLiteral(token.text, role, from, quoted_to)) {
          absl::StrAppend(&out, *renamed);
          continue;
        }
      }
    }
    absl::StrAppend(&out, token.text);
  }
  return out;
}

}  // namespace tether::common
