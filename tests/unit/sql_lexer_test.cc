// LexSql: token kinds and boundaries as PostgreSQL and psql draw them, and that the tokens
// always give back the input, whatever it is. StripPsqlMetaCommands and RenameSchemaInSql on
// pg_dump 15 output and on the corners of the lexer.
#include "common/pg/sql_lexer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <iterator>
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

// Fragments that open, close or escape something, and the names the rewrites look for.
const absl::string_view kFragments[] = {
    "'", "'", "\"", "\"", "$", "$$", "$a$", "-", "/", "*", "\\", "\n", "\n", "\r", "\t", " ",
    "e", "E", "U&", "b", "x", "n", ":", "::", ";", ".", ",", "(", ")", "0", "1", "_", "a", "A",
    "::regclass", "::regnamespace", "setval(", "pg_catalog.", "\x80", "\xc3\xa9",
    absl::string_view("\0", 1)};

// Thousands of pseudo-random inputs. The seed is fixed so that a failure reproduces; the
// failing input is printed.
std::vector<std::string> RandomInputs() {
  std::mt19937 rng(20240611);
  std::uniform_int_distribution<size_t> length(0, 40);
  std::uniform_int_distribution<size_t> pick(0, std::size(kFragments) - 1);
  std::vector<std::string> inputs(5000);
  for (std::string& sql : inputs) {
    for (size_t n = length(rng); n > 0; --n) absl::StrAppend(&sql, kFragments[pick(rng)]);
  }
  return inputs;
}

std::vector<Tok> WithoutMetaCommands(std::vector<Tok> tokens) {
  std::erase_if(tokens, [](const Tok& t) { return t.kind == Kind::kMetaCommand; });
  return tokens;
}

