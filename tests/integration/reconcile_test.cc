// The reconciler against a real PostgreSQL through PgClusterAdmin and PgTenantRecords: tenants
// as databases and as schemas are created and migrated, a second reconcile changes nothing,
// prune drops; and a reconcile killed with SIGKILL part-way is resumed by the next one with
// every migration applied exactly once.
#include "agent/reconcile/reconciler.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <pqxx/pqxx>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "agent/tenants/pg_cluster_admin.h"
#include "agent/tenants/pg_tenant_records.h"
#include "common/files.h"
#include "common/pg/migrator.h"
#include "common/pg/pool.h"
#include "common/spec/spec.h"
#include "tests/testing/child_process.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_admin.h"
#include "tests/testing/specs.h"

namespace tether::agent {
std::vector<common::MigrationFile> AgentMigrationFiles();

namespace {

using testing::PollUntil;

int64_t Count(const std::string& url, const std::string& sql) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  return tx.exec1(sql)[0].as<int64_t>();
}

class ReconcileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    admin_url_ = testing::PostgresServer::Get().AdminUrl();
    own_url_ = testing::FreshAgentDatabase();
    ASSERT_FALSE(own_url_.empty());
    records_ = std::make_unique<PgTenantRecords>(own_url_);
    // Tenants are databases on the harness's one server: names unique to this test run.
    static int run = 0;
    prefix_ = absl::StrCat("r", ::getpid(), "_", ++run, "_");
  }

  std::unique_ptr<PgClusterAdmin> Admin(v1::Tenancy tenancy, const std::string& schema_db = "") {
    return testing::ServerAdmin(admin_url_, tenancy, schema_db);
  }

  static v1::ClusterSpec Spec(v1::Tenancy tenancy, std::vector<std::string> tenants,
                              bool prune = false) {
    v1::ClusterSpec spec = testing::BaseSpec();
    spec.set_tenancy(tenancy);
    spec.set_prune(prune);
    for (const auto& t : tenants) spec.add_tenants()->set_name(t);
    for (const auto& [name, sql] : std::vector<std::pair<std::string, std::string>>{
             {"0001_accounts.up.sql", "CREATE TABLE accounts (id bigserial PRIMARY KEY);"},
             {"0002_orders.up.sql",
              "CREATE TABLE orders (id bigserial PRIMARY KEY, account bigint REFERENCES accounts);"},
             {"0003_view.up.sql", "CREATE VIEW order_count AS SELECT count(*) FROM orders;"}}) {
      testing::AddMigrationFile(&spec, name, sql);
    }
    return spec;
  }

  ReconcileReport Reconcile(ClusterAdmin* admin, const v1::ClusterSpec& spec,
                            std::vector<std::string>* steps = nullptr) {
    Reconciler reconciler(admin, records_.get(), common::RealClock::Get());
    return reconciler.Reconcile(1, spec, [&](const std::string& line) {
      if (steps != nullptr) steps->push_back(line);
    }, nullptr);
  }

  std::string admin_url_;
  std::string own_url_;
  std::unique_ptr<PgTenantRecords> records_;
  std::string prefix_;
};

TEST_F(ReconcileTest, TenantsAsDatabasesAreCreatedMigratedAndPruned) {
  auto admin = Admin(v1::TENANCY_DATABASE);
  const std::vector<std::string> tenants = {prefix_ + "acme", prefix_ + "globex", prefix_ + "initech"};
  auto report = Reconcile(admin.get(), Spec(v1::TENANCY_DATABASE, tenants));
  ASSERT_TRUE(report.status.ok()) << report.status;
  ASSERT_EQ(report.tenants.size(), 3u);
  for (const auto& t : report.tenants) {
    EXPECT_EQ(t.state(), v1::TENANT_STATE_READY) << t.name();
    EXPECT_EQ(t.version(), 3);
    EXPECT_EQ(t.pending_versions_size(), 0);
  }
  for (const auto& t : tenants) {
    const std::string url = common::WithDatabase(admin_url_, t);
    EXPECT_EQ(Count(url, "SELECT count(*) FROM schema_migrations WHERE migration_set = 'tenant'"), 3);
    EXPECT_EQ(Count(url, "SELECT count(*) FROM order_count"), 1);
  }

  // The same revision again: nothing to change, nothing applied.
  std::vector<std::string> steps;
  report = Reconcile(admin.get(), Spec(v1::TENANCY_DATABASE, tenants), &steps);
  ASSERT_TRUE(report.status.ok()) << report.status;
  ASSERT_FALSE(steps.empty());
  EXPECT_NE(steps[0].find("3 tenants, 0 to change"), std::string::npos) << steps[0];

  // Leaving the spec with prune on drops the database.
  report = Reconcile(admin.get(), Spec(v1::TENANCY_DATABASE, {prefix_ + "acme"}, /*prune=*/true));
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(report.tenants.size(), 1u);
  EXPECT_EQ(Count(admin_url_, absl::StrCat("SELECT count(*) FROM pg_database WHERE datname LIKE '",
                                           prefix_, "%'")),
            1);
}

