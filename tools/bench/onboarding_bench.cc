// onboarding_bench: onboards tenants by every method side by side on one PostgreSQL and reports
// per-tenant min / median / p99 / max and tenants per second, as a table and as JSON. Every
// tenant's fingerprint is checked against the replay's. Run through tools/bench/onboarding,
// which starts a PostgreSQL 15 with fsync on for it.
//
//   onboarding_bench --admin-url URL --agent-url URL [--migrations 100] [--tenants 100]
//                    [--json FILE] [--write-migrations DIR]
//
// Methods: replay (a transaction per migration, one process); the usual shell-out (pg_dump
// --schema-only once, then createdb + psql -1 -f per tenant); snapshot; template; warm_pool
// claims; and, for schema tenancy, replay and snapshot.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/onboarding/pg_databases.h"
#include "agent/onboarding/snapshot_onboarding.h"
#include "agent/onboarding/template_onboarding.h"
#include "agent/tenants/pg_cluster_admin.h"
#include "common/files.h"
#include "common/pg/migrator.h"
#include "common/pg/pool.h"
#include "common/process.h"

namespace tether::bench {
namespace {

// A history of `n` migrations in the shapes real histories have: tables, indexes, constraints,
// foreign keys, functions, views, an enum that grows, a dropped column, comments.
std::vector<common::MigrationFile> History(int n) {
  std::vector<common::MigrationFile> files;
  for (int i = 1; i <= n; ++i) {
    const int t = (i - 1) / 10;  // table group
    std::string sql;
    switch ((i - 1) % 10) {
      case 0:
        sql = absl::StrFormat(
            "CREATE TABLE t%d (id bigserial PRIMARY KEY, name text NOT NULL, tmp int, "
            "created_at timestamptz NOT NULL DEFAULT now()%s);",
            t, t > 0 ? absl::StrFormat(", parent bigint REFERENCES t%d (id)", t - 1) : "");
        break;
      case 1:
        sql = absl::StrFormat("CREATE INDEX t%d_name ON t%d (name);", t, t);
        break;
      case 2:
        sql = absl::StrFormat("ALTER TABLE t%d ADD COLUMN amount numeric(12, 2) "
                              "CHECK (amount >= 0);", t);
        break;
      case 3:
        sql = absl::StrFormat("ALTER TABLE t%d DROP COLUMN tmp;", t);
        break;
      case 4:
        sql = t == 0 ? "CREATE TYPE state AS ENUM ('new', 'done');"
                     : absl::StrFormat("ALTER TYPE state ADD VALUE 's%d';", t);
        break;
      case 5:
        sql = absl::StrFormat("ALTER TABLE t%d ADD COLUMN st state NOT NULL DEFAULT 'new';", t);
        break;
      case 6:
        sql = absl::StrFormat(
            "CREATE FUNCTION t%d_total() RETURNS numeric LANGUAGE sql AS "
            "$$ SELECT coalesce(sum(amount), 0) FROM t%d $$;", t, t);
        break;
      case 7:
        sql = absl::StrFormat("CREATE VIEW t%d_open AS SELECT id, name FROM t%d WHERE st = 'new';",
                              t, t);
        break;
      case 8:
        sql = absl::StrFormat("CREATE UNIQUE INDEX t%d_lower ON t%d (lower(name)) "
                              "WHERE st = 'new';", t, t);
        break;
      case 9:
        sql = absl::StrFormat("COMMENT ON TABLE t%d IS 'group %d';", t, t);
        break;
    }
    files.push_back({absl::StrFormat("%04d_m%d.up.sql", i, i), sql});
  }
  return files;
}

struct Result {
  std::string method;
  std::string tenancy;
  std::vector<double> ms;  // per tenant
  double wall_ms = 0;      // all tenants, one after another
  double prepare_ms = 0;   // once per revision, before the first tenant
  int mismatches = 0;      // tenants whose fingerprint is not the replay's
  std::string note;
  std::vector<double> claim_ms;  // the copy alone (a clone, or a claim's rename), from its line
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

class Bench {
 public:
  Bench(std::string admin_url, std::string agent_url, std::vector<common::Migration> ms)
      : admin_url_(std::move(admin_url)), agent_url_(std::move(agent_url)), ms_(std::move(ms)) {}

