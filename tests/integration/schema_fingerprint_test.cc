// SchemaFingerprint against a real PostgreSQL 15: the same migrations in two schemas give the
// same fingerprint — with a dropped column, a renamed column, an enum with an added value, a
// function, a trigger, a view, a partial index, a sequence owned by a column, a foreign key and
// comments that name the schema — and a table built without the dropped column equals one that
// dropped it; a real difference changes it and is named.
#include "agent/onboarding/schema_fingerprint.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "tests/testing/postgres_server.h"

namespace tether::agent {
namespace {

// Migrations as every tenant replays them (the same text for each: a comment that names a
// tenant, acme, stays as it is in globex's schema too).
const char* kCorpus[] = {
    "CREATE TYPE status AS ENUM ('new', 'paid')",
    "CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, tmp int, "
    "email text DEFAULT 'none')",
    "ALTER TABLE customers DROP COLUMN tmp",
    "ALTER TABLE customers RENAME COLUMN email TO contact",
    "CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "customer bigint REFERENCES customers (id), st status NOT NULL DEFAULT 'new', "
    "total numeric(10, 2) CHECK (total >= 0))",
    "ALTER TYPE status ADD VALUE 'shipped' AFTER 'paid'",
    "ALTER TYPE status ADD VALUE 'draft' BEFORE 'new'",
    "CREATE INDEX orders_open ON orders (customer) WHERE st <> 'paid'",
    "CREATE SEQUENCE invoice_no START 100 OWNED BY orders.id",
    "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN NEW.total := coalesce(NEW.total, 0); RETURN NEW; END $$",
    "CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch()",
    "CREATE VIEW open_orders AS SELECT o.id, c.name FROM orders o JOIN customers c "
    "ON c.id = o.customer WHERE o.st <> 'paid'",
    "COMMENT ON TABLE orders IS 'orders of acme'",
    "COMMENT ON COLUMN customers.contact IS 'how to reach them'",
};

class SchemaFingerprintTest : public ::testing::Test {
 protected:
  void SetUp() override { url_ = testing::PostgresServer::Get().FreshDatabase(); }

  void Build(const std::string& schema, const std::vector<std::string>& statements) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec("CREATE SCHEMA " + schema);
    tx.exec("SET LOCAL search_path TO " + schema);
    for (const auto& s : statements) tx.exec(s);
    tx.commit();
  }
  void Corpus(const std::string& schema) {
    Build(schema, std::vector<std::string>(std::begin(kCorpus), std::end(kCorpus)));
  }

  std::string url_;
};

TEST_F(SchemaFingerprintTest, TheSameMigrationsInTwoSchemasGiveTheSameFingerprint) {
  Corpus("acme");
  Corpus("globex");
  auto a = FingerprintSchema(url_, "acme");
  auto b = FingerprintSchema(url_, "globex");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(FirstDifference(*a, *b), "");
  EXPECT_EQ(a->sha256, b->sha256);
  EXPECT_EQ(a->sha256.size(), 64u);
  // What it covers, as it reads.
  auto has = [&](const std::string& line) {
    return std::find(a->lines.begin(), a->lines.end(), line) != a->lines.end();
  };
  EXPECT_TRUE(has("enum status 'draft', 'new', 'paid', 'shipped'"));
  EXPECT_TRUE(has("column customers.contact 3 text default 'none'::text comment 'how to reach them'"));
  EXPECT_TRUE(has("sequence invoice_no bigint start 100 increment 1 min 1 max "
                  "9223372036854775807 cache 1 owned by orders.id"));
  EXPECT_TRUE(has("index orders_open on orders btree (customer) where st <> 'paid'::status"));
  EXPECT_TRUE(has("relation orders r comment 'orders of acme'"));
  for (const auto& line : a->lines) {
    EXPECT_EQ(line.find("acme."), std::string::npos) << line;  // no schema-qualified name
  }
}

TEST_F(SchemaFingerprintTest, ADroppedColumnLeavesNoTraceAndARealDifferenceIsNamed) {
  Build("dropped", {"CREATE TABLE t (a int, b int, c text DEFAULT 'x')", "ALTER TABLE t DROP COLUMN b"});
  Build("direct", {"CREATE TABLE t (a int, c text DEFAULT 'x')"});
  Build("other", {"CREATE TABLE t (a int, c text DEFAULT 'y')"});
  auto dropped = FingerprintSchema(url_, "dropped");
  auto direct = FingerprintSchema(url_, "direct");
  auto other = FingerprintSchema(url_, "other");
  ASSERT_TRUE(dropped.ok() && direct.ok() && other.ok());
  EXPECT_EQ(dropped->sha256, direct->sha256);
  EXPECT_NE(other->sha256, direct->sha256);
  EXPECT_EQ(FirstDifference(*other, *direct),
            "has \"column t.c 2 text default 'y'::text\" where the replay has "
            "\"column t.c 2 text default 'x'::text\"");
  Build("more", {"CREATE TABLE t (a int, c text DEFAULT 'x')", "CREATE TABLE u (a int)"});
  auto more = FingerprintSchema(url_, "more");
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(FirstDifference(*more, *direct),
            "has \"relation u r\" where the replay has \"column t.a 1 integer\"");
  EXPECT_NE(FirstDifference(*direct, *more).find("\"relation u r\""), std::string::npos);
}

TEST_F(SchemaFingerprintTest, AnUnknownOrBadSchemaIsRefused) {
  EXPECT_EQ(FingerprintSchema(url_, "nowhere").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(FingerprintSchema(url_, "a\"; DROP SCHEMA public; --").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tether::agent
