// The event log against a real PostgreSQL: appenders never wait for each other, and a reader
// never shows an id while a transaction under way can still commit a lower one, so a follower
// reading "id > last" skips nothing — whether the lower id commits late or rolls back.
#include "controlplane/events/event_log.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include <atomic>
#include <future>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "controlplane/schema.h"
#include "tests/testing/poll.h"
#include "tests/testing/postgres_server.h"

namespace tether::controlplane {
namespace {

class EventLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::PostgresServer::Get().FreshDatabase();
    ASSERT_TRUE(MigrateMothershipSchema(url_, common::RealClock::Get()).ok());
    pool_ = std::make_unique<common::PgPool>(url_, 16);
    log_ = std::make_unique<EventLog>(pool_.get(), common::RealClock::Get(), &bus_);
  }

  std::vector<int64_t> Ids(const std::vector<v1::Event>& events) {
    std::vector<int64_t> ids;
    for (const auto& e : events) ids.push_back(e.id());
    return ids;
  }

  // Appends one event of `kind` in a transaction of its own on a new connection; the id.
  int64_t AppendOne(const std::string& kind) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    EventLog::Append(tx, "shop", "", kind, "");
    const int64_t id = tx.exec1("SELECT currval('events_id_seq')")[0].as<int64_t>();
    tx.commit();
    return id;
  }

  std::string url_;
  InProcessChangeBus bus_;
  std::unique_ptr<common::PgPool> pool_;
  std::unique_ptr<EventLog> log_;
};

TEST_F(EventLogTest, AnEventThatCommitsAfterALaterOneIsStillReadFirst) {
  // The lower id is drawn by a transaction that stays open...
  pqxx::connection slow_connection(url_);
  auto slow = std::make_unique<pqxx::work>(slow_connection);
  EventLog::Append(*slow, "shop", "", "slow", "");
  const int64_t slow_id = slow->exec1("SELECT currval('events_id_seq')")[0].as<int64_t>();

  // ...while another appender commits a higher one without waiting for it.
  const int64_t fast_id = AppendOne("fast");
  ASSERT_GT(fast_id, slow_id);

  // A follower reading now must not be handed the higher id alone: it would then read "after
  // fast_id" next and never see slow_id. It waits for the slow appender...
  auto read = std::async(std::launch::async, [&] { return log_->After({}, 0, 100); });
  pqxx::connection observer(url_);
  ASSERT_TRUE(testing::PollUntil([&] {
    pqxx::nontransaction tx(observer);
    return tx.exec1("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")[0]
               .as<int64_t>() == 1;
  })) << "the read did not wait for the appender under way";
  // ...and reads both, in order, once it has committed.
  slow->commit();
  auto events = read.get();
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(Ids(*events), (std::vector<int64_t>{slow_id, fast_id}));
}

TEST_F(EventLogTest, AnEventAfterOneThatRolledBackIsRead) {
  {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    EventLog::Append(tx, "shop", "", "rolled.back", "");
    tx.abort();
  }
  const int64_t id = AppendOne("kept");
  auto events = log_->After({}, 0, 100);
  ASSERT_TRUE(events.ok()) << events.status();
  EXPECT_EQ(Ids(*events), std::vector<int64_t>{id});
  auto listed = log_->List({}, 0, 100);
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_EQ(Ids(*listed), std::vector<int64_t>{id});
}

// Many appenders at once, some of them rolling back, and a follower reading all along: it reads
// every committed event exactly once, in id order.
TEST_F(EventLogTest, AFollowerReadsEveryCommittedEventOnceInOrderWhileManyAppend) {
  constexpr int kWriters = 8;
  constexpr int kEach = 150;
  std::atomic<int> writers_done{0};
  std::vector<std::vector<int64_t>> committed(kWriters);
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      pqxx::connection c(url_);
      for (int i = 0; i < kEach; ++i) {
        pqxx::work tx(c);
        // Some work before the append, as a registration does.
        tx.exec("SELECT count(*) FROM agents");
        EventLog::Append(tx, "shop", "", "load", absl::StrCat(w, "/", i));
        const int64_t id = tx.exec1("SELECT currval('events_id_seq')")[0].as<int64_t>();
        if (i % 10 == 3) {
          tx.abort();
        } else {
          tx.commit();
          committed[w].push_back(id);
        }
      }
      ++writers_done;
    });
  }
  std::vector<int64_t> read;
  int64_t after = 0;
  for (;;) {
    const bool last_round = writers_done.load() == kWriters;
    auto events = log_->After({}, after, 37);
    ASSERT_TRUE(events.ok()) << events.status();
    for (const auto& e : *events) read.push_back(e.id());
    if (!events->empty()) after = events->back().id();
    if (last_round && events->empty()) break;
  }
  for (auto& t : writers) t.join();

  std::set<int64_t> expected;
  for (const auto& ids : committed) expected.insert(ids.begin(), ids.end());
  ASSERT_EQ(expected.size(), static_cast<size_t>(kWriters * kEach * 9 / 10));
  EXPECT_EQ(read, std::vector<int64_t>(expected.begin(), expected.end()));
}

}  // namespace
}  // namespace tether::controlplane
