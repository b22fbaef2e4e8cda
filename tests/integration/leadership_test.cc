// Leadership against a real PostgreSQL: of two agents on one database one leads; when the
// leader's session dies, or its lease is not renewed, the other takes over with the next
// epoch, and the deposed leader's late write is refused by the database (fencing), writing
// nothing — a bare write, or an agent's tenant records behind its WriteFence.
#include "agent/leadership/leadership.h"
#include "agent/leadership/write_fence.h"
#include "agent/tenants/pg_tenant_records.h"

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "absl/strings/match.h"
#include "absl/time/time.h"
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

  // a2 resigns; a1, waiting its turn in the lock's queue, leads again in epoch 3.
  b.Resign();
  ea = a.TryLead(absl::Minutes(1));
  ASSERT_TRUE(ea.ok()) << ea.status();
  EXPECT_EQ(*ea, 3);
  EXPECT_EQ(Write(2, "a2-late").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LeadershipTest, AStandbyWaitsItsTurnAndBreaksALeaseNoLongerRenewed) {
  Leadership a = Agent("a1");
  Leadership b = Agent("a2");
  ASSERT_EQ(*a.TryLead(), 1);
  // a1 holds the lock: a2's wait in the queue ends without it.
  auto eb = b.TryLead(absl::Milliseconds(50));
  ASSERT_TRUE(eb.ok()) << eb.status();
  EXPECT_EQ(*eb, 0);
  // A lease renewed just now is not broken.
  ASSERT_TRUE(a.StillLeads());
  auto broken = b.BreakStaleLease(absl::Seconds(5));
  ASSERT_TRUE(broken.ok()) << broken.status();
  EXPECT_EQ(*broken, "");
  EXPECT_TRUE(a.StillLeads());

  // a1 stops renewing (as when a proxy between it and the database stops forwarding without
  // closing): the lease ages past the lease time, and a2 ends a1's session and leads.
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    tx.exec("UPDATE leadership_leases SET renewed_at = now() - interval '1 minute'");
  }
  broken = b.BreakStaleLease(absl::Seconds(5));
  ASSERT_TRUE(broken.ok()) << broken.status();
  EXPECT_EQ(*broken, "a1");
  eb = b.TryLead(absl::Minutes(1));
  ASSERT_TRUE(eb.ok()) << eb.status();
  EXPECT_EQ(*eb, 2);
  EXPECT_FALSE(a.StillLeads());
  EXPECT_EQ(a.epoch(), 0);
  EXPECT_EQ(Write(1, "a1-late").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LeadershipTest, AFencedAgentsRecordsAreRefusedAndUnchanged) {
  WriteFence fence;
  fence.set_cluster("shop");
  PgTenantRecords records(url_, &fence);
  TenantRecord record;
  record.name = "acme";
  record.state = v1::TENANT_STATE_READY;
  record.version = 3;

  // Standing by: refused before the database is asked.
  absl::Status st = records.Put(record);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "does not lead cluster shop")) << st.message();
  EXPECT_TRUE(records.List()->empty());

  Leadership a = Agent("a1");
  ASSERT_EQ(*a.TryLead(), 1);
  fence.set_epoch(1);
  ASSERT_TRUE(records.Put(record).ok());

  // Another agent takes over; this one has not noticed yet: its write is refused by the
  // database, and the record stays as it was.
  {
    pqxx::connection c(url_);
    pqxx::nontransaction tx(c);
    tx.exec_params1("SELECT pg_terminate_backend($1, 60000)", a.backend_pid());
  }
  Leadership b = Agent("a2");
  ASSERT_EQ(*b.TryLead(absl::Minutes(1)), 2);
  record.version = 4;
  st = records.Put(record);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_TRUE(absl::StartsWith(st.message(), "fenced: epoch 1 of cluster shop is over"))
      << st.message();
  EXPECT_EQ(records.List()->at("acme").version, 3);
  EXPECT_EQ(records.Remove("acme").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(records.List()->size(), 1u);
}

}  // namespace
}  // namespace tether::agent
