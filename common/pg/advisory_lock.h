// AdvisoryLock: a PostgreSQL session-level advisory lock held on a connection of its own for
// as long as the object lives (the migrator's lock; leadership will use the same). Taken by
// polling pg_try_advisory_lock rather than blocking in pg_advisory_lock, so a waiter holds no
// open transaction (CREATE INDEX CONCURRENTLY in the lock holder waits for every open
// transaction, and would deadlock with a blocked waiter) and can give up on a deadline.
// Released on destruction, or by PostgreSQL when the connection dies. Used by one thread.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace tether::common {

struct AdvisoryLockOptions {
  absl::Duration wait = absl::Minutes(10);     // give up after this long
  absl::Duration poll = absl::Milliseconds(100);
  std::function<void()> on_wait;  // called once, when the lock is busy at the first try
};

class AdvisoryLock {
 public:
  // Connects to `url` and takes lock (key1, key2) on that connection. kUnavailable when the
  // database does not answer; kDeadlineExceeded when the lock stays busy for options.wait.
  static absl::StatusOr<std::unique_ptr<AdvisoryLock>> Acquire(const std::string& url,
                                                               int32_t key1, int32_t key2,
                                                               const AdvisoryLockOptions& options,
                                                               Clock* clock);
  ~AdvisoryLock();
  AdvisoryLock(const AdvisoryLock&) = delete;
  AdvisoryLock& operator=(const AdvisoryLock&) = delete;

  // The connection that holds the lock; work done on it runs under the lock.
  pqxx::connection& conn() { return *conn_; }

 private:
  AdvisoryLock(std::unique_ptr<pqxx::connection> conn, int32_t key1, int32_t key2)
      : conn_(std::move(conn)), key1_(key1), key2_(key2) {}
  std::unique_ptr<pqxx::connection> conn_;
  int32_t key1_;
  int32_t key2_;
};

}  // namespace tether::common
