// Onboarding end to end with the real binaries: a spec with `onboarding: template` and
// `warm_pool: 2` gives its first tenants clones of a template and keeps two databases cloned
// ahead; a tenant added later is claimed from that pool; `tetherctl get tenant` shows how each
// was onboarded and a fingerprint equal to the replay's; a move to snapshot onboarding gives
// the same schema and drops the template and its pool.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/files.h"
#include "tests/testing/fleet.h"
#include "tests/testing/poll.h"

namespace tether {
namespace {

using testing::PollUntil;

class OnboardingE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fleet_.StartMothership());
    bootstrap_ = fleet_.CreateToken("shop");
  }

  std::string WriteSpec(const std::vector<std::string>& tenants,
                        const std::string& onboarding = "onboarding: template\nwarm_pool: 2\n") {
    const std::string dir = absl::StrCat(fleet_.dir(), "/spec", ++specs_);
    std::filesystem::create_directories(dir + "/migrations");
    const std::map<std::string, std::string> migrations = {
        {"0001_accounts.up.sql", "CREATE TABLE accounts (id bigserial PRIMARY KEY, tmp int);"},
        {"0002_drop.up.sql", "ALTER TABLE accounts DROP COLUMN tmp;"},
        {"0003_kind.up.sql", "CREATE TYPE kind AS ENUM ('a', 'b');"},
        {"0004_orders.up.sql",
         "CREATE TABLE orders (id bigserial PRIMARY KEY, account bigint REFERENCES accounts, "
         "k kind);\nCREATE VIEW order_count AS SELECT count(*) FROM orders;"}};
    for (const auto& [name, sql] : migrations) {
      EXPECT_TRUE(common::WriteFileAtomically(dir + "/migrations/" + name, sql, 0644).ok());
    }
    const std::string yaml = absl::StrCat(
        "cluster: shop\ntenancy: database\n", onboarding,
        "migrations:\n  source: ./migrations\ntenants: [",
        absl::StrJoin(tenants, ", "), "]\n");
    EXPECT_TRUE(common::WriteFileAtomically(dir + "/spec.yaml", yaml, 0644).ok());
    return dir + "/spec.yaml";
  }

  void Apply(const std::string& spec) {
    std::string out, err;
    // Follows the apply to its end: the command succeeds once the agent acks.
    ASSERT_EQ(fleet_.Ctl({"apply", "-f", spec}, &out, &err), 0) << out << err << fleet_.Logs();
  }

  // The agent's pool databases that carry a build mark (whole), by name.
  std::vector<std::string> Pool() {
    pqxx::connection c(fleet_.AgentDatabaseUrl("a1", "postgres"));
    pqxx::nontransaction tx(c);
    std::vector<std::string> out;
    for (const auto& r : tx.exec("SELECT datname FROM pg_database WHERE datname LIKE "
                                 "'tether\\_pool\\_%' AND shobj_description(oid, 'pg_database') "
                                 "IS NOT NULL ORDER BY 1")) {
      out.push_back(r[0].as<std::string>());
    }
    return out;
  }

  nlohmann::json Tenant(const std::string& name) {
    auto j = fleet_.CtlJson({"get", "tenant", "shop", name});
    EXPECT_EQ(j["tenants"].size(), 1u) << j.dump();
    return j["tenants"][0]["status"];
  }

  testing::Fleet fleet_;
  std::string bootstrap_;
  int specs_ = 0;
};

TEST_F(OnboardingE2eTest, TemplateClonesAndWarmPoolClaimsEqualTheReplay) {
  fleet_.StartAgent("a1", bootstrap_);
  // Registered and provisioned: the apply's command then has the agent to wait for.
  ASSERT_TRUE(PollUntil([&] {
    auto j = fleet_.CtlJson({"get", "agent", "a1"});
    return j.contains("health") && j["health"].value("state", "") == "PROVISIONING_STATE_READY";
  })) << fleet_.Logs();
  Apply(WriteSpec({"acme", "globex"}));
  // The pool is filled after the revision is reported, off the onboarding path.
  ASSERT_TRUE(PollUntil([&] { return Pool().size() == 2; })) << fleet_.Logs();

  Apply(WriteSpec({"acme", "globex", "initech"}));
  const auto acme = Tenant("acme");
  const auto initech = Tenant("initech");
  EXPECT_EQ(acme.value("state", ""), "TENANT_STATE_READY");
  EXPECT_EQ(acme.value("onboarding", ""), "template") << acme.dump();
  EXPECT_EQ(initech.value("onboarding", ""), "warm_pool") << initech.dump();
  const std::string fp = acme.value("fingerprint", "");
  ASSERT_EQ(fp.size(), 64u) << acme.dump();
  EXPECT_EQ(acme.value("replayFingerprint", ""), fp);
  EXPECT_EQ(initech.value("fingerprint", ""), fp);
  EXPECT_EQ(initech.value("replayFingerprint", ""), fp);
  EXPECT_EQ(initech.value("version", ""), "4");

  // The table says it too.
  std::string table;
  ASSERT_EQ(fleet_.Ctl({"get", "tenant", "shop", "initech"}, &table), 0);
  EXPECT_NE(table.find("ONBOARDED"), std::string::npos) << table;
  EXPECT_NE(table.find("warm_pool"), std::string::npos) << table;
  EXPECT_NE(table.find(fp.substr(0, 12) + " (= replay)"), std::string::npos) << table;

  // The claimed database is replaced in the pool.
  ASSERT_TRUE(PollUntil([&] { return Pool().size() == 2; })) << fleet_.Logs();
  // The template cannot be connected to, so nothing holds it open.
  {
    pqxx::connection c(fleet_.AgentDatabaseUrl("a1", "postgres"));
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT datistemplate AND NOT datallowconn FROM pg_database "
                       "WHERE datname = 'tether_template'")[0]
                  .as<bool>(),
              true);
  }

  // Onboarding by snapshot from now on: a new tenant gets the same schema, and the template
  // and its pool are dropped.
  Apply(WriteSpec({"acme", "globex", "initech", "hooli"}, "onboarding: snapshot\n"));
  const auto hooli = Tenant("hooli");
  EXPECT_EQ(hooli.value("onboarding", ""), "snapshot") << hooli.dump();
  EXPECT_EQ(hooli.value("fingerprint", ""), fp);
  ASSERT_TRUE(PollUntil([&] {
    pqxx::connection c(fleet_.AgentDatabaseUrl("a1", "postgres"));
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM pg_database WHERE datname = 'tether_template' "
                    "OR datname LIKE 'tether\\_pool\\_%'")[0]
               .as<int>() == 0;
  })) << fleet_.Logs();
}

}  // namespace
}  // namespace tether
