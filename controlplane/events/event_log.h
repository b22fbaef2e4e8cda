// EventLog: the append-only log of what happened (registrations, losses, tokens), stored in
// the events table, listed by id and followed live. Thread-safe.
// An append is published on the ChangeBus (Notify) so that followers read what is new.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "controlplane/fanout/change_bus.h"
#include "tether/v1/types.pb.h"

namespace tether::controlplane {

class EventLog {
 public:
  // Publishes appends on `bus`.
  EventLog(common::PgPool* pool, common::Clock* clock, ChangeBus* bus);

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

  // The most events one List returns.
  static constexpr int kMaxPage = 1000;

  // The newest `limit` events with after_id < id < before_id (before_id 0: no bound), of
  // `cluster` unless empty, oldest first.
  absl::StatusOr<std::vector<v1::Event>> List(const std::string& cluster, int64_t after_id,
                                              int limit, int64_t before_id = 0);

  // The oldest `limit` events with id > after_id (of `cluster` unless empty): what a
  // follower reads next.
  absl::StatusOr<std::vector<v1::Event>> After(const std::string& cluster, int64_t after_id,
                                               int limit);

 private:
  // Up to `limit` events after after_id: the newest ones when `newest`, else the oldest ones.
  absl::StatusOr<std::vector<v1::Event>> Fetch(const std::string& cluster, int64_t after_id,
                                               int64_t before_id, int limit, bool newest);

  common::PgPool* pool_;
  common::Clock* clock_;
  ChangeBus* bus_;
};

}  // namespace tether::controlplane