TEST(SqlLexerTest, TokensAreNeverEmptyAndAlwaysConcatenateToTheInput) {
  for (const std::string& sql : RandomInputs()) {
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

TEST(SqlLexerTest, StrippingRemovesMetaCommandsAndKeepsEveryOtherToken) {
  for (const std::string& sql : RandomInputs()) {
    const std::string stripped = StripPsqlMetaCommands(sql);
    ASSERT_EQ(LexSolid(stripped), WithoutMetaCommands(LexSolid(sql))) << absl::CEscape(sql);
  }
}

// Words and quoted identifiers count as one kind: a renamed word comes back quoted.
std::vector<std::string> NameBlindKinds(absl::string_view sql) {
  std::vector<std::string> kinds;
  for (const Tok& t : LexSolid(sql)) {
    kinds.push_back(KindName(t.kind == Kind::kQuotedIdentifier ? Kind::kWord : t.kind));
  }
  return kinds;
}

TEST(SqlLexerTest, RenamingReplacesTokensInPlaceWithoutFusingNeighbours) {
  int renamed = 0;
  for (const std::string& sql : RandomInputs()) {
    const std::string out = RenameSchemaInSql(sql, "a", "We \"ird\"");
    renamed += out != sql;
    ASSERT_EQ(NameBlindKinds(out), NameBlindKinds(sql)) << absl::CEscape(sql);
  }
  EXPECT_GT(renamed, 500);  // the inputs do exercise the renaming
}

TEST(StripPsqlMetaCommandsTest, RemovesWholeLinesAndNothingElse) {
  EXPECT_EQ(StripPsqlMetaCommands("\\restrict K3y\n\nSELECT 1;\n  \\connect db\r\nSELECT 2;\n"
                                  "\\unrestrict K3y"),
            "\nSELECT 1;\nSELECT 2;\n");
  EXPECT_EQ(StripPsqlMetaCommands("SELECT 1; \n\t\\x\n"), "SELECT 1; \n");
}

TEST(StripPsqlMetaCommandsTest, LeavesBackslashesInsideTokensAndAfterCode) {
  const std::string sql =
      "SELECT 'a\n\\b', E'\n\\c', $$\n\\d$$, \"\n\\e\" /*\n\\f */ -- \\g\n;\n"
      "SELECT 1 \\gset\n";
  EXPECT_EQ(StripPsqlMetaCommands(sql), sql);
}

// pg_dump 15.18 --inserts output for a schema with a table, a sequence, a view, a function
// and a comment (the SET preamble shortened).
constexpr absl::string_view kDump = R"sql(--
-- PostgreSQL database dump
--

\restrict 9fKq2mZ0bTgH7xWcVd1sLpR4nYe6uJaQ

-- Dumped from database version 15.18
-- Dumped by pg_dump version 15.18

SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: tether_snapshot; Type: SCHEMA; Schema: -; Owner: tether
--

CREATE SCHEMA tether_snapshot;


ALTER SCHEMA tether_snapshot OWNER TO tether;

--
-- Name: touch(); Type: FUNCTION; Schema: tether_snapshot; Owner: tether
--

CREATE FUNCTION tether_snapshot.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.note := 'touched by tether_snapshot.touch';
  PERFORM 1 FROM tether_snapshot.a;
  RETURN NEW;
END
$$;


ALTER FUNCTION tether_snapshot.touch() OWNER TO tether;

--
-- Name: a; Type: TABLE; Schema: tether_snapshot; Owner: tether
--

CREATE TABLE tether_snapshot.a (
    id integer NOT NULL,
    note text
);


ALTER TABLE tether_snapshot.a OWNER TO tether;

--
-- Name: TABLE a; Type: COMMENT; Schema: tether_snapshot; Owner: tether
--

COMMENT ON TABLE tether_snapshot.a IS 'see tether_snapshot.a';


--
-- Name: a_id_seq; Type: SEQUENCE; Schema: tether_snapshot; Owner: tether
--

CREATE SEQUENCE tether_snapshot.a_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE tether_snapshot.a_id_seq OWNER TO tether;

--
-- Name: a_id_seq; Type: SEQUENCE OWNED BY; Schema: tether_snapshot; Owner: tether
--

ALTER SEQUENCE tether_snapshot.a_id_seq OWNED BY tether_snapshot.a.id;


--
-- Name: recent; Type: VIEW; Schema: tether_snapshot; Owner: tether
--

CREATE VIEW tether_snapshot.recent AS
 SELECT a.id,
    a.note
   FROM tether_snapshot.a
  WHERE (a.id > 10);


ALTER TABLE tether_snapshot.recent OWNER TO tether;

--
-- Name: a id; Type: DEFAULT; Schema: tether_snapshot; Owner: tether
--

ALTER TABLE ONLY tether_snapshot.a ALTER COLUMN id SET DEFAULT nextval('tether_snapshot.a_id_seq'::regclass);


--
-- Data for Name: a; Type: TABLE DATA; Schema: tether_snapshot; Owner: tether
--

INSERT INTO tether_snapshot.a VALUES (1, 'copied from tether_snapshot.a');


--
-- Name: a_id_seq; Type: SEQUENCE SET; Schema: tether_snapshot; Owner: tether
--

SELECT pg_catalog.setval('tether_snapshot.a_id_seq', 1, true);


--
-- Name: a a_pkey; Type: CONSTRAINT; Schema: tether_snapshot; Owner: tether
--

ALTER TABLE ONLY tether_snapshot.a
    ADD CONSTRAINT a_pkey PRIMARY KEY (id);


--
-- PostgreSQL database dump complete
--

\unrestrict 9fKq2mZ0bTgH7xWcVd1sLpR4nYe6uJaQ

)sql";

// kDump with its meta-command lines stripped and moved to schema acme: the names in
// statements move, the header comments, the function body, the comment text and the data stay.
constexpr absl::string_view kDumpForAcme = R"sql(--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18
-- Dumped by pg_dump version 15.18

SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: tether_snapshot; Type: SCHEMA; Schema: -; Owner: tether
--

CREATE SCHEMA "acme";


ALTER SCHEMA "acme" OWNER TO tether;

--
-- Name: touch(); Type: FUNCTION; Schema: tether_snapshot; Owner: tether
--

CREATE FUNCTION "acme".touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.note := 'touched by tether_snapshot.touch';
  PERFORM 1 FROM tether_snapshot.a;
  RETURN NEW;
END
$$;


ALTER FUNCTION "acme".touch() OWNER TO tether;

--
-- Name: a; Type: TABLE; Schema: tether_snapshot; Owner: tether
--

CREATE TABLE "acme".a (
    id integer NOT NULL,
    note text
);


ALTER TABLE "acme".a OWNER TO tether;

--
-- Name: TABLE a; Type: COMMENT; Schema: tether_snapshot; Owner: tether
--

COMMENT ON TABLE "acme".a IS 'see tether_snapshot.a';


--
-- Name: a_id_seq; Type: SEQUENCE; Schema: tether_snapshot; Owner: tether
--

CREATE SEQUENCE "acme".a_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


ALTER TABLE "acme".a_id_seq OWNER TO tether;

--
-- Name: a_id_seq; Type: SEQUENCE OWNED BY; Schema: tether_snapshot; Owner: tether
--

ALTER SEQUENCE "acme".a_id_seq OWNED BY "acme".a.id;


--
-- Name: recent; Type: VIEW; Schema: tether_snapshot; Owner: tether
--

CREATE VIEW "acme".recent AS
 SELECT a.id,
    a.note
   FROM "acme".a
  WHERE (a.id > 10);


ALTER TABLE "acme".recent OWNER TO tether;

--
-- Name: a id; Type: DEFAULT; Schema: tether_snapshot; Owner: tether
--

ALTER TABLE ONLY "acme".a ALTER COLUMN id SET DEFAULT nextval('"acme".a_id_seq'::regclass);


--
-- Data for Name: a; Type: TABLE DATA; Schema: tether_snapshot; Owner: tether
--

INSERT INTO "acme".a VALUES (1, 'copied from tether_snapshot.a');


--
-- Name: a_id_seq; Type: SEQUENCE SET; Schema: tether_snapshot; Owner: tether
--

SELECT pg_catalog.setval('"acme".a_id_seq', 1, true);


--
-- Name: a a_pkey; Type: CONSTRAINT; Schema: tether_snapshot; Owner: tether
--

ALTER TABLE ONLY "acme".a
    ADD CONSTRAINT a_pkey PRIMARY KEY (id);


--
-- PostgreSQL database dump complete
--


)sql";

