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

// Who caused what is being recorded, and from which peer address. An RPC handler sets it for
// the length of its request (ScopedActor, on the handler's thread); every event appended on
// that thread meanwhile carries it. Unset: the mothership itself (a sweep, a leader change).
struct Actor {
  std::string who;   // "operator:<token id>" or "agent:<agent id>"
  std::string peer;  // gRPC's peer, e.g. "ipv4:10.0.0.7:51234"
};

class ScopedActor {
 public:
  explicit ScopedActor(Actor actor);
  ~ScopedActor();
  ScopedActor(const ScopedActor&) = delete;
  ScopedActor& operator=(const ScopedActor&) = delete;

 private:
  Actor actor_;
  const Actor* previous_;
};

// The actor of this thread's request; empty when none.
const Actor& CurrentActor();

// Which events a listing returns: all but what a set field leaves out.
struct EventFilter {
  std::string cluster;
  std::string kind;   // exact, or a prefix ending in '*' ("agent.*")
  std::string actor;  // a whole actor ("operator:ab12") or its id alone ("ab12")
};

// Events a transaction decides on as it goes (in a loop that still takes row locks), appended
// together as its last statements, as EventLog::Append asks.
class PendingEvents {
 public:
  void Add(std::string cluster, std::string agent, std::string kind, std::string message);
  // Appends them in `tx` and forgets them; whether there were any (then call
  // EventLog::Notify() after the commit).
  bool AppendTo(pqxx::transaction_base& tx);

 private:
  struct Pending {
    std::string cluster, agent, kind, message;
  };
  std::vector<Pending> events_;
};

class EventLog {
 public:
  // Publishes appends on `bus`.
  EventLog(common::PgPool* pool, common::Clock* clock, ChangeBus* bus);

  // Adds an event inside the caller's (read committed) transaction; call Notify() after the
  // commit. Appenders hold a lock shared to their commit, so they never wait for each other;
  // a reader takes it exclusively for a moment and reads only ids every appender is done with,
  // so a follower reading "id > last" never skips an id that commits late. Append only as the
  // last statements of a transaction: a reader waits for the appenders under way.
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

  // The newest `limit` events with after_id < id < before_id (before_id 0: no bound) that
  // `filter` lets through, oldest first. kInvalidArgument when the filter's cluster is not a
  // valid cluster name.
  absl::StatusOr<std::vector<v1::Event>> List(const EventFilter& filter, int64_t after_id,
                                              int limit, int64_t before_id = 0);

  // The oldest `limit` events with id > after_id that `filter` lets through: what a follower
  // reads next. kInvalidArgument as List.
  absl::StatusOr<std::vector<v1::Event>> After(const EventFilter& filter, int64_t after_id,
                                               int limit);

 private:
  // Up to `limit` events after after_id: the newest ones when `newest`, else the oldest ones.
  absl::StatusOr<std::vector<v1::Event>> Fetch(const EventFilter& filter, int64_t after_id,
                                               int64_t before_id, int limit, bool newest);

  // The highest id below which every event is committed or rolled back for good.
  static int64_t SettledId(pqxx::connection& c);

  common::PgPool* pool_;
  common::Clock* clock_;
  ChangeBus* bus_;
};

}  // namespace tether::controlplane
