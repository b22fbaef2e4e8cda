// Leadership (pro mode): of the agents of one cluster sharing a PostgreSQL, one leads. It holds
// a session-level advisory lock on a connection of its own (TCP keepalives and a user timeout
// on it, so a silent network death ends the session in seconds) and, in the transaction that
// follows taking the lock, bumps the cluster's fencing epoch (the `leadership` table). Every
// transaction a leader writes in starts with Fence(): the database refuses it once the epoch
// has moved on, so a deposed leader's late write fails rather than being skipped by good
// manners. Thread-compatible: one thread drives an instance; Fence is a free function.
#pragma once

#include <pqxx/pqxx>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

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

  // Leads if no other agent of the cluster does: the epoch this agent leads in, or 0 when
  // another agent holds leadership. Leading already, returns its epoch. kUnavailable when
  // PostgreSQL does not answer.
  absl::StatusOr<int64_t> TryLead();
  // Still the leader: the connection is alive and the cluster's epoch is ours. Call before
  // each step that writes.
  bool StillLeads();
  // 0 unless leading.
  int64_t epoch() const { return epoch_; }
  // Gives leadership up: the connection, and with it the lock, is closed.
  void Resign();
  // The backend of the leadership connection (0 when none), for operators and tests.
  int backend_pid() const;

 private:
  const LeadershipOptions options_;
  std::unique_ptr<pqxx::connection> conn_;
  int64_t epoch_ = 0;
};

// The first statement of a transaction a leader writes in: kFailedPrecondition ("fenced: …")
// when `epoch` is no longer the cluster's (the transaction is then aborted by PostgreSQL).
absl::Status Fence(pqxx::transaction_base& tx, const std::string& cluster, int64_t epoch);

}  // namespace tether::agent