TEST_F(ReconcileTest, TenantsAsSchemasLiveInTheirOwnSchemaWithTheirOwnBookkeeping) {
  auto admin = Admin(v1::TENANCY_SCHEMA, prefix_ + "shop");
  const std::vector<std::string> tenants = {"acme", "globex"};
  auto report = Reconcile(admin.get(), Spec(v1::TENANCY_SCHEMA, tenants));
  ASSERT_TRUE(report.status.ok()) << report.status;
  const std::string db = common::WithDatabase(admin_url_, prefix_ + "shop");
  for (const auto& t : tenants) {
    EXPECT_EQ(Count(db, absl::StrCat("SELECT count(*) FROM information_schema.tables WHERE "
                                     "table_schema = '", t, "' AND table_name IN "
                                     "('accounts', 'orders', 'schema_migrations')")),
              3)
        << t;
    EXPECT_EQ(Count(db, absl::StrCat("SELECT count(*) FROM ", t, ".schema_migrations")), 3) << t;
  }
  EXPECT_EQ(Count(db, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
                      "AND table_name = 'accounts'"),
            0);
  // Again: nothing more applied.
  report = Reconcile(admin.get(), Spec(v1::TENANCY_SCHEMA, tenants));
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(Count(db, "SELECT count(*) FROM acme.schema_migrations"), 3);
  report = Reconcile(admin.get(), Spec(v1::TENANCY_SCHEMA, {"acme"}, /*prune=*/true));
  ASSERT_TRUE(report.status.ok()) << report.status;
  EXPECT_EQ(Count(db, "SELECT count(*) FROM pg_namespace WHERE nspname = 'globex'"), 0);
}

TEST_F(ReconcileTest, AReconcileKilledPartWayIsResumedWithEveryMigrationAppliedOnce) {
  // 24 tenants; every migration logs itself in the tenant, so a double application shows.
  testing::TempDir dir;
  std::filesystem::create_directories(dir.path() + "/migrations");
  auto write = [&](const std::string& name, const std::string& sql) {
    ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/migrations/" + name, sql, 0644).ok());
  };
  write("0001_log.up.sql", "CREATE TABLE applied_log (version int); INSERT INTO applied_log VALUES (1);");
  // Waits while the test holds advisory lock 4242 in the tenant's database.
  write("0002_gate.up.sql", "SELECT pg_advisory_xact_lock(4242); INSERT INTO applied_log VALUES (2);");
  write("0003_more.up.sql", "INSERT INTO applied_log VALUES (3);");
  std::vector<std::string> tenants;
  for (int i = 0; i < 24; ++i) tenants.push_back(absl::StrFormat("%st%02d", prefix_, i));
  const std::string gated_tenant = tenants[7];
  ASSERT_TRUE(common::WriteFileAtomically(
                  dir.path() + "/spec.yaml",
                  absl::StrCat("cluster: shop\nmigrations: {policy: auto, source: migrations}\n"
                               "tenants: [", absl::StrJoin(tenants, ", "), "]\n"),
                  0644)
                  .ok());

  // The gate: tenant 7 exists already (as after a crash between CREATE DATABASE and its record)
  // and its migration 2 will wait for us.
  {
    pqxx::connection c(admin_url_);
    pqxx::nontransaction tx(c);
    tx.exec("CREATE DATABASE " + gated_tenant);
  }
  const std::string gated = common::WithDatabase(admin_url_, gated_tenant);
  auto gate = std::make_unique<pqxx::connection>(gated);
  {
    pqxx::nontransaction tx(*gate);
    tx.exec("SELECT pg_advisory_lock(4242)");
  }

  const std::vector<std::string> argv = {TETHER_RECONCILE_WORKER_BIN, admin_url_, own_url_,
                                         dir.path() + "/spec.yaml"};
  {
    testing::ChildProcess worker(argv, {}, dir.path() + "/first.log");
    // Every other tenant finishes; tenant 7 waits at its gate.
    ASSERT_TRUE(PollUntil([&] {
      return Count(own_url_, "SELECT count(*) FROM tenants WHERE state = 'TENANT_STATE_READY'") == 23 &&
             Count(gated, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted") == 1;
    })) << worker.Log();
    worker.Signal(SIGKILL);
    EXPECT_EQ(worker.Wait(), 128 + SIGKILL);
  }
  EXPECT_NE(Count(own_url_, absl::StrCat("SELECT count(*) FROM tenants WHERE name = '", gated_tenant,
                                         "' AND state IN ('TENANT_STATE_CREATING', "
                                         "'TENANT_STATE_MIGRATING')")),
            0);
  gate.reset();  // open the gate

  std::string out, err;
  ASSERT_EQ(testing::RunCommand(argv, {}, &out, &err), 0) << out << err;
  EXPECT_NE(out.find("24 tenants, 1 to change"), std::string::npos) << out;
  EXPECT_EQ(Count(own_url_, "SELECT count(*) FROM tenants WHERE state = 'TENANT_STATE_READY' "
                            "AND version = 3"),
            24);
  for (const auto& t : tenants) {
    const std::string url = common::WithDatabase(admin_url_, t);
    EXPECT_EQ(Count(url, "SELECT count(*) FROM applied_log"), 3) << t;
    EXPECT_EQ(Count(url, "SELECT count(DISTINCT version) FROM applied_log"), 3) << t;
  }
}

}  // namespace
}  // namespace tether::agent
