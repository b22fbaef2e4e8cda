// SplitSqlStatements: boundaries only at top-level semicolons.
#include "common/pg/sql_split.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace tether::common {
namespace {

using ::testing::ElementsAre;

TEST(SqlSplitTest, SplitsPlainStatements) {
  EXPECT_THAT(SplitSqlStatements("CREATE TABLE a (x int);\nCREATE INDEX CONCURRENTLY i ON a (x);\n"),
              ElementsAre("CREATE TABLE a (x int)", "CREATE INDEX CONCURRENTLY i ON a (x)"));
}

TEST(SqlSplitTest, IgnoresSemicolonsInQuotesAndComments) {
  const char* sql =
      "-- a comment; with a semicolon\n"
      "INSERT INTO t VALUES ('a;b', 'it''s;');\n"
      "/* block; /* nested; */ still comment; */ SELECT \"odd;name\" FROM t;";
  EXPECT_THAT(SplitSqlStatements(sql),
              ElementsAre("-- a comment; with a semicolon\nINSERT INTO t VALUES ('a;b', 'it''s;')",
                          "/* block; /* nested; */ still comment; */ SELECT \"odd;name\" FROM t"));
}

TEST(SqlSplitTest, KeepsDollarQuotedBodiesWhole) {
  const char* sql =
      "CREATE FUNCTION f() RETURNS int AS $body$ BEGIN PERFORM 1; RETURN 2; END $body$ LANGUAGE plpgsql;"
      "SELECT $$;$$;";
  auto parts = SplitSqlStatements(sql);
  ASSERT_EQ(parts.size(), 2u);
  EXPECT_NE(parts[0].find("RETURN 2; END $body$ LANGUAGE plpgsql"), std::string::npos);
  EXPECT_EQ(parts[1], "SELECT $$;$$");
}

TEST(SqlSplitTest, DropsEmptyAndCommentOnlyPieces) {
  EXPECT_THAT(SplitSqlStatements(";;\n-- only a comment\n;SELECT 1"), ElementsAre("SELECT 1"));
  EXPECT_TRUE(SplitSqlStatements("  \n-- nothing\n").empty());
}

TEST(SqlSplitTest, PositionalParametersAreNotDollarQuotes) {
  EXPECT_THAT(SplitSqlStatements("SELECT $1; SELECT 2"), ElementsAre("SELECT $1", "SELECT 2"));
}

TEST(SqlSplitTest, BackslashEscapedQuotesStayInsideEStrings) {
  EXPECT_THAT(SplitSqlStatements("INSERT INTO t VALUES (E'it\\'s; fine');SELECT 2"),
              ElementsAre("INSERT INTO t VALUES (E'it\\'s; fine')", "SELECT 2"));
}

}  // namespace
}  // namespace tether::common
