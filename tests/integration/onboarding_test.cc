// Onboarding strategies against a real PostgreSQL 15: every strategy in every tenancy gives
// the fingerprint of a replay for a corpus of migration shapes (a dropped and a renamed column,
// an enum with added values, a function, a trigger, a view, a partial index, a sequence owned
// by a column, comments naming the snapshot's schema, seed rows); a template held open by
// another session makes the clone retry, not fail; the warm pool never hands out a database
// of an older revision and drops half-built ones; a half-built template is rebuilt, also after
// the process building it was killed part-way; migrations that depend on the tenant's name are
// caught by the fingerprint and onboarded by replay; a tenant that is not the replay is refused
// and dropped.
//
// Its own test binary: the template and pool are server-wide names, and this binary's
// PostgreSQL is its own.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "agent/onboarding/leftovers.h"
#include "agent/onboarding/pg_databases.h"
#include "agent/onboarding/snapshot_onboarding.h"
#include "agent/onboarding/template_onboarding.h"
#include "agent/tenants/pg_cluster_admin.h"
#include "common/files.h"
#include "common/pg/migrator.h"
#include "common/pg/pool.h"
#include "common/spec/yaml.h"
#include "tests/testing/child_process.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"
#include "tests/testing/server_admin.h"
#include "tests/testing/step_lines.h"

namespace tether::agent {
std::vector<common::MigrationFile> AgentMigrationFiles();

namespace {

using testing::PollUntil;

// Migration shapes a snapshot or a clone must carry faithfully.
const std::vector<common::MigrationFile> kCorpus = {
    {"0001_status.up.sql", "CREATE TYPE status AS ENUM ('new', 'paid');"},
    {"0002_customers.up.sql",
     "CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, tmp int, "
     "email text DEFAULT 'none');"},
    {"0003_drop.up.sql", "ALTER TABLE customers DROP COLUMN tmp;"},
    {"0004_rename.up.sql", "ALTER TABLE customers RENAME COLUMN email TO contact;"},
    {"0005_orders.up.sql",
     "CREATE TABLE orders (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
     "customer bigint REFERENCES customers (id), st status NOT NULL DEFAULT 'new', "
     "total numeric(10, 2) CHECK (total >= 0));"},
    {"0006_enum.up.sql", "ALTER TYPE status ADD VALUE 'shipped' AFTER 'paid';"},
    {"0007_enum.up.sql", "ALTER TYPE status ADD VALUE 'draft' BEFORE 'new';"},
    {"0008_partial.up.sql", "CREATE INDEX orders_open ON orders (customer) WHERE st <> 'paid';"},
    {"0009_sequence.up.sql", "CREATE SEQUENCE invoice_no START 100 OWNED BY orders.id;"},
    {"0010_function.up.sql",
     "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS "
     "$$ BEGIN NEW.total := coalesce(NEW.total, 0); RETURN NEW; END $$;\n"
     "CREATE FUNCTION open_count() RETURNS bigint LANGUAGE sql AS "
     "$$ SELECT count(*) FROM orders WHERE st <> 'paid' $$;"},
    {"0011_trigger.up.sql",
     "CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();"},
    {"0012_view.up.sql",
     "CREATE VIEW open_orders AS SELECT o.id, c.name FROM orders o JOIN customers c "
     "ON c.id = o.customer WHERE o.st <> 'paid';"},
    {"0013_comments.up.sql",
     "COMMENT ON TABLE orders IS 'orders; see tether_snapshot.orders and tether_reference';\n"
     "COMMENT ON COLUMN customers.contact IS 'how to reach them';"},
    {"0014_seed.up.sql",
     "CREATE TABLE plans (name text PRIMARY KEY, price int NOT NULL);\n"
     "INSERT INTO plans VALUES ('free', 0), ('tether_snapshot.pro', 10);"},
};

std::vector<common::Migration> Migrations(std::vector<common::MigrationFile> files) {
  auto parsed = common::ParseMigrations(files);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : std::vector<common::Migration>();
}

using Lines = testing::StepLines;

class OnboardingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    admin_url_ = testing::PostgresServer::Get().AdminUrl();
    own_url_ = testing::FreshAgentDatabase();
    ASSERT_FALSE(own_url_.empty());
    // Each test starts without a template, pool, reference or snapshot of an earlier one.
    PgDatabases dbs(admin_url_);
    auto left = dbs.List("tether_");
    ASSERT_TRUE(left.ok()) << left.status();
    for (const auto& db : *left) ASSERT_TRUE(dbs.Drop(db.name).ok());
    static int run = 0;
    prefix_ = absl::StrCat("o", ::getpid(), "_", ++run, "_");
  }

