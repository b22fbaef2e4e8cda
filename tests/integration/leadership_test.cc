// Leadership against a real PostgreSQL: of two agents on one database one leads; when the
// leader's session dies the other takes over with the next epoch, and the deposed leader's
// late write is refused by the database (fencing), writing nothing.
#include "agent/leadership/leadership.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "absl/strings/match.h"
#include "tests/testing/server_admin.h"

namespace tether::agent {
namespace {

class LeadershipTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = testing::FreshAgentDatabase();
    ASSERT_FALSE(url_.empty());
  }

  Leadership Agent(const std::string& name) { return Leadership({url_, "shop", name}); }

  // A leader's step: a fenced write of `value` into agent_state.
  absl::Status Write(int64_t epoch, const std::string& value) {
    pqxx::connection c(url_);
    pqxx::work tx(c);
    if (auto st = Fence(tx, "shop", epoch); !st.ok()) return st;
    tx.exec_params("INSERT INTO agent_state (key, value) VALUES ($1, $1)", value);
    tx.commit();
    return absl::OkStatus();
  }

  int64_t Rows() {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    return tx.exec1("SELECT count(*) FROM agent_state")[0].as<int64_t>();
  }

  std::string url_;
};

TEST_F(LeadershipTest, OneLeadsAndADeposedLeadersLateWriteIsRefused) {
  Leadership a = Agent("a1");
  Leadership b = Agent("a2");
  auto ea = a.TryLead();
  ASSERT_TRUE(ea.ok()) << ea.status();
  EXPECT_EQ(*ea, 1);
  auto eb = b.TryLead();
  ASSERT_TRUE(eb.ok()) << eb.status();
  EXPECT_EQ(*eb, 0);  // a1 leads
  EXPECT_TRUE(a.StillLeads());
  EXPECT_TRUE(Write(1, "a1-step").ok());

  // a1's session dies (as when its process is killed or its network is cut); with a timeout,
  // pg_terminate_backend returns once the backend is gone, its lock released.
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    EXPECT_TRUE(
        tx.exec_params1("SELECT pg_terminate_backend($1, 60000)", a.backend_pid())[0].as<bool>());
  }
  // The lock goes with the session: a2 takes over with the next epoch.
  eb = b.TryLead();
  ASSERT_TRUE(eb.ok()) << eb.status();
  EXPECT_EQ(*eb, 2);

  // a1 writes late, still believing it leads: the database refuses.
  const int64_t before = Rows();
  absl::Status late = Write(1, "a1-late");
  EXPECT_EQ(late.code(), absl::StatusCode::kFailedPrecondition) << late;
  EXPECT_TRUE(absl::StartsWith(late.message(), "fenced: epoch 1 of cluster shop is over"))
      << late.message();
  EXPECT_EQ(Rows(), before);
  EXPECT_FALSE(a.StillLeads());
  EXPECT_TRUE(Write(2, "a2-step").ok());

  // a2 resigns; a1 leads again, in epoch 3.
  b.Resign();
  ea = a.TryLead();
  ASSERT_TRUE(ea.ok()) << ea.status();
  EXPECT_EQ(*ea, 3);
  EXPECT_EQ(Write(2, "a2-late").code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tether::agent
