// PgChangeBus against a real PostgreSQL: two replicas' buses on one database. A change
// published on one reaches the other's subscribers once and is not delivered twice where it
// was published; a listener whose connection is ended reconnects and tells its subscribers to
// look at what may have changed meanwhile, read from the database.
#include "controlplane/fanout/pg_change_bus.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "controlplane/schema.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"

namespace tether::controlplane {
namespace {

using testing::PollUntil;

// What a subscriber saw, in order.
class Seen {
 public:
  explicit Seen(ChangeBus* bus) {
    bus->Subscribe([this](const Change& c) {
      absl::MutexLock lock(&mu_);
      changes_.push_back(c);
    });
  }
  std::vector<Change> changes() {
    absl::MutexLock lock(&mu_);
    return changes_;
  }
  bool Has(Change::Kind kind, const std::string& cluster, int64_t number) {
    for (const Change& c : changes()) {
      if (c.kind == kind && c.cluster == cluster && c.number == number) return true;
    }
    return false;
  }

 private:
  absl::Mutex mu_;
  std::vector<Change> changes_;
};

class PgChangeBusTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    ASSERT_TRUE(MigrateMothershipSchema(url_, common::RealClock::Get()).ok());
  }

  std::string url_;
  common::RealRandom random_;
};

TEST(ChangePayloadTest, RoundTripsAndRefusesWhatIsNotAChange) {
  const Change change{Change::Kind::kCommand, "shop", "8c3e", 42};
  auto back = DecodeChange(EncodeChange("abc", change));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->first, "abc");
  EXPECT_EQ(back->second.kind, Change::Kind::kCommand);
  EXPECT_EQ(back->second.cluster, "shop");
  EXPECT_EQ(back->second.agent_id, "8c3e");
  EXPECT_EQ(back->second.number, 42);
  EXPECT_FALSE(DecodeChange("").has_value());
  EXPECT_FALSE(DecodeChange("abc|3|1|shop").has_value());         // a part missing
  EXPECT_FALSE(DecodeChange("abc|99|1|shop|").has_value());       // a kind unknown here
  EXPECT_FALSE(DecodeChange("abc|5|1|shop|").has_value());        // shutdown never travels
  EXPECT_FALSE(DecodeChange("abc|0|x|shop|").has_value());        // not a number
  EXPECT_FALSE(DecodeChange("abc|0|1|" + std::string(2000, 'a') + "|").has_value());
}

TEST_F(PgChangeBusTest, AChangeOnOneReplicaReachesTheOtherOnceAndIsNotEchoed) {
  PgChangeBus a(url_, common::RealClock::Get(), &random_);
  PgChangeBus b(url_, common::RealClock::Get(), &random_);
  Seen on_a(&a), on_b(&b);
  a.Start();
  b.Start();

  a.Publish({Change::Kind::kRevision, "shop", "", 7});
  EXPECT_TRUE(on_a.Has(Change::Kind::kRevision, "shop", 7));  // here at once
  ASSERT_TRUE(PollUntil([&] { return on_b.Has(Change::Kind::kRevision, "shop", 7); }));
  // b answers; once a has that, a's own notification (committed before) has come back to it.
  b.Publish({Change::Kind::kEvent, "", "", 99});
  ASSERT_TRUE(PollUntil([&] { return on_a.Has(Change::Kind::kEvent, "", 99); }));
  EXPECT_EQ(on_a.changes().size(), 2u);
  EXPECT_EQ(on_b.changes().size(), 2u);
  // This process's shutdown stays here.
  a.Publish({Change::Kind::kShutdown, "", "", 0});
  b.Publish({Change::Kind::kEvent, "", "", 100});
  ASSERT_TRUE(PollUntil([&] { return on_a.Has(Change::Kind::kEvent, "", 100); }));
  for (const Change& c : on_b.changes()) EXPECT_NE(c.kind, Change::Kind::kShutdown);
}

TEST_F(PgChangeBusTest, AListenerThatLostItsConnectionLooksAtWhatMayHaveChanged) {
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    tx.exec("INSERT INTO clusters (name, last_revision) VALUES ('shop', 5)");
    tx.commit();
  }
  PgChangeBus b(url_, common::RealClock::Get(), &random_);
  Seen on_b(&b);
  b.Start();
  EXPECT_EQ(b.connections(), 1);
  EXPECT_FALSE(on_b.Has(Change::Kind::kRevision, "shop", 5));
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    EXPECT_EQ(tx.exec1("SELECT count(pg_terminate_backend(pid, 60000)) FROM pg_stat_activity "
                       "WHERE application_name = 'tether-mothership-bus'")[0]
                  .as<int>(),
              1);
  }
  ASSERT_TRUE(PollUntil([&] { return on_b.Has(Change::Kind::kRevision, "shop", 5); }));
  EXPECT_EQ(b.connections(), 2);
  EXPECT_TRUE(on_b.Has(Change::Kind::kEvent, "", 0));  // event followers look too
}

}  // namespace
}  // namespace tether::controlplane
