// The cluster spec: YAML with its SQL files read into a ClusterSpec, every rule checked with an
// error naming the file, the line and the field; hostile names refused; diffs between revisions
// and the changes a revision may not make.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/spec/diff.h"
#include "common/spec/spec.h"
#include "common/spec/yaml.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/specs.h"

namespace tether::common {
namespace {

class SpecTest : public ::testing::Test {
 protected:
  void Write(const std::string& name, const std::string& contents) {
    std::filesystem::create_directories(std::filesystem::path(dir_.path() + "/" + name).parent_path());
    ASSERT_TRUE(WriteFileAtomically(dir_.path() + "/" + name, contents, 0644).ok());
  }
  absl::StatusOr<v1::ClusterSpec> Load(const std::string& yaml) {
    Write("spec.yaml", yaml);
    return LoadSpecFile(dir_.path() + "/spec.yaml");
  }
  // The error of loading `yaml`, without the directory part of the file name.
  std::string ErrorOf(const std::string& yaml) {
    auto spec = Load(yaml);
    EXPECT_FALSE(spec.ok());
    if (spec.ok()) return "";
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument);
    std::string message(spec.status().message());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    const std::string prefix = dir_.path() + "/";
    return message.rfind(prefix, 0) == 0 ? message.substr(prefix.size()) : message;
  }