  std::unique_ptr<agent::PgClusterAdmin> Admin(v1::Tenancy tenancy) {
    agent::PgClusterAdminOptions options;
    options.tenancy = tenancy;
    const std::string admin = admin_url_;
    options.url_for = [admin](const std::string& db) {
      return db.empty() ? admin : common::WithDatabase(admin, db);
    };
    options.admin_database = "";
    options.schema_database = tenancy == v1::TENANCY_SCHEMA ? "bench_schemas" : "";
    return std::make_unique<agent::PgClusterAdmin>(options, common::RealClock::Get());
  }

  // Onboards `tenants` tenants named PREFIX_i with `strategy`, one after another.
  Result Run(const std::string& label, v1::Tenancy tenancy, agent::Onboarding* strategy,
             agent::ClusterAdmin* admin, int tenants, const std::string& expected) {
    Result r;
    r.method = label;
    r.tenancy = tenancy == v1::TENANCY_SCHEMA ? "schema" : "database";
    const int64_t target = ms_.back().version;
    auto start = std::chrono::steady_clock::now();
    if (auto st = strategy->Prepare(ms_, target, [&](const std::string& line) {
          std::cerr << "  " << label << ": " << line << "\n";
        });
        !st.ok()) {
      r.note = std::string(st.message());
      return r;
    }
    r.prepare_ms = Ms(std::chrono::steady_clock::now() - start);
    const auto all = std::chrono::steady_clock::now();
    for (int i = 0; i < tenants; ++i) {
      const std::string tenant = absl::StrFormat("%s_%d", label, i);
      const auto t0 = std::chrono::steady_clock::now();
      auto done = strategy->Onboard({tenant, target, &ms_}, [&](const std::string& line) {
        double ms = 0;
        const size_t at = line.rfind(" in ");
        if ((line.rfind("claimed ", 0) == 0 || line.rfind("cloned ", 0) == 0) &&
            at != std::string::npos && std::sscanf(line.c_str() + at, " in %lf ms", &ms) == 1) {
          r.claim_ms.push_back(ms);
        }
      });
      r.ms.push_back(Ms(std::chrono::steady_clock::now() - t0));
      if (!done.ok()) {
        r.note = std::string(done.status().message());
        ++r.mismatches;
        continue;
      }
      if (done->method != MethodOf(label)) r.note = "onboarded by " + done->method;
      if (done->fingerprint != expected) ++r.mismatches;
    }
    r.wall_ms = Ms(std::chrono::steady_clock::now() - all);
    return r;
  }

  static std::string MethodOf(const std::string& label) {
    if (label.rfind("replay", 0) == 0) return "migrations";
    if (label.rfind("snapshot", 0) == 0) return "snapshot";
    if (label.rfind("warm_pool", 0) == 0) return "warm_pool";
    return "template";
  }

  // pg_dump --schema-only of a replayed database once, then createdb + psql -1 -f per tenant.
  Result ShellOut(int tenants, const std::string& expected, agent::ClusterAdmin* admin) {
    Result r;
    r.method = "pg_dump + createdb + psql";
    r.tenancy = "database";
    const std::string bin = "/usr/lib/postgresql/15/bin/";
    const std::string dump = "/tmp/tether-bench-dump-" + std::to_string(::getpid()) + ".sql";
    common::RealProcessRunner runner;
    auto start = std::chrono::steady_clock::now();
    auto out = runner.Run({{bin + "pg_dump", "--schema-only", "--file=" + dump,
                            "--dbname=" + common::WithDatabase(admin_url_, "tether_reference")}});
    r.prepare_ms = Ms(std::chrono::steady_clock::now() - start);
    if (!out.ok() || out->exit_code != 0) {
      r.note = "pg_dump failed";
      return r;
    }
    // The migrations' own bookkeeping: pg_dump --schema-only leaves its rows out, as the
    // usual recipe does; the fingerprint check below covers the schema only.
    const auto all = std::chrono::steady_clock::now();
    for (int i = 0; i < tenants; ++i) {
      const std::string tenant = absl::StrFormat("shell_%d", i);
      const auto t0 = std::chrono::steady_clock::now();
      auto created = runner.Run({{bin + "createdb", "--maintenance-db=" + admin_url_, tenant}});
      auto applied = runner.Run({{bin + "psql", "-X", "-q", "-1", "-v", "ON_ERROR_STOP=1", "-f",
                                  dump, "-d", common::WithDatabase(admin_url_, tenant)}});
      r.ms.push_back(Ms(std::chrono::steady_clock::now() - t0));
      if (!created.ok() || created->exit_code != 0 || !applied.ok() || applied->exit_code != 0) {
        r.note = applied.ok() ? applied->output.substr(0, 200) : "createdb or psql failed";
        ++r.mismatches;
        continue;
      }
      auto fp = admin->Fingerprint(tenant);
      if (!fp.ok() || StripMigrations(*fp) != expected_schema_) ++r.mismatches;
    }
    r.wall_ms = Ms(std::chrono::steady_clock::now() - all);
    std::filesystem::remove(dump);
    r.note = "schema compared without the migration rows";
    return r;
  }

