// The liveness sweep against a real PostgreSQL: an agent is marked lost by what was heard of
// it, not only by what was written — a sighting still waiting for its flush keeps it alive.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "controlplane/agents/agent_registry.h"
#include "controlplane/agents/stream_registry.h"
#include "controlplane/events/event_log.h"
#include "controlplane/schema.h"
#include "controlplane/tokens/token_store.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/postgres_server.h"

namespace tether::controlplane {
namespace {

class LivenessSweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    ASSERT_TRUE(MigrateMothershipSchema(url_, &clock_).ok());
    pool_ = std::make_unique<common::PgPool>(url_, 4);
    events_ = std::make_unique<EventLog>(pool_.get(), &clock_, &bus_);
    tokens_ = std::make_unique<TokenStore>(pool_.get(), events_.get(), &clock_);
    registry_ = std::make_unique<AgentRegistry>(pool_.get(), events_.get(), &bus_, &streams_,
                                                &clock_, kTtl);
  }

  AgentIdentity AddAgent(const std::string& name) {
    auto token = tokens_->CreateBootstrap("shop", absl::ZeroDuration(), 0, "");
    EXPECT_TRUE(token.ok()) << token.status();
    RegistrationRequest req;
    req.bootstrap_token = token->secret;
    req.name = name;
    auto reg = registry_->Register(req);
    EXPECT_TRUE(reg.ok()) << reg.status();
    return AgentIdentity{reg->agent_id, name, "shop", reg->incarnation};
  }

  int64_t Lost() {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM events WHERE kind = 'agent.lost'")[0].as<int64_t>();
  }

  static constexpr absl::Duration kTtl = absl::Seconds(10);
  testing::FakeClock clock_;
  std::string url_;
  InProcessChangeBus bus_;
  StreamRegistry streams_;
  std::unique_ptr<common::PgPool> pool_;
  std::unique_ptr<EventLog> events_;
  std::unique_ptr<TokenStore> tokens_;
  std::unique_ptr<AgentRegistry> registry_;
};

TEST_F(LivenessSweepTest, AnAgentHeardButNotYetWrittenIsNotLost) {
  const AgentIdentity heard = AddAgent("web-1");
  const AgentIdentity silent = AddAgent("web-2");
  v1::Health health;
  health.set_state(v1::PROVISIONING_STATE_READY);
  registry_->RecordSeen(heard, health, std::nullopt);
  registry_->RecordSeen(silent, health, std::nullopt);
  ASSERT_TRUE(registry_->FlushHeartbeats().ok());
  // Past one TTL since both were written; only web-1 is heard again, and that sighting is not
  // written (its flush would wait behind busy rows).
  clock_.Advance(kTtl + absl::Seconds(5));
  registry_->RecordSeen(heard, health, std::nullopt);
  ASSERT_TRUE(registry_->SweepLost().ok());
  EXPECT_EQ(Lost(), 1);
  pqxx::connection c(url_);
  pqxx::nontransaction tx(c);
  EXPECT_EQ(tx.exec1("SELECT string_agg(name, ',') FROM agents WHERE lost_reported")[0]
                .as<std::string>(),
            "web-2");
}

}  // namespace
}  // namespace tether::controlplane
