// Splits a SQL script into statements at top-level semicolons, so a non-transactional
// migration (CREATE INDEX CONCURRENTLY, which refuses to run in a multi-statement string) can
// be sent one statement at a time. The tokens come from LexSql (sql_lexer.h), so a semicolon in a
// literal, a dollar-quoted body, a quoted identifier or a comment is not a boundary.
#pragma once

#include <string>
#include "absl/strings/string_view.h"
#include <vector>

namespace tether::common {

// Statements without their trailing semicolon; empty and comment-only pieces are dropped.
std::vector<std::string> SplitSqlStatements(absl::string_view sql);

}  // namespace tether::common
