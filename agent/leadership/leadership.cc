// Leadership: an advisory lock, a lease and a fencing epoch.
#include "agent/leadership/leadership.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/pg/errors.h"
#include "common/pg/pool.h"

namespace tether::agent {
namespace {

// The leadership connection notices a dead peer within seconds: keepalives from 2 s idle, every
// 1 s, 3 unanswered end it; unacknowledged data is given 5 s. The server is asked the same for
// its side (the options below), so a leader whose network dies loses its session, and the lock,
// in seconds rather than the kernel's two hours.
std::string LeadershipUrl(const std::string& url) {
  const std::string client = common::WithParameter(
      common::WithKeepalives(url, 2, 1, 3, "tether-leadership"), "tcp_user_timeout", "5000");
  return common::WithOptions(client, "-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 "
                                     "-c tcp_keepalives_count=3 -c tcp_user_timeout=5000");
}

// The advisory lock key of a cluster's leadership (one bigint key: a space apart from the
// two-key locks of common/pg/lock_keys.h).
constexpr const char* kLockKey = "hashtextextended('tether-leader:' || $1, 0)";

std::string Millis(absl::Duration d) { return absl::StrCat(absl::ToInt64Milliseconds(d)); }

}  // namespace

Leadership::Leadership(LeadershipOptions options) : options_(std::move(options)) {}

Leadership::~Leadership() { Resign(); }

absl::Status Leadership::Connect() {
  if (conn_ != nullptr && conn_->is_open()) return absl::OkStatus();
  auto conn = common::Connect(LeadershipUrl(options_.url));
  if (!conn.ok()) return conn.status();
  conn_ = *std::move(conn);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Leadership::TryLead(absl::Duration wait) {
  if (epoch_ != 0) {
    if (StillLeads()) return epoch_;
  }
  if (auto st = Connect(); !st.ok()) return st;
  try {
    {
      pqxx::nontransaction tx(*conn_);
      if (wait <= absl::ZeroDuration()) {
        if (!tx.exec_params1(absl::StrCat("SELECT pg_try_advisory_lock(", kLockKey, ")"),
                             options_.cluster)[0]
                 .as<bool>()) {
          return 0;
        }
      } else {
        // In the lock's queue: granted the moment the leader's session ends.
        tx.exec(absl::StrCat("SET lock_timeout = ", Millis(wait)));
        try {
          tx.exec_params(absl::StrCat("SELECT pg_advisory_lock(", kLockKey, ")"),
                         options_.cluster);
        } catch (const pqxx::sql_error& e) {
          if (e.sqlstate() == "55P03") return 0;  // lock_not_available: someone leads
          throw;
        }
      }
    }
    pqxx::work tx(*conn_);
    tx.exec("SET LOCAL lock_timeout = 0");
    // Waits for the old leader's fenced transactions under way: they commit in its epoch or
    // not at all.
    const int64_t epoch =
        tx.exec_params1(
              "INSERT INTO leadership (cluster, epoch, leader) VALUES ($1, 1, $2) "
              "ON CONFLICT (cluster) DO UPDATE SET epoch = leadership.epoch + 1, "
              "leader = EXCLUDED.leader, since = now() RETURNING epoch",
              options_.cluster, options_.agent)[0]
            .as<int64_t>();
    own_schema_ = tx.exec1("SELECT n.nspname FROM pg_proc p JOIN pg_namespace n "
                           "ON n.oid = p.pronamespace "
                           "WHERE p.oid = 'tether_fence(text, bigint)'::regprocedure")[0]
                      .as<std::string>();
    tx.exec_params(
        "INSERT INTO leadership_leases (cluster, leader, holder_pid, renewed_at) "
        "VALUES ($1, $2, pg_backend_pid(), now()) ON CONFLICT (cluster) DO UPDATE SET "
        "leader = EXCLUDED.leader, holder_pid = EXCLUDED.holder_pid, renewed_at = now()",
        options_.cluster, options_.agent);
    tx.commit();
    epoch_ = epoch;
    return epoch_;
  } catch (const std::exception& e) {
    Resign();
    return common::StatusFromException(e);
  }
}

bool Leadership::StillLeads() {
  if (conn_ == nullptr || epoch_ == 0) return false;
  try {
    pqxx::nontransaction tx(*conn_);
    // Renewed only while the lease is this session's and the epoch ours (read, not locked).
    auto rows = tx.exec_params(
        "UPDATE leadership_leases SET renewed_at = now() "
        "WHERE cluster = $1 AND holder_pid = pg_backend_pid() "
        "AND (SELECT epoch FROM leadership WHERE cluster = $1) = $2 RETURNING 1",
        options_.cluster, epoch_);
    if (!rows.empty()) return true;
  } catch (const std::exception&) {
    // The connection is gone, and the lock with it.
  }
  Resign();
  return false;
}

absl::StatusOr<std::string> Leadership::BreakStaleLease(absl::Duration lease) {
  if (epoch_ != 0) return std::string();
  if (auto st = Connect(); !st.ok()) return st;
  try {
    pqxx::nontransaction tx(*conn_);
    // The backend holding the lock (a bigint key is split into classid and objid, objsubid 1),
    // when the lease of the cluster's leader is older than `lease` by the server's clock.
    auto rows = tx.exec_params(
        absl::StrCat(
            "SELECT k.pid, s.leader FROM leadership_leases s, pg_locks k "
            "WHERE s.cluster = $1 AND s.renewed_at < now() - make_interval(secs => $2 / 1000.0) "
            "AND k.locktype = 'advisory' AND k.granted AND k.objsubid = 1 "
            "AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((k.classid::bigint << 32) | k.objid::bigint) = ",
            kLockKey),
        options_.cluster, absl::ToInt64Milliseconds(lease));
    if (rows.empty()) return std::string();
    const int pid = rows[0][0].as<int>();
    const std::string leader = rows[0][1].as<std::string>();
    // With a timeout: returns once that backend is gone and the lock free.
    tx.exec_params("SELECT pg_terminate_backend($1, 5000)", pid);
    return leader;
  } catch (const std::exception& e) {
    Resign();
    return common::StatusFromException(e);
  }
}

void Leadership::Resign() {
  conn_.reset();
  epoch_ = 0;
}

int Leadership::backend_pid() const { return conn_ == nullptr ? 0 : conn_->backendpid(); }

absl::Status Fence(pqxx::transaction_base& tx, const std::string& cluster, int64_t epoch,
                   const std::string& schema) {
  try {
    tx.exec_params(absl::StrCat("SELECT ", schema.empty() ? "" : tx.quote_name(schema) + ".",
                                "tether_fence($1, $2)"),
                   cluster, epoch);
    return absl::OkStatus();
  } catch (const pqxx::sql_error& e) {
    if (e.sqlstate() == "TF001") {
      std::string message = e.what();
      if (const size_t nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
      if (message.rfind("ERROR:  ", 0) == 0) message = message.substr(8);
      return absl::FailedPreconditionError(message);
    }
    return common::StatusFromException(e);
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

}  // namespace tether::agent