  std::unique_ptr<PgClusterAdmin> Admin(v1::Tenancy tenancy) {
    return testing::ServerAdmin(admin_url_, tenancy,
                                tenancy == v1::TENANCY_SCHEMA ? schema_db_ : "");
  }

  std::unique_ptr<TemplateOnboarding> Template(ClusterAdmin* admin, int warm_pool = 0) {
    TemplateOptions options;
    options.warm_pool = warm_pool;
    return std::make_unique<TemplateOnboarding>(admin, PgDatabases(admin_url_), options,
                                                common::RealClock::Get());
  }

  std::unique_ptr<SnapshotOnboarding> Snapshot(ClusterAdmin* admin, v1::Tenancy tenancy) {
    SnapshotOptions options;
    options.tenancy = tenancy;
    const std::string admin_url = admin_url_;
    const std::string schema_db = schema_db_;
    options.tenant_database_url = [admin_url, tenancy, schema_db](const std::string& db) {
      return common::WithDatabase(admin_url, tenancy == v1::TENANCY_SCHEMA ? schema_db : db);
    };
    options.agent_database_url = own_url_;
    return std::make_unique<SnapshotOnboarding>(admin, options, &runner_, common::RealClock::Get());
  }

  // The fingerprint of `tenant` built by replaying every migration.
  std::string ReplayFingerprint(ClusterAdmin* admin, const std::vector<common::Migration>& ms) {
    ReplayOnboarding replay(admin);
    auto done = replay.Onboard({prefix_ + "replayed", ms.back().version, &ms}, [](auto&) {});
    EXPECT_TRUE(done.ok()) << done.status();
    return done.ok() ? done->fingerprint : "";
  }

  std::string admin_url_;
  std::string own_url_;
  std::string schema_db_ = "onboarding_schemas";
  std::string prefix_;
  common::RealProcessRunner runner_;
};

TEST_F(OnboardingTest, EveryStrategyInEveryTenancyGivesTheReplaysFingerprint) {
  const auto ms = Migrations(kCorpus);
  const int64_t target = ms.back().version;
  for (v1::Tenancy tenancy : {v1::TENANCY_DATABASE, v1::TENANCY_SCHEMA}) {
    SCOPED_TRACE(v1::Tenancy_Name(tenancy));
    auto admin = Admin(tenancy);
    const std::string replay = ReplayFingerprint(admin.get(), ms);
    ASSERT_EQ(replay.size(), 64u);

    std::vector<std::unique_ptr<Onboarding>> strategies;
    if (tenancy == v1::TENANCY_DATABASE) strategies.push_back(Template(admin.get(), 1));
    strategies.push_back(Snapshot(admin.get(), tenancy));
    for (auto& strategy : strategies) {
      Lines lines;
      ASSERT_TRUE(strategy->Prepare(ms, target, lines.Fn()).ok());
      strategy->Replenish(lines.Fn(), nullptr);  // fills a warm pool, if it has one
      // Two tenants: with a pool of one, the first is a claim and the second a clone.
      std::vector<std::string> methods;
      for (const std::string& tenant : {prefix_ + strategy->name() + "_a",
                                        prefix_ + strategy->name() + "_b"}) {
        auto done = strategy->Onboard({tenant, target, &ms}, lines.Fn());
        ASSERT_TRUE(done.ok()) << done.status() << "\n" << lines.All();
        EXPECT_EQ(done->fingerprint, replay) << tenant;
        EXPECT_EQ(done->replay_fingerprint, replay);
        methods.push_back(done->method);
        auto fp = admin->Fingerprint(tenant);
        ASSERT_TRUE(fp.ok());
        EXPECT_EQ(fp->sha256, replay);
      }
      if (strategy->name() == "template") {
        EXPECT_EQ(methods, (std::vector<std::string>{"warm_pool", "template"}));
      } else {
        EXPECT_EQ(methods, (std::vector<std::string>{"snapshot", "snapshot"})) << lines.All();
      }
      // The seed rows came along, and the comment naming the snapshot's schema is untouched.
      const std::string tenant = prefix_ + strategy->name() + "_b";
      pqxx::connection c(tenancy == v1::TENANCY_SCHEMA ? common::WithDatabase(admin_url_, schema_db_)
                                                       : common::WithDatabase(admin_url_, tenant));
      pqxx::work tx(c);
      if (tenancy == v1::TENANCY_SCHEMA) tx.exec("SET LOCAL search_path TO \"" + tenant + "\"");
      EXPECT_EQ(tx.exec1("SELECT count(*) FROM plans WHERE name = 'tether_snapshot.pro'")[0].as<int>(), 1);
      EXPECT_EQ(tx.exec1("SELECT obj_description('orders'::regclass, 'pg_class')")[0].as<std::string>(),
                "orders; see tether_snapshot.orders and tether_reference");
      EXPECT_EQ(tx.exec1("SELECT open_count()")[0].as<int>(), 0);
    }
  }
}

