// Leadership (pro mode): of the agents of one cluster sharing a PostgreSQL, one leads. It holds
// a session-level advisory lock on a connection of its own (TCP keepalives and a user timeout
// on both ends of it, so a silent network death ends the session in seconds) and, in the
// transaction that follows taking the lock, bumps the cluster's fencing epoch (the `leadership`
// table). Every transaction a leader writes in starts with Fence(): the database refuses it
// once the epoch has moved on, so a deposed leader's late write fails rather than being skipped
// by good manners.
//
// A leader renews a lease in the same row every second. A standby waits for the lock in the
// server's lock queue (so a leader whose session ends is followed at once) and, between waits,
// looks at the lease: one not renewed for longer than the lease time belongs to a leader that
// is cut off without its session having ended, and the standby ends that session
// (pg_terminate_backend of the lock's holder) and takes over.
// Thread-compatible: one thread drives an instance; Fence is a free function.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tether::agent {

struct LeadershipOptions {
  std::string url;      // the shared database (the agent's own schema lives in it)
  std::string cluster;
  std::string agent;    // this agent's name, recorded as the leader
};

class Leadership {
 public:
  explicit Leadership(LeadershipOptions options);
  ~Leadership();

  // Leads if no other agent of the cluster does, waiting up to `wait` in the lock's queue: the
  // epoch this agent leads in, or 0 when another agent still holds leadership. Leading already,
  // renews and returns its epoch. kUnavailable when PostgreSQL does not answer.
  absl::StatusOr<int64_t> TryLead(absl::Duration wait = absl::ZeroDuration());
  // Renews the lease: true while the connection is alive and the cluster's epoch is ours.
  // Otherwise resigns (the connection is closed) and returns false.
  bool StillLeads();
  // For a standby: when the cluster's lease has not been renewed for `lease`, ends the session
  // that holds the leadership lock and returns its leader's name ("" when nothing was stale).
  absl::StatusOr<std::string> BreakStaleLease(absl::Duration lease);
  // 0 unless leading.
  int64_t epoch() const { return epoch_; }
  // The schema of the agent's own tables and tether_fence (read when it first leads).
  const std::string& own_schema() const { return own_schema_; }
  // Gives leadership up: the connection, and with it the lock, is closed.
  void Resign();
  // The backend of the leadership connection (0 when none), for operators and tests.
  int backend_pid() const;

 private:
  absl::Status Connect();

  const LeadershipOptions options_;
  std::unique_ptr<pqxx::connection> conn_;
  int64_t epoch_ = 0;
  std::string own_schema_;
};

// The first statement of a transaction a leader writes in: kFailedPrecondition ("fenced: …")
// when `epoch` is no longer the cluster's (the transaction is then aborted by PostgreSQL).
// `schema` names where the agent's own objects are (Leadership::own_schema()), for a
// transaction whose search path leads elsewhere; "" finds them on the search path.
absl::Status Fence(pqxx::transaction_base& tx, const std::string& cluster, int64_t epoch,
                   const std::string& schema = "");

}  // namespace tether::agent