  testing::TempDir dir_;
};

TEST_F(SpecTest, AFullSpecIsReadWithItsFiles) {
  Write("migrations/0001_init.up.sql", "CREATE TABLE t (id int);");
  Write("migrations/0001_init.down.sql", "DROP TABLE t;");
  Write("migrations/0002_more.up.sql", "ALTER TABLE t ADD COLUMN x int;");
  Write("migrations/README.md", "not a migration");
  Write("hooks/seed.sql", "INSERT INTO t VALUES (1);");
  auto spec = Load(R"(cluster: shop
mode: lite
postgres: { version: 15 }
tenancy: database
onboarding: template
warm_pool: 4
migrations:
  policy: manual
  source: ./migrations
hooks:
  after_tenant_created: ./hooks/seed.sql
prune: true
tenants: [acme, globex]
)");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->cluster(), "shop");
  EXPECT_EQ(spec->tenancy(), v1::TENANCY_DATABASE);
  EXPECT_EQ(spec->onboarding(), v1::ONBOARDING_TEMPLATE);
  EXPECT_EQ(spec->warm_pool(), 4);
  EXPECT_EQ(spec->migrations().policy(), v1::MIGRATION_POLICY_MANUAL);
  ASSERT_EQ(spec->migrations().files_size(), 3);
  EXPECT_EQ(spec->migrations().files(0).name(), "0001_init.down.sql");
  EXPECT_EQ(spec->migrations().files(0).sha256(), FileSha256("DROP TABLE t;"));
  ASSERT_EQ(spec->hooks_size(), 1);
  EXPECT_EQ(spec->hooks(0).event(), "after_tenant_created");
  EXPECT_TRUE(spec->prune());
  ASSERT_EQ(spec->tenants_size(), 2);
  EXPECT_EQ(TargetVersion(*spec), 2);
  EXPECT_TRUE(ValidateSpec(*spec).ok());
}

TEST_F(SpecTest, DefaultsAreTheSimplestCluster) {
  auto spec = Load("cluster: shop\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->mode(), v1::AGENT_MODE_LITE);
  EXPECT_EQ(spec->postgres().version(), 15);
  EXPECT_EQ(spec->tenancy(), v1::TENANCY_DATABASE);
  EXPECT_EQ(spec->onboarding(), v1::ONBOARDING_MIGRATIONS);
  EXPECT_EQ(spec->migrations().policy(), v1::MIGRATION_POLICY_AUTO);
  EXPECT_EQ(TargetVersion(*spec), 0);
}

TEST_F(SpecTest, ErrorsNameTheFileTheLineAndTheField) {
  EXPECT_EQ(ErrorOf("cluster: shop\ncolour: blue\n"),
            "spec.yaml:2: colour: unknown field (known: cluster, hooks, migrations, mode, "
            "onboarding, postgres, prune, tenancy, tenants, warm_pool)");
  EXPECT_EQ(ErrorOf("cluster: shop\ntenants:\n  - acme\n  - acme\n"),
            "spec.yaml:4: tenants[1]: tenant \"acme\" is listed twice");
  EXPECT_EQ(ErrorOf("cluster: shop\ntenancy: table\n"),
            "spec.yaml:2: tenancy: \"table\" is not one of database, schema");
  EXPECT_EQ(ErrorOf("tenants: [a]\n"), "spec.yaml:1: cluster: is required");
  EXPECT_EQ(ErrorOf("cluster: shop\nprune: maybe\n"), "spec.yaml:2: prune: must be true or false");
  EXPECT_EQ(ErrorOf("cluster: shop\nmigrations: {policy: auto, source: ./nowhere}\n").rfind(
                "spec.yaml:2: migrations.source: migrations directory ", 0),
            0u);
  EXPECT_NE(ErrorOf("cluster: [shop\n").find("not valid YAML"), std::string::npos);
  // A key given twice is a mistake, not a choice of one of the two.
  EXPECT_EQ(ErrorOf("cluster: shop\ncluster: other\n"), "spec.yaml:2: cluster: is given twice");
  EXPECT_EQ(ErrorOf("cluster: shop\ntenancy: \"\"\n"),
            "spec.yaml:2: tenancy: must be a single, non-empty value");
  // Onboarding choices that cannot work together.
  EXPECT_EQ(ErrorOf("cluster: shop\ntenancy: schema\nonboarding: template\n"),
            "spec.yaml:3: onboarding: template clones databases; with tenancy schema use "
            "snapshot or migrations");
  EXPECT_EQ(ErrorOf("cluster: shop\nonboarding: snapshot\nwarm_pool: 2\n"),
            "spec.yaml:3: warm_pool: is for onboarding template only (databases cloned ahead)");
  EXPECT_EQ(ErrorOf("cluster: shop\nonboarding: template\nwarm_pool: 65\n"),
            "spec.yaml:3: warm_pool: must be between 0 and 64");
  // Numbers are plain decimal: no strings that look like one, no octal or hex.
  for (const std::string n : {"\"2\"", "'2'", "!!str 2", "0x2", "2.0", "1e1", "two"}) {
    EXPECT_EQ(ErrorOf("cluster: shop\nonboarding: template\nwarm_pool: " + n + "\n"),
              "spec.yaml:3: warm_pool: must be a whole number")
        << n;
  }
  EXPECT_EQ(ErrorOf("cluster: shop\nonboarding: template\nwarm_pool: 1099511627776\n"),
            "spec.yaml:3: warm_pool: 1099511627776 is out of range");
  auto octal_looking = Load("cluster: shop\nonboarding: template\nwarm_pool: 010\n");
  ASSERT_TRUE(octal_looking.ok()) << octal_looking.status();
  EXPECT_EQ(octal_looking->warm_pool(), 10);  // as YAML 1.2 reads it
}

TEST_F(SpecTest, HostileNamesAreRefused) {
  for (const std::string& name : std::vector<std::string>{"\"a'b\"", "\"a;b\"", "\"a--b\"", "\"a\\0b\"", "Acme", "\"acme\\\"; DROP TABLE x; --\"",
        std::string(64, 'a'), "pg_catalog", "postgres", "tether_agent", "\"\""}) {
    const std::string error = ErrorOf(absl::StrCat("cluster: shop\ntenants:\n  - ", name, "\n"));
    EXPECT_EQ(error.rfind("spec.yaml:3: tenants[0]: ", 0), 0u) << name << " -> " << error;
  }
  EXPECT_EQ(ErrorOf("cluster: \"shop; DROP\"\n").rfind("spec.yaml:1: cluster: invalid cluster name", 0),
            0u);
  // A name that is not UTF-8 makes the whole file unreadable as text.
  EXPECT_EQ(ErrorOf("cluster: shop\ntenants: [\"\xff\xfe\"]\n"), "spec.yaml: not UTF-8 text");
}

TEST_F(SpecTest, MigrationFilesMustBeTextWithOneFilePerVersion) {
  Write("m1/0001_a.up.sql", "SELECT 1;");
  Write("m1/0001_b.up.sql", "SELECT 2;");
  EXPECT_EQ(ErrorOf("cluster: shop\nmigrations: {source: m1}\n"),
            "spec.yaml:2: migrations: two migrations have version 1");
  Write("m2/0001_a.up.sql", "SELECT '\xff';");
  EXPECT_EQ(ErrorOf("cluster: shop\nmigrations: {source: m2}\n"),
            "spec.yaml:2: migrations.source: 0001_a.up.sql is not UTF-8 text");
  Write("m3/one.sql", "SELECT 1;");
  EXPECT_NE(ErrorOf("cluster: shop\nmigrations: {source: m3}\n").find("is not named NNNN_name"),
            std::string::npos);
}

TEST_F(SpecTest, LimitsAreKept) {
  std::string many = "cluster: shop\ntenants:\n";
  for (int i = 0; i <= kMaxTenants; ++i) absl::StrAppend(&many, "  - t", i, "\n");
  EXPECT_EQ(ErrorOf(many), "spec.yaml:3: tenants: 10001 tenants; at most 10000 are allowed");
  Write("big/0001_big.up.sql", std::string(kMaxSpecBytes + 1, '-'));
  EXPECT_NE(ErrorOf("cluster: shop\nmigrations: {source: big}\n").find("bytes, the most a spec may carry"),
            std::string::npos);
}

TEST_F(SpecTest, ARawSpecIsCheckedToo) {
  // What a client other than tetherctl may send: files whose checksum or text is wrong.
  v1::ClusterSpec spec = testing::BaseSpec();
  ASSERT_TRUE(ValidateSpec(spec).ok());
  auto* f = spec.mutable_migrations()->add_files();
  f->set_name("0001_a.up.sql");
  f->set_contents("SELECT 1;");
  f->set_sha256("0000");
  EXPECT_NE(ValidateSpec(spec).message().find("does not match its sha256"), std::string::npos);
  f->set_contents("SELECT '\xc3';");
  f->set_sha256(FileSha256(f->contents()));
  EXPECT_NE(ValidateSpec(spec).message().find("is not UTF-8 text"), std::string::npos);
  f->set_contents("SELECT 1;");
  f->set_sha256(FileSha256(f->contents()));
  f->set_name("../0001_a.up.sql");
  EXPECT_NE(ValidateSpec(spec).message().find("is not a plain file name"), std::string::npos);
  f->set_name("0001_a.up.sql");
  spec.set_tenancy(v1::TENANCY_UNSPECIFIED);
  EXPECT_EQ(ValidateSpec(spec).message(), "tenancy: must be database or schema");
}

TEST(ExampleSpecTest, TheShippedExamplesLoad) {
  // tools/up applies this one; the deploy manifests are YAML that parses.
  auto spec = LoadSpecFile(std::string(TETHER_SOURCE_DIR) + "/deploy/examples/shop/spec.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->tenants_size(), 2);
  EXPECT_EQ(TargetVersion(*spec), 4);
  for (const auto& entry : std::filesystem::recursive_directory_iterator(
           std::string(TETHER_SOURCE_DIR) + "/deploy")) {
    const auto ext = entry.path().extension();
    if (ext != ".yaml" && ext != ".yml") continue;
    EXPECT_NO_THROW(YAML::LoadAllFromFile(entry.path().string())) << entry.path();
  }
}

v1::ClusterSpec Spec(std::vector<std::string> tenants,
                     std::vector<std::pair<std::string, std::string>> files, bool prune = false) {
  v1::ClusterSpec spec = testing::BaseSpec();
  spec.set_prune(prune);
  for (const auto& t : tenants) spec.add_tenants()->set_name(t);
  for (const auto& [name, sql] : files) testing::AddMigrationFile(&spec, name, sql);
  return spec;
}

TEST(SpecDiffTest, SaysWhatChanged) {
  const auto before = Spec({"acme", "initech"}, {{"0001_a.up.sql", "A"}});
  const auto after = Spec({"acme", "globex"}, {{"0001_a.up.sql", "A"}, {"0002_b.up.sql", "B"}});
  EXPECT_EQ(DiffSpecs(&before, after),
            (std::vector<std::string>{"+ migration 0002_b.up.sql", "+ tenant globex",
                                      "- tenant initech (orphaned: prune is false)"}));
  EXPECT_TRUE(DiffSpecs(&before, before).empty());
  EXPECT_EQ(DiffSpecs(nullptr, before)[0], "+ cluster shop");
  EXPECT_TRUE(CheckSuccessor(before, after).ok());
}

TEST(SpecDiffTest, ANewMigrationMustBeNumberedAfterTheNewestOneCarriedBefore) {
  const auto before = Spec({}, {{"0001_a.up.sql", "A"}, {"0003_c.up.sql", "C"}});
  const auto slipped_in = Spec({}, {{"0001_a.up.sql", "A"}, {"0002_b.up.sql", "B"}, {"0003_c.up.sql", "C"}});
  EXPECT_EQ(CheckSuccessor(before, slipped_in).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(CheckSuccessor(before, slipped_in).message().find("0002_b.up.sql is numbered at or below 0003_c.up.sql"),
            std::string::npos)
      << CheckSuccessor(before, slipped_in).message();
  // A down file for a migration already carried, and a migration after the newest, are fine.
  const auto later = Spec({}, {{"0001_a.up.sql", "A"}, {"0001_a.down.sql", "a"}, {"0003_c.up.sql", "C"},
                               {"0004_d.up.sql", "D"}});
  EXPECT_TRUE(CheckSuccessor(before, later).ok()) << CheckSuccessor(before, later);
}

TEST(SpecDiffTest, MigrationsNoTenantAppliedMayBeReplacedWhenAsked) {
  const auto before = Spec({}, {{"0001_a.up.sql", "A"}, {"0002_b.up.sql", "broken"}});
  const auto fixed = Spec({}, {{"0001_a.up.sql", "A"}, {"0002_b.up.sql", "fixed"}});
  EXPECT_EQ(CheckSuccessor(before, fixed).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(CheckSuccessor(before, fixed, /*unapplied_above=*/1).ok());
  // A tenant applied 2: it stays immutable, asked or not.
  EXPECT_EQ(CheckSuccessor(before, fixed, /*unapplied_above=*/2).code(),
            absl::StatusCode::kFailedPrecondition);
  // Removed instead, and renumbered: fine too once nothing applied it.
  const auto renumbered = Spec({}, {{"0001_a.up.sql", "A"}, {"0002_c.up.sql", "fixed"}});
  EXPECT_TRUE(CheckSuccessor(before, renumbered, 1).ok());
}

TEST(SpecDiffTest, AppliedMigrationsCannotBeEditedOrRemovedNorTheTenancyChanged) {
  const auto before = Spec({}, {{"0001_a.up.sql", "A"}, {"0002_b.up.sql", "B"}});
  auto edited = Spec({}, {{"0001_a.up.sql", "A"}, {"0002_b.up.sql", "B2"}});
  EXPECT_EQ(CheckSuccessor(before, edited).message(),
            "migration file 0002_b.up.sql differs from the one an earlier revision had: add a "
            "new migration instead of editing it (one that no tenant applied can be replaced "
            "with apply --replace-unapplied)");
  auto removed = Spec({}, {{"0001_a.up.sql", "A"}});
  EXPECT_EQ(CheckSuccessor(before, removed).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(CheckSuccessor(before, removed).message().find("0002_b.up.sql"), std::string::npos);
  auto schema = before;
  schema.set_tenancy(v1::TENANCY_SCHEMA);
  EXPECT_NE(CheckSuccessor(before, schema).message().find("tenancy cannot change"),
            std::string::npos);
}

}  // namespace
}  // namespace tether::common