TEST_F(OnboardingTest, TheSnapshotIsPlainSqlTakenOncePerRevision) {
  const auto ms = Migrations(kCorpus);
  auto admin = Admin(v1::TENANCY_SCHEMA);
  auto first = Snapshot(admin.get(), v1::TENANCY_SCHEMA);
  Lines lines;
  ASSERT_TRUE(first->Prepare(ms, ms.back().version, lines.Fn()).ok());
  EXPECT_TRUE(lines.Has("snapshot: taken at version 14")) << lines.All();
  EXPECT_EQ(admin->Fingerprint(kSnapshotCheckTenant).status().code(), absl::StatusCode::kNotFound);
  const std::string sql = first->snapshot_sql();
  ASSERT_FALSE(sql.empty());
  for (const auto& line : absl::StrSplit(sql, '\n')) {
    EXPECT_FALSE(absl::StartsWith(line, "\\")) << line;  // nothing only psql understands
  }
  // Stored: the next reconcile of the revision reuses it instead of taking it again.
  auto second = Snapshot(admin.get(), v1::TENANCY_SCHEMA);
  Lines again;
  ASSERT_TRUE(second->Prepare(ms, ms.back().version, again.Fn()).ok());
  EXPECT_FALSE(again.Has("snapshot: taken")) << again.All();
  EXPECT_EQ(second->snapshot_sql(), sql);
}

TEST_F(OnboardingTest, MigrationsThatDependOnTheNameAreCaughtAndReplayed) {
  auto ms = Migrations({{"0001_t.up.sql", "CREATE TABLE t (id int);"},
                        {"0002_named.up.sql",
                         "DO $$ BEGIN EXECUTE format('COMMENT ON TABLE t IS %L', "
                         "current_database() || '.' || current_schema()); END $$;"}});
  for (v1::Tenancy tenancy : {v1::TENANCY_DATABASE, v1::TENANCY_SCHEMA}) {
    SCOPED_TRACE(v1::Tenancy_Name(tenancy));
    auto admin = Admin(tenancy);
    std::vector<std::unique_ptr<Onboarding>> strategies;
    if (tenancy == v1::TENANCY_DATABASE) strategies.push_back(Template(admin.get()));
    strategies.push_back(Snapshot(admin.get(), tenancy));
    for (auto& strategy : strategies) {
      Lines lines;
      ASSERT_TRUE(strategy->Prepare(ms, 2, lines.Fn()).ok());
      EXPECT_TRUE(lines.Has("depend on the")) << lines.All();
      const std::string tenant = prefix_ + strategy->name() + "_named";
      auto done = strategy->Onboard({tenant, 2, &ms}, lines.Fn());
      ASSERT_TRUE(done.ok()) << done.status();
      EXPECT_EQ(done->method, "migrations");
    }
  }
}

