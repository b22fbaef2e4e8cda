// LexSql: token kinds and boundaries as PostgreSQL and psql draw them, and that the tokens
// always give back the input, whatever it is.
#include "common/pg/sql_lexer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ostream>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace tether::common {
namespace {

using ::testing::ElementsAre;
using Kind = SqlTokenKind;

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kWhitespace: return "whitespace";
    case Kind::kLineComment: return "line-comment";
    case Kind::kBlockComment: return "block-comment";
    case Kind::kString: return "string";
    case Kind::kDollarString: return "dollar-string";
    case Kind::kQuotedIdentifier: return "quoted-identifier";
    case Kind::kWord: return "word";
    case Kind::kNumber: return "number";
    case Kind::kParameter: return "parameter";
    case Kind::kOperator: return "operator";
    case Kind::kMetaCommand: return "meta-command";
  }
  return "?";
}

// A token as the assertions spell it, printed readably when they fail.
struct Tok {
  Kind kind;
  std::string text;
  bool operator==(const Tok&) const = default;
  friend std::ostream& operator<<(std::ostream& os, const Tok& t) {
    return os << KindName(t.kind) << "(\"" << absl::CEscape(t.text) << "\")";
  }
};

std::vector<Tok> Lex(absl::string_view sql) {
  std::vector<Tok> out;
  for (const SqlToken& t : LexSql(sql)) out.push_back({t.kind, std::string(t.text)});
  return out;
}

// Drops whitespace tokens, which most assertions do not care about.
std::vector<Tok> LexSolid(absl::string_view sql) {
  std::vector<Tok> out;
  for (Tok& t : Lex(sql)) {
    if (t.kind != Kind::kWhitespace) out.push_back(std::move(t));
  }
  return out;
}

TEST(SqlLexerTest, SplitsAStatementIntoWordsOperatorsAndLiterals) {
  EXPECT_THAT(Lex("SELECT a.b::int, $1 FROM \"T\" -- note\n"),
              ElementsAre(Tok{Kind::kWord, "SELECT"}, Tok{Kind::kWhitespace, " "},
                          Tok{Kind::kWord, "a"}, Tok{Kind::kOperator, "."},
                          Tok{Kind::kWord, "b"}, Tok{Kind::kOperator, "::"},
                          Tok{Kind::kWord, "int"}, Tok{Kind::kOperator, ","},
                          Tok{Kind::kWhitespace, " "}, Tok{Kind::kParameter, "$1"},
                          Tok{Kind::kWhitespace, " "}, Tok{Kind::kWord, "FROM"},
                          Tok{Kind::kWhitespace, " "}, Tok{Kind::kQuotedIdentifier, "\"T\""},
                          Tok{Kind::kWhitespace, " "}, Tok{Kind::kLineComment, "-- note"},
                          Tok{Kind::kWhitespace, "\n"}));
}

TEST(SqlLexerTest, WordsTakeDigitsDollarsAndNonAsciiBytesAfterTheFirstCharacter) {
  EXPECT_THAT(LexSolid("_a1$b$ caf\xc3\xa9 \xc3\xa9t\xc3\xa9 1abc"),
              ElementsAre(Tok{Kind::kWord, "_a1$b$"}, Tok{Kind::kWord, "caf\xc3\xa9"},
                          Tok{Kind::kWord, "\xc3\xa9t\xc3\xa9"}, Tok{Kind::kNumber, "1"},
                          Tok{Kind::kWord, "abc"}));
}

TEST(SqlLexerTest, NumbersAndSingleCharacterOperators) {
  EXPECT_THAT(LexSolid("1 1.5e-3 .5 7. 1..3 a:b >= 2e"),
              ElementsAre(Tok{Kind::kNumber, "1"}, Tok{Kind::kNumber, "1.5e-3"},
                          Tok{Kind::kNumber, ".5"}, Tok{Kind::kNumber, "7."},
                          Tok{Kind::kNumber, "1"}, Tok{Kind::kOperator, "."},
                          Tok{Kind::kNumber, ".3"}, Tok{Kind::kWord, "a"},
                          Tok{Kind::kOperator, ":"}, Tok{Kind::kWord, "b"},
                          Tok{Kind::kOperator, ">"}, Tok{Kind::kOperator, "="},
                          Tok{Kind::kNumber, "2"}, Tok{Kind::kWord, "e"}));
}