TEST(RenameSchemaInSqlTest, MovesAPgDumpToAnotherSchema) {
  EXPECT_EQ(RenameSchemaInSql(StripPsqlMetaCommands(kDump), "tether_snapshot", "acme"),
            kDumpForAcme);
}

TEST(RenameSchemaInSqlTest, MetaCommandLinesAreLeftForStripPsqlMetaCommands) {
  EXPECT_EQ(RenameSchemaInSql("\\connect tether_snapshot\nSELECT 1;", "tether_snapshot", "n"),
            "\\connect tether_snapshot\nSELECT 1;");
}

TEST(RenameSchemaInSqlTest, WordsFoldedAndQuotedIdentifiersExact) {
  EXPECT_EQ(RenameSchemaInSql("SELECT * FROM TETHER_SNAPSHOT.a, Tether_Snapshot.b, "
                              "\"tether_snapshot\".c, \"TETHER_SNAPSHOT\".d, \"tether_snapshot.e\"",
                              "tether_snapshot", "n"),
            "SELECT * FROM \"n\".a, \"n\".b, \"n\".c, \"TETHER_SNAPSHOT\".d, \"tether_snapshot.e\"");
}

TEST(RenameSchemaInSqlTest, AWordThatOnlyContainsTheNameIsKept) {
  const std::string sql =
      "CREATE TABLE tether_snapshot_x.a (tether_snapshot_id int, x_tether_snapshot int, "
      "tether_snapshot$ int);";
  EXPECT_EQ(RenameSchemaInSql(sql, "tether_snapshot", "n"), sql);
}

TEST(RenameSchemaInSqlTest, ANameThatNeedsQuotingIsQuoted) {
  EXPECT_EQ(RenameSchemaInSql("CREATE TABLE tether_snapshot.a (id int DEFAULT "
                              "nextval('tether_snapshot.a_id_seq'::regclass));",
                              "tether_snapshot", "We \"ird\""),
            "CREATE TABLE \"We \"\"ird\"\"\".a (id int DEFAULT "
            "nextval('\"We \"\"ird\"\"\".a_id_seq'::regclass));");
}

TEST(RenameSchemaInSqlTest, AQuoteInTheNameIsDoubledInsideALiteral) {
  EXPECT_EQ(RenameSchemaInSql("ALTER TABLE tether_snapshot.a ALTER COLUMN id SET DEFAULT "
                              "nextval('tether_snapshot.a_id_seq'::regclass);",
                              "tether_snapshot", "o'brien"),
            "ALTER TABLE \"o'brien\".a ALTER COLUMN id SET DEFAULT "
            "nextval('\"o''brien\".a_id_seq'::regclass);");
}

