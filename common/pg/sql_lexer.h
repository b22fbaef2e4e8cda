// Divides SQL into tokens the way PostgreSQL's scanner does (and psql, for backslash lines),
// without judging whether the SQL is valid: every byte lands in exactly one token, so the
// token texts concatenated give back the input. SplitSqlStatements and the pg_dump rewrites
// work token by token on top of it. Pure functions; thread-safe.
#pragma once

#include <vector>

#include "absl/strings/string_view.h"

namespace tether::common {

enum class SqlTokenKind {
  kWhitespace,
  kLineComment,       // -- up to, not including, the end of the line
  kBlockComment,      // /* ... */, nested as PostgreSQL nests them
  kString,            // '...' and E'...', U&'...', B'...', X'...', N'...'
  kDollarString,      // $$...$$ and $tag$...$tag$
  kQuotedIdentifier,  // "..." and U&"..."
  kWord,              // an identifier or a keyword, as written (not case-folded)
  kNumber,
  kParameter,         // $1
  kOperator,          // one character, except :: which is one token
  kMetaCommand,       // a psql backslash line, up to and not including its newline
};

struct SqlToken {
  SqlTokenKind kind;
  absl::string_view text;  // points into the input given to LexSql
};

// The tokens of `sql` in order. A literal, quoted identifier or comment left open runs to the
// end of the input as one token of its kind. A backslash is a meta command only where psql
// would read one at the start of a line: nothing but whitespace before it on its line.
std::vector<SqlToken> LexSql(absl::string_view sql);

}  // namespace tether::common