TEST(SqlLexerTest, StringLiteralsWithEveryPrefix) {
  EXPECT_THAT(LexSolid(R"('it''s' E'it\'s \\' e'\'' U&'d\0061t' u&'x' B'101' X'1F' N'n''')"),
              ElementsAre(Tok{Kind::kString, "'it''s'"}, Tok{Kind::kString, R"(E'it\'s \\')"},
                          Tok{Kind::kString, R"(e'\'')"}, Tok{Kind::kString, R"(U&'d\0061t')"},
                          Tok{Kind::kString, "u&'x'"}, Tok{Kind::kString, "B'101'"},
                          Tok{Kind::kString, "X'1F'"}, Tok{Kind::kString, "N'n'''"}));
}

TEST(SqlLexerTest, ABackslashEndsNothingInAPlainLiteral) {
  // standard_conforming_strings: '\' is a one-character string, as pg_dump sets it.
  EXPECT_THAT(LexSolid(R"('a\' x)"),
              ElementsAre(Tok{Kind::kString, R"('a\')"}, Tok{Kind::kWord, "x"}));
}

TEST(SqlLexerTest, BitAndHexLiteralsEndAtTheirFirstQuote) {
  EXPECT_THAT(LexSolid("B'1''0'"),
              ElementsAre(Tok{Kind::kString, "B'1'"}, Tok{Kind::kString, "'0'"}));
}

TEST(SqlLexerTest, APrefixLetterInsideAWordIsPartOfTheWord) {
  EXPECT_THAT(LexSolid("typE'x'"),
              ElementsAre(Tok{Kind::kWord, "typE"}, Tok{Kind::kString, "'x'"}));
}

TEST(SqlLexerTest, QuotedIdentifiers) {
  EXPECT_THAT(LexSolid(R"("a""b" U&"d\0061t" "x.y")"),
              ElementsAre(Tok{Kind::kQuotedIdentifier, R"("a""b")"},
                          Tok{Kind::kQuotedIdentifier, R"(U&"d\0061t")"},
                          Tok{Kind::kQuotedIdentifier, R"("x.y")"}));
}

TEST(SqlLexerTest, DollarQuotesEndAtTheirOwnTag) {
  EXPECT_THAT(LexSolid("$$it's$$ $fn$ $$ -- $x$ $fn$ $_1$a$_1$ $\xc3\xa9$b$\xc3\xa9$"),
              ElementsAre(Tok{Kind::kDollarString, "$$it's$$"},
                          Tok{Kind::kDollarString, "$fn$ $$ -- $x$ $fn$"},
                          Tok{Kind::kDollarString, "$_1$a$_1$"},
                          Tok{Kind::kDollarString, "$\xc3\xa9$b$\xc3\xa9$"}));
}

TEST(SqlLexerTest, DollarDigitIsAParameterNotATag) {
  EXPECT_THAT(LexSolid("$1$ $12 $ $a"),
              ElementsAre(Tok{Kind::kParameter, "$1"}, Tok{Kind::kOperator, "$"},
                          Tok{Kind::kParameter, "$12"}, Tok{Kind::kOperator, "$"},
                          Tok{Kind::kOperator, "$"}, Tok{Kind::kWord, "a"}));
}

TEST(SqlLexerTest, BlockCommentsNest) {
  EXPECT_THAT(LexSolid("/* a /* b */ c */x /*/ d */y /**/z"),
              ElementsAre(Tok{Kind::kBlockComment, "/* a /* b */ c */"}, Tok{Kind::kWord, "x"},
                          Tok{Kind::kBlockComment, "/*/ d */"}, Tok{Kind::kWord, "y"},
                          Tok{Kind::kBlockComment, "/**/"}, Tok{Kind::kWord, "z"}));
}

TEST(SqlLexerTest, CommentsStartInsideOperatorRuns) {
  EXPECT_THAT(LexSolid("1+--x\n2*/*y*/3"),
              ElementsAre(Tok{Kind::kNumber, "1"}, Tok{Kind::kOperator, "+"},
                          Tok{Kind::kLineComment, "--x"}, Tok{Kind::kNumber, "2"},
                          Tok{Kind::kOperator, "*"}, Tok{Kind::kBlockComment, "/*y*/"},
                          Tok{Kind::kNumber, "3"}));
}

