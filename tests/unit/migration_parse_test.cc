// Parsing migration files: pairing, ordering, markers and naming errors.
#include <gtest/gtest.h>

#include "common/pg/migrator.h"

namespace tether::common {
namespace {

TEST(MigrationParseTest, PairsUpAndDownAndSortsByVersion) {
  auto m = ParseMigrations({{"0002_b.up.sql", "B"},
                            {"0001_a.up.sql", "A"},
                            {"0001_a.down.sql", "undo A"},
                            {"0010_c.up.sql", "-- tether:no-transaction\nCREATE INDEX CONCURRENTLY"}});
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].version, 1);
  EXPECT_EQ((*m)[0].down_sql, "undo A");
  EXPECT_EQ((*m)[1].version, 2);
  EXPECT_TRUE((*m)[1].down_sql.empty());
  EXPECT_EQ((*m)[2].version, 10);
  EXPECT_FALSE((*m)[2].transactional);
  EXPECT_TRUE((*m)[0].transactional);
  EXPECT_NE((*m)[0].checksum, (*m)[1].checksum);
}

TEST(MigrationParseTest, RejectsBadNamesDuplicatesAndOrphanDowns) {
  EXPECT_EQ(ParseMigrations({{"1-a.sql", ""}}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseMigrations({{"0001_A.up.sql", ""}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseMigrations({{"0001_a.up.sql", ""}, {"001_b.up.sql", ""}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseMigrations({{"0003_c.down.sql", ""}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseMigrations({{"0000_zero.up.sql", ""}}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::common