TEST_F(OnboardingTest, ATemplateHeldOpenMakesTheCloneRetryNotFail) {
  const auto ms = Migrations(kCorpus);
  auto admin = Admin(v1::TENANCY_DATABASE);
  auto strategy = Template(admin.get());
  Lines lines;
  ASSERT_TRUE(strategy->Prepare(ms, ms.back().version, lines.Fn()).ok());
  // Someone opens the template (connections allowed again by hand) and keeps it open.
  {
    pqxx::connection c(admin_url_);
    pqxx::nontransaction tx(c);
    tx.exec("ALTER DATABASE tether_template WITH ALLOW_CONNECTIONS true");
  }
  auto holder = std::make_unique<pqxx::connection>(common::WithDatabase(admin_url_, "tether_template"));
  absl::StatusOr<Onboarded> done = absl::UnknownError("not run");
  std::thread onboarding([&] {
    done = strategy->Onboard({prefix_ + "patient", ms.back().version, &ms}, lines.Fn());
  });
  ASSERT_TRUE(PollUntil([&] { return lines.Has("template busy"); })) << lines.All();
  holder.reset();  // the session ends; the next try goes through
  onboarding.join();
  ASSERT_TRUE(done.ok()) << done.status() << "\n" << lines.All();
  EXPECT_EQ(done->method, "template");
  EXPECT_TRUE(lines.Has("is in use by another session")) << lines.All();
}

TEST_F(OnboardingTest, ThePoolNeverHandsOutADatabaseOfAnOlderRevision) {
  auto files = kCorpus;
  files.resize(5);
  const auto older = Migrations(files);
  auto admin = Admin(v1::TENANCY_DATABASE);
  auto strategy = Template(admin.get(), 2);
  Lines lines;
  ASSERT_TRUE(strategy->Prepare(older, 5, lines.Fn()).ok());
  strategy->Replenish(lines.Fn(), nullptr);
  PgDatabases dbs(admin_url_);
  auto pool = dbs.List(kPoolPrefix);
  ASSERT_TRUE(pool.ok());
  ASSERT_EQ(pool->size(), 2u) << lines.All();
  // A pool database left half-built (cloned, never marked) by a crash.
  ASSERT_TRUE(dbs.Clone("tether_pool_9", kTemplateDatabase, CloneStrategy::kWalLog).ok());

  // A revision with more migrations: the pool's databases are of the older one.
  const auto newer = Migrations(kCorpus);
  auto next = Template(admin.get(), 2);
  Lines more;
  ASSERT_TRUE(next->Prepare(newer, newer.back().version, more.Fn()).ok());
  EXPECT_TRUE(more.Has("bringing tether_template forward from version 5 to 14")) << more.All();
  auto done = next->Onboard({prefix_ + "fresh", newer.back().version, &newer}, more.Fn());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->method, "template");  // cloned: no pool database is of this revision
  EXPECT_EQ(done->fingerprint, ReplayFingerprint(admin.get(), newer));
  next->Replenish(more.Fn(), nullptr);
  EXPECT_TRUE(more.Has("dropping tether_pool_9 (half-built)")) << more.All();
  EXPECT_TRUE(more.Has("(built from another revision)")) << more.All();
  pool = dbs.List(kPoolPrefix);
  ASSERT_TRUE(pool.ok());
  ASSERT_EQ(pool->size(), 2u);
  auto tmpl = dbs.Describe(kTemplateDatabase);
  ASSERT_TRUE(tmpl.ok() && tmpl->has_value());
  for (const auto& db : *pool) {
    ASSERT_TRUE(db.mark.has_value()) << db.name;
    EXPECT_EQ(*db.mark, *(*tmpl)->mark) << db.name;
    EXPECT_EQ(db.mark->version, 14);
  }
  // And the claim now comes from the refilled pool.
  auto claimed = Template(admin.get(), 2);
  ASSERT_TRUE(claimed->Prepare(newer, newer.back().version, more.Fn()).ok());
  done = claimed->Onboard({prefix_ + "claimed", newer.back().version, &newer}, more.Fn());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->method, "warm_pool");
}

