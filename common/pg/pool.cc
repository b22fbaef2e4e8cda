// Connections, the pool, URLs.
#include "common/pg/pool.h"

#include "absl/strings/str_cat.h"
#include "common/url.h"

namespace tether::common {

std::string PgTimestamp(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

std::string EpochMicrosSql(absl::string_view column) {
  return absl::StrCat("(extract(epoch FROM ", column, ") * 1000000)::bigint");
}

namespace {

bool IsUri(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

}  // namespace

std::string WithParameter(const std::string& url, const std::string& key, const std::string& value) {
  if (IsUri(url)) {
    return absl::StrCat(url, url.find('?') == std::string::npos ? "?" : "&", key, "=",
                        PercentEncode(value));
  }
  return absl::StrCat(url, url.empty() ? "" : " ", key, "='", value, "'");
}

std::string WithKeepalives(const std::string& url, int idle_s, int interval_s, int count,
                           const std::string& application_name) {
  std::string out = WithParameter(url, "keepalives", "1");
  out = WithParameter(out, "keepalives_idle", absl::StrCat(idle_s));
  out = WithParameter(out, "keepalives_interval", absl::StrCat(interval_s));
  out = WithParameter(out, "keepalives_count", absl::StrCat(count));
  return WithParameter(out, "application_name", application_name);
}

std::string WithDatabase(const std::string& url, const std::string& dbname) {
  return WithParameter(url, "dbname", dbname);  // a later dbname wins over the URI's path
}

std::string WithOptions(const std::string& url, const std::string& options) {
  return WithParameter(url, "options", options);
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect(const std::string& url) {
  try {
    return std::make_unique<pqxx::connection>(url);
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
}

absl::StatusOr<PingResult> Ping(const std::string& url) {
  auto conn = Connect(url);
  if (!conn.ok()) return conn.status();
  try {
    pqxx::nontransaction tx(**conn);
    const absl::Time start = absl::Now();
    tx.exec1("SELECT 1");
    const absl::Duration latency = absl::Now() - start;
    std::string version = tx.exec1("SHOW server_version")[0].as<std::string>();
    // "15.18 (Debian 15.18-0+deb12u1)" → "15.18"
    version = version.substr(0, version.find(' '));
    return PingResult{latency, version};
  } catch (const std::exception& e) {
    return StatusFromException(e);
  }
}

PgPool::PgPool(std::string url, int max_connections)
    : url_(std::move(url)), max_connections_(max_connections) {}

namespace {

// An idle connection whose server went away (a restart closed it) is found out by reading what
// is waiting on its socket, without a round trip: lent out, it would fail its caller's first
// statement.
bool StillOpen(pqxx::connection& conn) {
  try {
    conn.get_notifs();
    return conn.is_open();
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<pqxx::connection>> PgPool::Acquire() {
  for (;;) {
    std::unique_ptr<pqxx::connection> idle;
    {
      absl::MutexLock lock(&mu_);
      auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !idle_.empty() || open_ < max_connections_;
      };
      if (!mu_.AwaitWithTimeout(absl::Condition(&available), absl::Seconds(30))) {
        return absl::UnavailableError("database connection pool exhausted for 30s");
      }
      if (idle_.empty()) {
        ++open_;
        break;
      }
      idle = std::move(idle_.front());
      idle_.pop_front();
    }
    if (StillOpen(*idle)) return idle;
    absl::MutexLock lock(&mu_);
    --open_;  // dropped: the next one, or a new connection
  }
  auto conn = Connect(url_);
  if (!conn.ok()) {
    absl::MutexLock lock(&mu_);
    --open_;
  }
  return conn;
}

void PgPool::Release(std::unique_ptr<pqxx::connection> conn) {
  absl::MutexLock lock(&mu_);
  if (conn != nullptr && conn->is_open()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

}  // namespace tether::common
