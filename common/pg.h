// PostgreSQL helpers over libpqxx: a small connection pool, libpqxx exceptions turned into
// absl::Status at this edge, identifier validation and quoting, and a SELECT 1 probe.
// PgPool is thread-safe; a pqxx::connection it lends is used by one thread at a time.
#pragma once

#include <pqxx/pqxx>

#include <deque>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace tether::common {

// Maps a libpqxx or standard exception to a canonical code: a lost connection is kUnavailable,
// a unique violation kAlreadyExists, a serialization failure kAborted, a lock or statement
// timeout kDeadlineExceeded, anything else kInternal.
absl::Status StatusFromException(const std::exception& e);

// Names that reach SQL as identifiers (databases, roles, schemas, tenants) must match
// [a-z][a-z0-9_]{0,62}. kInvalidArgument names `kind` and the offending value otherwise.
absl::Status ValidateIdentifier(absl::string_view kind, absl::string_view name);

// "name" with embedded quotes doubled; use after ValidateIdentifier.
std::string QuoteIdentifier(absl::string_view name);

// A bound timestamptz parameter: ISO 8601 in UTC with microseconds (use as $n::timestamptz).
std::string PgTimestamp(absl::Time t);
// SQL that reads a timestamptz column as microseconds since the epoch (a bigint).
std::string EpochMicrosSql(absl::string_view column);

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
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  // Runs fn(pqxx::connection&) -> absl::Status or absl::StatusOr<T> on a pooled connection.
  // Exceptions thrown by fn become a Status (see StatusFromException); a broken connection is
  // dropped instead of being returned to the pool.
  template <typename Fn>
  auto Run(Fn&& fn) -> std::invoke_result_t<Fn, pqxx::connection&> {
    auto conn = Acquire();
    if (!conn.ok()) return conn.status();
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
  absl::Mutex mu_;
  std::deque<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
  int open_ ABSL_GUARDED_BY(mu_) = 0;  // idle plus lent out
};

}  // namespace tether::common
