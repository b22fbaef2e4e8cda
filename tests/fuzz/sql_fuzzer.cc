// Fuzzes the SQL lexer and what is built on it: SplitSqlStatements (non-transactional
// migrations), StripPsqlMetaCommands and RenameSchemaInSql (pg_dump output for snapshot
// onboarding). The input is SQL text. Checked, as sql_lexer.h and sql_split.h promise: the
// tokens are non-empty and their texts concatenated give back the input; statements are
// non-empty pieces of the input, in order, each trimmed; the stripped text has no meta-command
// line left; renaming a schema keeps every other token, turns a renamed word into a quoted
// identifier, and leaves a text that does not name the schema unchanged.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "common/pg/sql_lexer.h"
#include "common/pg/sql_split.h"
#include "tests/fuzz/fuzz_support.h"

namespace tether::fuzz {
namespace {

using common::SqlToken;
using common::SqlTokenKind;

void CheckTokens(absl::string_view sql, const std::vector<SqlToken>& tokens) {
  const char* at = sql.data();
  for (const SqlToken& token : tokens) {
    Require(!token.text.empty(), "an empty token");
    Require(token.text.data() == at, "tokens are not contiguous");
    at += token.text.size();
  }
  Require(at == sql.data() + sql.size(), "the tokens do not cover the input");
}

void CheckSplit(const std::string& sql) {
  size_t from = 0;
  for (const std::string& statement : common::SplitSqlStatements(sql)) {
    Require(!statement.empty(), "an empty statement");
    Require(absl::StripAsciiWhitespace(statement).size() == statement.size(),
            "a statement is not trimmed");
    const size_t found = sql.find(statement, from);
    Require(found != std::string::npos, "a statement is not a piece of the input, in order");
    from = found + statement.size();
  }
}

void CheckStrip(const std::string& sql) {
  const std::string stripped = common::StripPsqlMetaCommands(sql);
  Require(stripped.size() <= sql.size(), "stripping made the text longer");
  bool had_meta = false;
  for (const SqlToken& token : common::LexSql(sql)) {
    had_meta = had_meta || token.kind == SqlTokenKind::kMetaCommand;
  }
  if (!had_meta) Require(stripped == sql, "a text without meta commands was changed");
  for (const SqlToken& token : common::LexSql(stripped)) {
    Require(token.kind != SqlTokenKind::kMetaCommand, "a meta-command line is left");
  }
}

std::vector<SqlToken> Solid(const std::vector<SqlToken>& tokens) {
  std::vector<SqlToken> out;
  for (const SqlToken& t : tokens) {
    if (t.kind != SqlTokenKind::kWhitespace) out.push_back(t);
  }
  return out;
}

void CheckRename(const std::string& sql) {
  // A schema as pg_dump writes it, moved to a name that needs quoting.
  const std::string renamed = common::RenameSchemaInSql(sql, "tether_snapshot", "Acme \"EU\"");
  if (!absl::StrContains(absl::AsciiStrToLower(sql), "tether_snapshot")) {
    Require(renamed == sql, "a text that does not name the schema was changed");
    return;
  }
  const std::vector<SqlToken> before = Solid(common::LexSql(sql));
  const std::vector<SqlToken> after = Solid(common::LexSql(renamed));
  Require(before.size() == after.size(), "renaming changed the number of tokens");
  for (size_t i = 0; i < before.size(); ++i) {
    if (before[i].kind == after[i].kind) {
      // Only names change: every other token is kept byte for byte.
      if (before[i].kind != SqlTokenKind::kWord && before[i].kind != SqlTokenKind::kString &&
          before[i].kind != SqlTokenKind::kQuotedIdentifier) {
        Require(before[i].text == after[i].text, "renaming changed a token that is not a name");
      }
      continue;
    }
    Require(before[i].kind == SqlTokenKind::kWord &&
                after[i].kind == SqlTokenKind::kQuotedIdentifier,
            "renaming changed a token's kind other than word to quoted identifier");
  }
}

}  // namespace
}  // namespace tether::fuzz

void tether::fuzz::Setup() {}

bool tether::fuzz::FuzzOne(std::string_view input) {
  using namespace tether;
  const std::string sql(input);
  fuzz::CheckTokens(sql, common::LexSql(sql));
  fuzz::CheckSplit(sql);
  fuzz::CheckStrip(sql);
  fuzz::CheckRename(sql);
  return true;
}
