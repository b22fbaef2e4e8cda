// EventLog: the append-only log of what happened (registrations, losses, tokens), stored in
// the events table, listed by id and followed live. Thread-safe.
// Followers are woken through the ChangeBus when an append is published, and look at the table
// every second anyway.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "controlplane/fanout/change_bus.h"
#include "tether/v1/types.pb.h"

namespace tether::controlplane {

class EventLog {
 public:
  // Publishes appends on `bus` and wakes its followers on the appends `bus` reports (this
  // replica's, and with replicas every other's).
  EventLog(common::PgPool* pool, common::Clock* clock, ChangeBus* bus);
  ~EventLog();

  // Adds an event inside the caller's transaction; call Notify() after the commit.
  // Appends take a transaction-level lock so that event ids become visible in id order (a
  // follower reading "id > last" then never skips one that commits late). Append only as the
  // last statements of a transaction, so the lock is held briefly and never while waiting on
  // row locks.
  static void Append(pqxx::transaction_base& tx, const std::string& cluster,
                     const std::string& agent, const std::string& kind,
                     const std::string& message);
  // Adds an event in its own transaction and wakes followers.
  absl::Status Append(const std::string& cluster, const std::string& agent,
                      const std::string& kind, const std::string& message);
  // Wakes followers after a commit that appended events.
  void Notify();

  // The newest `limit` events with id > after_id (of `cluster` unless empty), oldest first.
  absl::StatusOr<std::vector<v1::Event>> List(const std::string& cluster, int64_t after_id,
                                              int limit);

  // Blocks until there are events with id > after_id, `cancelled()` returns true or
  // `max_wait` passes; returns what there is (possibly nothing).
  absl::StatusOr<std::vector<v1::Event>> WaitForNew(const std::string& cluster, int64_t after_id,
                                                    absl::Duration max_wait,
                                                    const std::function<bool()>& cancelled);

 private:
  // Up to `limit` events after after_id: the newest ones when `newest`, else the oldest ones.
  absl::StatusOr<std::vector<v1::Event>> Fetch(const std::string& cluster, int64_t after_id,
                                               int limit, bool newest);

  common::PgPool* pool_;
  common::Clock* clock_;
  ChangeBus* bus_;
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  uint64_t appended_ ABSL_GUARDED_BY(mu_) = 0;  // bumped on every Notify
};

}  // namespace tether::controlplane
