// PostgreSQL connections over libpqxx: connecting, a SELECT 1 probe, connection URLs, bound
// timestamps, and a small connection pool. PgPool is thread-safe; a pqxx::connection it lends
// is used by one thread at a time.
#pragma once

#include <pqxx/pqxx>

#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/pg/errors.h"

namespace tether::common {

// A bound timestamptz parameter: ISO 8601 in UTC with microseconds (use as $n::timestamptz).
std::string PgTimestamp(absl::Time t);
// SQL that reads a timestamptz column as microseconds since the epoch (a bigint).
std::string EpochMicrosSql(absl::string_view column);

// `url` (a postgresql:// URI or a key=value string) with its database replaced by `dbname`.
std::string WithDatabase(const std::string& url, const std::string& dbname);
// `url` with connection parameter `key` set to `value` (a later one wins over an earlier one).
std::string WithParameter(const std::string& url, const std::string& key, const std::string& value);
// `url` with TCP keepalives from `idle_s` seconds idle, every `interval_s`, ended after `count`
// unanswered, and `application_name` (how the session shows in pg_stat_activity): for a
// connection that waits long (a lock, LISTEN) and must notice a dead network in seconds.
std::string WithKeepalives(const std::string& url, int idle_s, int interval_s, int count,
                           const std::string& application_name);
// `url` with libpq `options` added (e.g. "-c search_path=acme"); the value must need no quoting.
std::string WithOptions(const std::string& url, const std::string& options);

// Opens a connection. kUnavailable when the server does not answer.
absl::StatusOr<std::unique_ptr<pqxx::connection>> Connect(const std::string& url);

struct PingResult {
  absl::Duration select1_latency;
  std::string server_version;  // e.g. "15.18"
};
// Connects, runs SELECT 1 and reads server_version. kUnavailable when it cannot.
absl::StatusOr<PingResult> Ping(const std::string& url);

class PgPool {
 public:
  PgPool(std::string url, int max_connections);

  // Called after each Run gets its connection, with how long that took (a wait for a free one,
  // or opening a new one). Set before the pool is shared.
  void set_wait_observer(std::function<void(absl::Duration)> observer) {
    wait_observer_ = std::move(observer);
  }
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // Runs fn(pqxx::connection&) -> absl::Status or absl::StatusOr<T> on a pooled connection.
  // Exceptions thrown by fn become a Status (see StatusFromException); a broken connection is
  // dropped instead of being returned to the pool.
  template <typename Fn>
  auto Run(Fn&& fn) -> std::invoke_result_t<Fn, pqxx::connection&> {
    const absl::Time asked = absl::Now();
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
    if (wait_observer_) wait_observer_(absl::Now() - asked);
    try {
      auto result = fn(**conn);
      Release(std::move(*conn));
      return result;
    } catch (const std::exception& e) {
      absl::Status status = StatusFromException(e);
      Release(std::move(*conn));
      return status;
    }
  }

 private:
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Acquire();
  void Release(std::unique_ptr<pqxx::connection> conn);

  const std::string url_;
  const int max_connections_;
  std::function<void(absl::Duration)> wait_observer_;
  absl::Mutex mu_;
  std::deque<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle plus lent out
};

}  // namespace tether::common