TEST(RenameSchemaInSqlTest, SetvalFirstArgumentOnly) {
  EXPECT_EQ(RenameSchemaInSql("SELECT pg_catalog.setval('tether_snapshot.a_id_seq', 1, false);\n"
                              "SELECT setval ( 'TETHER_SNAPSHOT.b_seq', 7);\n"
                              "SELECT \"pg_catalog\" . \"setval\"('tether_snapshot.c_seq', 2);\n"
                              "SELECT setval('tether_snapshot.d_seq'::regclass, 3);\n"
                              "SELECT mine.setval('tether_snapshot.e_seq', 4);\n"
                              "SELECT setval('tether_snapshot', 5, 'tether_snapshot.f');",
                              "tether_snapshot", "n"),
            "SELECT pg_catalog.setval('\"n\".a_id_seq', 1, false);\n"
            "SELECT setval ( '\"n\".b_seq', 7);\n"
            "SELECT \"pg_catalog\" . \"setval\"('\"n\".c_seq', 2);\n"
            "SELECT setval('\"n\".d_seq'::regclass, 3);\n"
            "SELECT mine.setval('tether_snapshot.e_seq', 4);\n"
            "SELECT setval('tether_snapshot', 5, 'tether_snapshot.f');");
}

TEST(RenameSchemaInSqlTest, EveryRegTypeCastQualifiersOnly) {
  EXPECT_EQ(RenameSchemaInSql(
                "SELECT 'tether_snapshot.f'::regproc, "
                "'tether_snapshot.f(integer, tether_snapshot.t)'::regprocedure, "
                "'tether_snapshot.t[]'::regtype, 'tether_snapshot.+'::regoper, "
                "'tether_snapshot.+(integer,integer)'::regoperator, "
                "'tether_snapshot.english'::regconfig, 'tether_snapshot.d' :: regdictionary, "
                "'\"tether_snapshot\".\"A\"'::REGCLASS, 'db.tether_snapshot.a'::regclass",
                "tether_snapshot", "n"),
            "SELECT '\"n\".f'::regproc, "
            "'\"n\".f(integer, \"n\".t)'::regprocedure, "
            "'\"n\".t[]'::regtype, '\"n\".+'::regoper, "
            "'\"n\".+(integer,integer)'::regoperator, "
            "'\"n\".english'::regconfig, '\"n\".d' :: regdictionary, "
            "'\"n\".\"A\"'::REGCLASS, 'db.\"n\".a'::regclass");
}

TEST(RenameSchemaInSqlTest, TheLastPartOfANameIsNotASchema) {
  const std::string sql =
      "SELECT 'tether_snapshot'::regclass, 'public.tether_snapshot'::regclass, "
      "'\"tether_snapshot.a\"'::regclass, 'tether_snapshot.a'::text, "
      "'tether_snapshot.a'::regclass_like";
  EXPECT_EQ(RenameSchemaInSql(sql, "tether_snapshot", "n"), sql);
}

TEST(RenameSchemaInSqlTest, RegnamespaceIsTheSchemaAlone) {
  EXPECT_EQ(RenameSchemaInSql("SELECT 'tether_snapshot'::regnamespace, "
                              "' Tether_Snapshot '::regnamespace, 'x.tether_snapshot'::regnamespace",
                              "tether_snapshot", "n"),
            "SELECT '\"n\"'::regnamespace, ' \"n\" '::regnamespace, "
            "'x.tether_snapshot'::regnamespace");
}

TEST(RenameSchemaInSqlTest, OtherLiteralsBodiesAndCommentsAreKept) {
  const std::string sql =
      "COMMENT ON SCHEMA x IS 'tether_snapshot';\n"
      "INSERT INTO t VALUES ('tether_snapshot.a', E'tether_snapshot.a', $q$tether_snapshot.a$q$);\n"
      "SELECT E'tether_snapshot.a'::regclass, U&\"tether_snapshot\".a; "
      "/* tether_snapshot.a */ -- tether_snapshot.a\n"
      "SELECT 'tether_snapshot.a";  // left open: kept as it is
  EXPECT_EQ(RenameSchemaInSql(sql, "tether_snapshot", "n"), sql);
}

TEST(RenameSchemaInSqlTest, ANewQuotedIdentifierDoesNotFuseWithAQuoteBesideIt) {
  EXPECT_EQ(RenameSchemaInSql("SELECT \"x\"tether_snapshot, tether_snapshot\"y\", U&tether_snapshot",
                              "tether_snapshot", "n"),
            "SELECT \"x\" \"n\", \"n\" \"y\", U& \"n\"");
}

}  // namespace
}  // namespace tether::common