// Claims keep their connection open between them; one the server closed is replaced.
TEST_F(OnboardingTest, AClaimOutlivesItsConnectionBeingClosed) {
  PgDatabases dbs(admin_url_);
  for (const std::string name : {"tether_pool_1", "tether_pool_2"}) {
    pqxx::connection c(admin_url_);
    pqxx::nontransaction tx(c);
    tx.exec("CREATE DATABASE " + name);
  }
  ASSERT_TRUE(dbs.Claim("tether_pool_1", prefix_ + "first").ok());
  {
    pqxx::connection c(admin_url_);
    pqxx::nontransaction tx(c);
    // Every other session of the server's admin database: the claims' kept connection.
    EXPECT_GE(tx.exec1("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                       "AND backend_type = 'client backend'")[0]
                  .as<int>(),
              1);
  }
  auto st = dbs.Claim("tether_pool_2", prefix_ + "second");
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_EQ(dbs.Claim("tether_pool_2", prefix_ + "third").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(dbs.Claim(prefix_ + "first", prefix_ + "second").code(),
            absl::StatusCode::kAlreadyExists);
  auto tenants = Admin(v1::TENANCY_DATABASE)->ListTenants();
  ASSERT_TRUE(tenants.ok());
  EXPECT_EQ(tenants->count(prefix_ + "first") + tenants->count(prefix_ + "second"), 2u);
}

// A spec that moves from template to snapshot, then to migrations, leaves nothing behind.
TEST_F(OnboardingTest, WhatAStrategyNoLongerAskedForLeftIsDropped) {
  const auto ms = Migrations(kCorpus);
  auto admin = Admin(v1::TENANCY_DATABASE);
  PgDatabases dbs(admin_url_);
  auto names = [&] {
    std::set<std::string> out;
    auto list = dbs.List("tether_");
    EXPECT_TRUE(list.ok());
    for (const auto& db : *list) out.insert(db.name);
    return out;
  };
  Lines lines;
  auto as_template = Template(admin.get(), 1);
  ASSERT_TRUE(as_template->Prepare(ms, ms.back().version, lines.Fn()).ok());
  as_template->Replenish(lines.Fn(), nullptr);
  auto as_snapshot = Snapshot(admin.get(), v1::TENANCY_DATABASE);
  ASSERT_TRUE(as_snapshot->Prepare(ms, ms.back().version, lines.Fn()).ok());
  EXPECT_EQ(names(), (std::set<std::string>{"tether_pool_1", "tether_reference",
                                            "tether_snapshot", "tether_snapshot_check",
                                            "tether_template"}));
  // The snapshot was proved in a transaction rolled back: its check database stays empty.
  auto check = admin->Fingerprint(kSnapshotCheckTenant);
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->lines.empty()) << check->lines[0];

  WithoutLeftovers snapshot(std::move(as_snapshot), v1::ONBOARDING_SNAPSHOT,
                            v1::TENANCY_DATABASE, admin.get(), dbs);
  snapshot.Replenish(lines.Fn(), nullptr);
  EXPECT_EQ(names(), (std::set<std::string>{"tether_reference", "tether_snapshot",
                                            "tether_snapshot_check"}));
  EXPECT_TRUE(lines.Has("dropped tether_template: onboarding is no longer template"))
      << lines.All();

  WithoutLeftovers replay(std::make_unique<ReplayOnboarding>(admin.get()),
                          v1::ONBOARDING_MIGRATIONS, v1::TENANCY_DATABASE, admin.get(), dbs);
  replay.Replenish(lines.Fn(), nullptr);
  EXPECT_EQ(names(), std::set<std::string>{});
}

TEST_F(OnboardingTest, AHalfBuiltTemplateIsRebuiltNeverCloned) {
  const auto ms = Migrations(kCorpus);
  auto admin = Admin(v1::TENANCY_DATABASE);
  // As a crash leaves it: created and part-migrated, never sealed.
  ASSERT_TRUE(admin->CreateTenant(kTemplateDatabase).ok());
  ASSERT_TRUE(admin->ApplyMigrations(kTemplateDatabase, ms, 3, nullptr).ok());
  auto strategy = Template(admin.get());
  Lines lines;
  ASSERT_TRUE(strategy->Prepare(ms, ms.back().version, lines.Fn()).ok());
  EXPECT_TRUE(lines.Has("was left half-built (no build mark); rebuilding it")) << lines.All();
  auto done = strategy->Onboard({prefix_ + "after", ms.back().version, &ms}, lines.Fn());
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->method, "template");
  EXPECT_EQ(done->fingerprint, done->replay_fingerprint);
  PgDatabases dbs(admin_url_);
  auto tmpl = dbs.Describe(kTemplateDatabase);
  ASSERT_TRUE(tmpl.ok() && tmpl->has_value());
  EXPECT_TRUE((*tmpl)->is_template);
  EXPECT_FALSE((*tmpl)->allow_connections);
}

