// Leadership: an advisory lock and a fencing epoch.
#include "agent/leadership/leadership.h"

#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "common/pg/errors.h"
#include "common/pg/pool.h"

namespace tether::agent {
namespace {

// The leadership connection notices a dead peer within seconds: keepalives from 2 s idle, every
// 1 s, 3 unanswered end it; unacknowledged data is given 5 s.
std::string WithKeepalives(const std::string& url) {
  return absl::StrCat(url, url.find('?') == std::string::npos ? "?" : "&",
                      "keepalives=1&keepalives_idle=2&keepalives_interval=1&keepalives_count=3"
                      "&tcp_user_timeout=5000&application_name=tether-leadership");
}

// The advisory lock key of a cluster's leadership (one bigint key: a space apart from the
// two-key locks of common/pg/lock_keys.h).
constexpr const char* kLockKey = "hashtextextended('tether-leader:' || $1, 0)";

}  // namespace

Leadership::Leadership(LeadershipOptions options) : options_(std::move(options)) {}

Leadership::~Leadership() { Resign(); }

absl::StatusOr<int64_t> Leadership::TryLead() {
  if (epoch_ != 0 && StillLeads()) return epoch_;
  Resign();
  auto conn = common::Connect(WithKeepalives(options_.url));
  if (!conn.ok()) return conn.status();
  try {
    {
      pqxx::nontransaction tx(**conn);
      if (!tx.exec_params1(absl::StrCat("SELECT pg_try_advisory_lock(", kLockKey, ")"),
                           options_.cluster)[0]
               .as<bool>()) {
        return 0;
      }
    }
    pqxx::work tx(**conn);
    const int64_t epoch =
        tx.exec_params1(
              "INSERT INTO leadership (cluster, epoch, leader) VALUES ($1, 1, $2) "
              "ON CONFLICT (cluster) DO UPDATE SET epoch = leadership.epoch + 1, "
              "leader = EXCLUDED.leader, since = now() RETURNING epoch",
              options_.cluster, options_.agent)[0]
            .as<int64_t>();
    tx.commit();
    conn_ = *std::move(conn);
    epoch_ = epoch;
    return epoch_;
  } catch (const std::exception& e) {
    return common::StatusFromException(e);
  }
}

bool Leadership::StillLeads() {
  if (conn_ == nullptr || epoch_ == 0) return false;
  try {
    pqxx::nontransaction tx(*conn_);
    auto row = tx.exec_params("SELECT epoch FROM leadership WHERE cluster = $1", options_.cluster);
    if (!row.empty() && row[0][0].as<int64_t>() == epoch_) return true;
  } catch (const std::exception&) {
    // The connection is gone, and the lock with it.
  }
  Resign();
  return false;
}

void Leadership::Resign() {
  conn_.reset();
  epoch_ = 0;
}

int Leadership::backend_pid() const { return conn_ == nullptr ? 0 : conn_->backendpid(); }

absl::Status Fence(pqxx::transaction_base& tx, const std::string& cluster, int64_t epoch) {
  try {
    tx.exec_params("SELECT tether_fence($1, $2)", cluster, epoch);
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
