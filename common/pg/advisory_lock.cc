// AdvisoryLock: poll, hold, release.
#include "common/pg/advisory_lock.h"

#include "common/pg/errors.h"
#include "common/pg/pool.h"

namespace tether::common {

absl::StatusOr<std::unique_ptr<AdvisoryLock>> AdvisoryLock::Acquire(
    const std::string& url, int32_t key1, int32_t key2, const AdvisoryLockOptions& options,
    Clock* clock) {
  auto conn = Connect(url);
  if (!conn.ok()) return conn.status();
  std::unique_ptr<AdvisoryLock> lock(new AdvisoryLock(*std::move(conn), key1, key2));
  try {
    const absl::Time deadline = clock->Now() + options.wait;
    bool announced = false;
    for (;;) {
      pqxx::nontransaction tx(*lock->conn_);
      if (tx.exec_params1("SELECT pg_try_advisory_lock($1, $2)", key1, key2)[0].as<bool>()) {
        return lock;
      }
      if (!announced && options.on_wait) options.on_wait();
      announced = true;
      if (clock->Now() >= deadline) {
        lock->conn_.reset();  // never held: nothing to release
        return absl::DeadlineExceededError("lock is busy");
      }
      clock->SleepFor(options.poll, nullptr);
    }
  } catch (const std::exception& e) {
    lock->conn_.reset();
    return StatusFromException(e);
  }
}

AdvisoryLock::~AdvisoryLock() {
  if (conn_ == nullptr) return;
  try {
    pqxx::nontransaction tx(*conn_);
    tx.exec_params("SELECT pg_advisory_unlock($1, $2)", key1_, key2_);
  } catch (const std::exception&) {
    // The lock dies with the connection anyway.
  }
}

}  // namespace tether::common
