// Divides SQL into tokens the way PostgreSQL's scanner does (and psql, for backslash lines),
// without judging whether the SQL is valid: every byte lands in exactly one token, so the
// token texts concatenated give back the input. SplitSqlStatements and the rewrites of pg_dump
// output below work token by token on top of it, never by searching the text. The lexer knows
// no COPY ... FROM stdin data, which is not SQL (a \N or \. starting a line reads as a meta
// command): dump with --inserts or --schema-only. Pure functions; thread-safe.
#pragma once

#include <string>
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

// `sql` without its psql meta-command lines (\restrict KEY, \unrestrict KEY, \connect db: what
// pg_dump writes that only psql understands), each removed whole with its indentation and its
// newline; every other byte is kept. A backslash inside a literal, a dollar-quoted body or a
// comment is left alone.
std::string StripPsqlMetaCommands(absl::string_view sql);

// Moves pg_dump output from schema `from` (a plain lower-case identifier) to schema `to` (any
// name; written as QuoteIdentifier(to)). Replaced are: words that PostgreSQL folds to `from`,
// "quoted" identifiers spelling `from` exactly, and, inside a plain '...' literal that names an
// object (cast to ::regclass, ::regproc, ::regprocedure, ::regtype, ::regoper, ::regoperator,
// ::regconfig or ::regdictionary, or the first argument of setval), a name part equal to `from`
// that qualifies another part; for ::regnamespace, a literal that is `from` alone. Every other
// literal (data, comments on objects), dollar-quoted body, comment and meta-command line is
// kept byte for byte, except for a space put between a new quoted identifier and a quote it
// would otherwise fuse with. A word cannot tell a schema from another object of the same name:
// a role or column called `from` is renamed too. U&"..." identifiers and E'...' literals are not
// decoded and never match.
std::string RenameSchemaInSql(absl::string_view sql, absl::string_view from,
                              absl::string_view to);

}  // namespace tether::common