TEST_F(OnboardingTest, ATenantThatIsNotTheReplayIsRefusedAndDropped) {
  const auto ms = Migrations(kCorpus);
  auto admin = Admin(v1::TENANCY_DATABASE);
  auto reference = ReplayInto(admin.get(), kReferenceTenant, ms, ms.back().version, [](auto&) {});
  ASSERT_TRUE(reference.ok()) << reference.status();
  const std::string tenant = prefix_ + "odd";
  ASSERT_TRUE(admin->CreateTenant(tenant).ok());
  ASSERT_TRUE(admin->ApplyMigrations(tenant, ms, 13, nullptr).ok());
  auto proved = ProveOnboarded(admin.get(), tenant, "template", *reference);
  ASSERT_EQ(proved.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(proved.status().message(),
                                "onboarded by template but its schema is not the replay's: it "))
      << proved.status();
  EXPECT_TRUE(absl::StrContains(proved.status().message(), "plans")) << proved.status();
  auto tenants = admin->ListTenants();
  ASSERT_TRUE(tenants.ok());
  EXPECT_EQ(tenants->count(tenant), 0u);
}

// The process building the template is killed while a migration of the template holds: the
// next run finds it half-built, rebuilds it, and its tenants equal the replay.
TEST_F(OnboardingTest, ATemplateBuildKilledPartWayIsRecovered) {
  testing::TempDir dir;
  const std::string spec_path = dir.path() + "/spec.yaml";
  ASSERT_TRUE(common::MakeDirs(dir.path() + "/migrations").ok());
  for (const auto& f : kCorpus) {
    ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/migrations/" + f.filename, f.contents, 0644).ok());
  }
  // The gate: migration 15 waits for an advisory lock the test holds in the template.
  ASSERT_TRUE(common::WriteFileAtomically(dir.path() + "/migrations/0015_gate.up.sql",
                                          "SELECT pg_advisory_xact_lock(7007);", 0644)
                  .ok());
  const std::string tenant = prefix_ + "survivor";
  ASSERT_TRUE(common::WriteFileAtomically(
                  spec_path,
                  absl::StrCat("cluster: shop\nonboarding: template\nmigrations:\n  source: ",
                               dir.path(), "/migrations\ntenants: [", tenant, "]\n"),
                  0644)
                  .ok());
  // Hold the gate in the template as soon as it exists.
  std::unique_ptr<pqxx::connection> gate;
  std::unique_ptr<pqxx::work> gate_tx;
  const std::vector<std::string> argv = {TETHER_RECONCILE_WORKER_BIN, admin_url_, own_url_,
                                         spec_path};
  auto worker = std::make_unique<testing::ChildProcess>(argv, std::vector<std::string>{},
                                                        dir.path() + "/first.log");
  ASSERT_TRUE(PollUntil([&] {
    try {
      gate = std::make_unique<pqxx::connection>(common::WithDatabase(admin_url_, kTemplateDatabase));
      gate_tx = std::make_unique<pqxx::work>(*gate);
      gate_tx->exec("SELECT pg_advisory_xact_lock(7007)");
      return true;
    } catch (const std::exception&) {
      return false;
    }
  })) << worker->Log();
  // The worker reaches the gate in the template: migration 15 waits on the lock.
  ASSERT_TRUE(PollUntil([&] {
    pqxx::connection c(admin_url_);
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND NOT l.granted "
                    "AND d.datname = 'tether_template'")[0]
               .as<int>() > 0;
  })) << worker->Log();
  worker->Signal(SIGKILL);
  EXPECT_EQ(worker->Wait(), 128 + SIGKILL);
  worker.reset();
  gate_tx.reset();
  gate.reset();

  std::string out, err;
  ASSERT_EQ(testing::RunCommand(argv, {}, &out, &err), 0) << out << err;
  EXPECT_TRUE(absl::StrContains(out, "half-built")) << out;
  EXPECT_TRUE(absl::StrContains(out, "(template; fingerprint")) << out;
  auto admin = Admin(v1::TENANCY_DATABASE);
  auto parsed = common::ReadMigrationDir(dir.path() + "/migrations");
  ASSERT_TRUE(parsed.ok());
  const auto ms = Migrations(*parsed);
  auto fp = admin->Fingerprint(tenant);
  ASSERT_TRUE(fp.ok()) << fp.status();
  EXPECT_EQ(fp->sha256, ReplayFingerprint(admin.get(), ms));
}

}  // namespace
}  // namespace tether::agent