  // The fingerprint's lines without those of schema_migrations' rows, joined.
  static std::string StripMigrations(const agent::SchemaFingerprint& fp) {
    std::string out;
    for (const auto& l : fp.lines) {
      if (l.rfind("migration ", 0) == 0) continue;
      absl::StrAppend(&out, l, "\n");
    }
    return out;
  }

  void set_expected_schema(std::string s) { expected_schema_ = std::move(s); }

 private:
  std::string admin_url_;
  std::string agent_url_;
  std::vector<common::Migration> ms_;
  std::string expected_schema_;
};

}  // namespace
}  // namespace tether::bench

namespace tether::agent {
std::vector<common::MigrationFile> AgentMigrationFiles();
}

int main(int argc, char** argv) {
  using namespace tether;
  CLI::App app{"onboard tenants by every method and compare (see tools/bench/onboarding)"};
  std::string admin_url, agent_url, json_path, write_dir;
  int migrations = 100, tenants = 100;
  app.add_option("--admin-url", admin_url, "a superuser URL of the server")->required();
  app.add_option("--agent-url", agent_url, "a database for the agent's own tables")->required();
  app.add_option("--migrations", migrations, "migrations in the generated history");
  app.add_option("--tenants", tenants, "tenants onboarded by each method");
  app.add_option("--json", json_path, "also write the results as JSON here");
  app.add_option("--write-migrations", write_dir,
                 "only write the generated migrations into this directory, then exit");
  CLI11_PARSE(app, argc, argv);

  const auto files = bench::History(migrations);
  if (!write_dir.empty()) {
    std::filesystem::create_directories(write_dir);
    for (const auto& f : files) {
      if (!common::WriteFileAtomically(write_dir + "/" + f.filename, f.contents, 0644).ok()) return 1;
    }
    return 0;
  }
  auto own = common::ParseMigrations(agent::AgentMigrationFiles());
  common::MigratorOptions own_options;
  own_options.set_name = "tether-agent";
  if (!own.ok() || !common::Migrator(agent_url, *own, own_options, common::RealClock::Get()).Up().ok()) {
    std::cerr << "cannot prepare the agent's database\n";
    return 1;
  }
  auto ms = common::ParseMigrations(files);
  if (!ms.ok()) {
    std::cerr << ms.status() << "\n";
    return 1;
  }
  bench::Bench bench(admin_url, agent_url, *ms);
  std::vector<bench::Result> results;
  common::RealProcessRunner runner;

  for (v1::Tenancy tenancy : {v1::TENANCY_DATABASE, v1::TENANCY_SCHEMA}) {
    auto admin = bench.Admin(tenancy);
    const std::string suffix = tenancy == v1::TENANCY_SCHEMA ? "_schema" : "";
    // The replay's fingerprint, from the reference every strategy builds.
    auto reference = agent::ReplayInto(admin.get(), agent::kReferenceTenant, *ms,
                                       ms->back().version, [](const std::string&) {});
    if (!reference.ok()) {
      std::cerr << "cannot replay the history: " << reference.status() << "\n";
      return 1;
    }
    bench.set_expected_schema(bench::Bench::StripMigrations(*reference));
    agent::ReplayOnboarding replay(admin.get());
    results.push_back(bench.Run("replay" + suffix, tenancy, &replay, admin.get(), tenants,
                                reference->sha256));
    if (tenancy == v1::TENANCY_DATABASE) {
      results.push_back(bench.ShellOut(tenants, reference->sha256, admin.get()));
    }
    agent::SnapshotOptions so;
    so.tenancy = tenancy;
    so.tenant_database_url = [&, tenancy](const std::string& db) {
      return common::WithDatabase(admin_url, tenancy == v1::TENANCY_SCHEMA ? "bench_schemas" : db);
    };
    so.agent_database_url = agent_url;
    agent::SnapshotOnboarding snapshot(admin.get(), so, &runner, common::RealClock::Get());
    results.push_back(bench.Run("snapshot" + suffix, tenancy, &snapshot, admin.get(), tenants,
                                reference->sha256));
    if (tenancy == v1::TENANCY_DATABASE) {
      agent::TemplateOnboarding tmpl(admin.get(), agent::PgDatabases(admin_url), {},
                                     common::RealClock::Get());
      results.push_back(bench.Run("template", tenancy, &tmpl, admin.get(), tenants,
                                  reference->sha256));
      // The other clone strategy, whatever the template's size, to place the crossover.
      agent::TemplateOptions fo;
      fo.file_copy_from_bytes = 0;
      agent::TemplateOnboarding file_copy(admin.get(), agent::PgDatabases(admin_url), fo,
                                          common::RealClock::Get());
      results.push_back(bench.Run("template_file_copy", tenancy, &file_copy, admin.get(), tenants,
                                  reference->sha256));
      // A pool as deep as the run, filled beforehand: what is timed is the claim.
      agent::TemplateOptions po;
      po.warm_pool = tenants;
      agent::TemplateOnboarding pool(admin.get(), agent::PgDatabases(admin_url), po,
                                     common::RealClock::Get());
      (void)pool.Prepare(*ms, ms->back().version, [](const std::string&) {});
      pool.Replenish([](const std::string&) {}, nullptr);
      results.push_back(bench.Run("warm_pool", tenancy, &pool, admin.get(), tenants,
                                  reference->sha256));
    }
  }

  // The copy alone (the CREATE DATABASE, or the rename in one transaction of a claim),
  // without the proof that follows it.
  for (size_t i = 0; i < results.size(); ++i) {
    if (results[i].claim_ms.empty() || results[i].method.find(" only") != std::string::npos) {
      continue;
    }
    bench::Result part;
    part.method = results[i].method == "warm_pool" ? "  warm_pool claim (rename only)"
                                                   : "  " + results[i].method + " (clone only)";
    part.tenancy = results[i].tenancy;
    part.ms = results[i].claim_ms;
    for (double v : part.ms) part.wall_ms += v;
    results.insert(results.begin() + i + 1, part);
  }
  nlohmann::json out = nlohmann::json::array();
  std::printf("%-28s %-9s %9s %9s %9s %9s %9s %10s %s\n", "method", "tenancy", "min ms",
              "median", "p99", "max", "tenants/s", "prepare ms", "fingerprints");
  for (const auto& r : results) {
    const double per_s = r.wall_ms > 0 ? 1000.0 * r.ms.size() / r.wall_ms : 0;
    std::printf("%-28s %-9s %9.1f %9.1f %9.1f %9.1f %9.1f %10.0f %s%s\n", r.method.c_str(),
                r.tenancy.c_str(), bench::Percentile(r.ms, 0), bench::Percentile(r.ms, 0.5),
                bench::Percentile(r.ms, 0.99), bench::Percentile(r.ms, 1), per_s, r.prepare_ms,
                r.mismatches == 0 ? "all equal" : absl::StrCat(r.mismatches, " DIFFER").c_str(),
                r.note.empty() ? "" : ("  (" + r.note + ")").c_str());
    out.push_back({{"method", r.method},
                   {"tenancy", r.tenancy},
                   {"tenants", r.ms.size()},
                   {"min_ms", bench::Percentile(r.ms, 0)},
                   {"median_ms", bench::Percentile(r.ms, 0.5)},
                   {"p99_ms", bench::Percentile(r.ms, 0.99)},
                   {"max_ms", bench::Percentile(r.ms, 1)},
                   {"tenants_per_s", per_s},
                   {"prepare_ms", r.prepare_ms},
                   {"fingerprint_mismatches", r.mismatches},
                   {"note", r.note}});
  }
  const std::string json = nlohmann::json({{"migrations", migrations}, {"results", out}}).dump(2);
  if (!json_path.empty()) {
    std::ofstream(json_path) << json << "\n";
  } else {
    std::cout << json << "\n";
  }
  for (const auto& r : results) {
    if (r.mismatches != 0) return 1;
  }
  return 0;
}
