// LeadershipLoop: a pro agent's leadership thread. It stands by, waiting its turn in the lock's
// queue and breaking a lease its leader stopped renewing; once it leads it renews the lease
// every `renew` and steps down the moment a renewal fails (its session or its epoch is gone).
// A renewal that hangs (a network that swallows packets without closing) cannot tell it
// anything, so a watchdog beside it stops the agent acting once the last renewal is older than
// `lease - renew`, before any standby may break the lease; should the renewal then come back
// with the epoch still its own, it acts again. Each change of role sets the agent's WriteFence
// first, then tells `on_change` (the agent reports its role and starts or stops acting), one
// change at a time. On stop it resigns, so a standby follows at once. Run() owns the thread;
// nothing else is called from outside.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/leadership/leadership.h"
#include "agent/leadership/write_fence.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/random.h"
#include "tether/v1/types.pb.h"

namespace tether::agent {

struct LeadershipLoopOptions {
  absl::Duration renew = absl::Seconds(1);        // the leader renews its lease this often
  absl::Duration lease = absl::Seconds(5);        // a lease this old is broken by a standby
  absl::Duration wait = absl::Milliseconds(500);  // a standby's turn in the lock's queue
  absl::Duration ready_poll = absl::Milliseconds(200);  // until the agent's tables exist
  common::BackoffPolicy retry{absl::Milliseconds(200), absl::Seconds(5)};  // PostgreSQL away
};

class LeadershipLoop {
 public:
  // `epoch`: the one this agent leads in (leader), or the last one it knew (standby).
  using RoleFn = std::function<void(v1::AgentRole role, int64_t epoch)>;

  // `ready` says when the shared database and the agent's tables are there.
  LeadershipLoop(LeadershipOptions leadership, WriteFence* fence, common::Clock* clock,
                 common::Random* random, std::function<bool()> ready, RoleFn on_change,
                 LeadershipLoopOptions options = {});

  void Run(const absl::Notification* stop);

 private:
  void Become(v1::AgentRole role, int64_t epoch) ABSL_LOCKS_EXCLUDED(mu_);
  v1::AgentRole role() const ABSL_LOCKS_EXCLUDED(mu_);
  // The watchdog's thread: stops acting on a lease the loop could not renew in time.
  void Watch(const absl::Notification* stop);

  Leadership leadership_;
  const std::string cluster_;
  WriteFence* fence_;
  common::Clock* clock_;
  common::Backoff backoff_;
  const std::function<bool()> ready_;
  const RoleFn on_change_;
  const LeadershipLoopOptions options_;
  // Held across on_change, so changes reach the agent one at a time and in order.
  mutable absl::Mutex mu_;
  v1::AgentRole role_ ABSL_GUARDED_BY(mu_) = v1::AGENT_ROLE_UNSPECIFIED;
  int64_t last_epoch_ ABSL_GUARDED_BY(mu_) = 0;   // led in, or last known
  int64_t leading_epoch_ ABSL_GUARDED_BY(mu_) = 0;  // the loop's, while its lease holds
  absl::Time renewed_ ABSL_GUARDED_BY(mu_);         // when the last good renewal was sent
};

}  // namespace tether::agent