TEST(SqlLexerTest, MetaCommandsRunFromALineStartingBackslashToTheEndOfTheLine) {
  EXPECT_THAT(Lex("\\restrict K3y\nSELECT 1;\n  \\connect db\r\n\\unrestrict K3y"),
              ElementsAre(Tok{Kind::kMetaCommand, "\\restrict K3y"}, Tok{Kind::kWhitespace, "\n"},
                          Tok{Kind::kWord, "SELECT"}, Tok{Kind::kWhitespace, " "},
                          Tok{Kind::kNumber, "1"}, Tok{Kind::kOperator, ";"},
                          Tok{Kind::kWhitespace, "\n  "},
                          Tok{Kind::kMetaCommand, "\\connect db\r"},
                          Tok{Kind::kWhitespace, "\n"},
                          Tok{Kind::kMetaCommand, "\\unrestrict K3y"}));
}

TEST(SqlLexerTest, ABackslashAfterCodeOrInsideATokenIsNotAMetaCommand) {
  EXPECT_THAT(LexSolid("SELECT 1 \\g\n/* c */ \\x\n'a\n\\b' $$\n\\c$$ E'\n\\d' -- \\e"),
              ElementsAre(Tok{Kind::kWord, "SELECT"}, Tok{Kind::kNumber, "1"},
                          Tok{Kind::kOperator, "\\"}, Tok{Kind::kWord, "g"},
                          Tok{Kind::kBlockComment, "/* c */"}, Tok{Kind::kOperator, "\\"},
                          Tok{Kind::kWord, "x"}, Tok{Kind::kString, "'a\n\\b'"},
                          Tok{Kind::kDollarString, "$$\n\\c$$"}, Tok{Kind::kString, "E'\n\\d'"},
                          Tok{Kind::kLineComment, "-- \\e"}));
}

TEST(SqlLexerTest, AMetaCommandMayFollowAMultiLineToken) {
  EXPECT_THAT(LexSolid("/* a\n*/\n\\x\n'b\n'\n\\y"),
              ElementsAre(Tok{Kind::kBlockComment, "/* a\n*/"}, Tok{Kind::kMetaCommand, "\\x"},
                          Tok{Kind::kString, "'b\n'"}, Tok{Kind::kMetaCommand, "\\y"}));
}

TEST(SqlLexerTest, UnterminatedTokensRunToTheEndOfTheInput) {
  const std::vector<std::pair<std::string, Kind>> cases = {
      {"'abc", Kind::kString},           {"'it''", Kind::kString},
      {"E'a\\'", Kind::kString},         {"E'a\\", Kind::kString},
      {"B'1", Kind::kString},            {"U&'x", Kind::kString},
      {"\"ab", Kind::kQuotedIdentifier}, {"U&\"a\"\"", Kind::kQuotedIdentifier},
      {"$$ab$", Kind::kDollarString},    {"$t$ab$t", Kind::kDollarString},
      {"/* a", Kind::kBlockComment},     {"/* a /* b */", Kind::kBlockComment},
      {"-- a", Kind::kLineComment},      {"\\x y", Kind::kMetaCommand},
  };
  for (const auto& [sql, kind] : cases) {
    EXPECT_THAT(Lex(sql), ElementsAre(Tok{kind, sql})) << absl::CEscape(sql);
  }
}

// Thousands of strings drawn from the characters that open, close or escape something: the
// tokens are never empty and always give back the input. The seed is fixed so a failure
// reproduces; the failing input is printed.
TEST(SqlLexerTest, TokensAlwaysConcatenateToTheInput) {
  static constexpr char kAlphabet[] =
      "''''\"\"\"$$$$---///***\\\\\\\n\n\r\t  eEuU&bBxXnN:;.,()01_9aZ\x80\xc3\xa9\0";
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> length(0, 48);
  // Up to the explicit \0; the array's own terminator is not drawn.
  std::uniform_int_distribution<size_t> pick(0, sizeof(kAlphabet) - 2);
  for (int round = 0; round < 5000; ++round) {
    std::string sql;
    for (size_t n = length(rng); n > 0; --n) sql += kAlphabet[pick(rng)];
    std::string joined;
    bool all_non_empty = true;
    for (const SqlToken& t : LexSql(sql)) {
      all_non_empty = all_non_empty && !t.text.empty();
      absl::StrAppend(&joined, t.text);
    }
    ASSERT_TRUE(all_non_empty) << absl::CEscape(sql);
    ASSERT_EQ(joined, sql) << absl::CEscape(sql);
  }
}

}  // namespace
}  // namespace tether::common
