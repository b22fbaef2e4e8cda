// Statement boundaries are the semicolons LexSql reports as operators: a semicolon inside a
// literal, a dollar-quoted body, a quoted identifier or a comment is part of that token.
#include "common/pg/sql_split.h"

#include "absl/strings/ascii.h"
#include "common/pg/sql_lexer.h"

namespace tether::common {

std::vector<std::string> SplitSqlStatements(absl::string_view sql) {
  std::vector<std::string> out;
  const char* start = sql.data();
  bool has_code = false;  // anything but whitespace and comments since `start`
  auto flush = [&](const char* end) {
    if (has_code) out.emplace_back(absl::StripAsciiWhitespace(absl::string_view(start, end - start)));
    has_code = false;
  };
  for (const SqlToken& token : LexSql(sql)) {
    if (token.kind == SqlTokenKind::kOperator && token.text == ";") {
      flush(token.text.data());
      start = token.text.data() + token.text.size();
    } else if (token.kind != SqlTokenKind::kWhitespace &&
               token.kind != SqlTokenKind::kLineComment &&
               token.kind != SqlTokenKind::kBlockComment) {
      has_code = true;
    }
  }
  flush(sql.data() + sql.size());
  return out;
}

}  // namespace tether::common
