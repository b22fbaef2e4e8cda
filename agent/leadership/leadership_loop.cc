// LeadershipLoop.
#include "agent/leadership/leadership_loop.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "absl/strings/escaping.h"
#include "common/logging.h"

namespace tether::agent {

LeadershipLoop::LeadershipLoop(LeadershipOptions leadership, WriteFence* fence,
                               common::Clock* clock, common::Random* random,
                               std::function<bool()> ready, RoleFn on_change,
                               LeadershipLoopOptions options)
    : leadership_(leadership),
      cluster_(leadership.cluster),
      fence_(fence),
      clock_(clock),
      backoff_(options.retry, random),
      ready_(std::move(ready)),
      on_change_(std::move(on_change)),
      options_(options) {}

void LeadershipLoop::Become(v1::AgentRole role, int64_t epoch) {
  absl::MutexLock lock(&mu_);
  if (role == role_ && epoch == last_epoch_) return;
  role_ = role;
  last_epoch_ = epoch;
  // The fence first: a step that starts after this sees the new role.
  if (role == v1::AGENT_ROLE_LEADER) fence_->set_schema(leadership_.own_schema());
  fence_->set_epoch(role == v1::AGENT_ROLE_LEADER ? epoch : 0);
  on_change_(role, epoch);
}

v1::AgentRole LeadershipLoop::role() const {
  absl::MutexLock lock(&mu_);
  return role_;
}

void LeadershipLoop::Watch(const absl::Notification* stop) {
  const absl::Duration limit = options_.lease - options_.renew;
  while (clock_->SleepFor(options_.renew / 4, stop)) {
    int64_t epoch;
    absl::Duration since;
    {
      absl::MutexLock lock(&mu_);
      if (role_ != v1::AGENT_ROLE_LEADER) continue;
      epoch = last_epoch_;
      since = clock_->Now() - renewed_;
    }
    if (since <= limit) continue;
    spdlog::warn("lease of cluster={} epoch={} not renewed for {}: no longer acting until it is",
                 cluster_, epoch, absl::FormatDuration(since));
    Become(v1::AGENT_ROLE_STANDBY, epoch);
  }
}

void LeadershipLoop::Run(const absl::Notification* stop) {
  Become(v1::AGENT_ROLE_STANDBY, 0);
  while (!ready_()) {
    if (!clock_->SleepFor(options_.ready_poll, stop)) return;
  }
  std::thread watchdog([this, stop] { Watch(stop); });
  int64_t leading = 0;  // the epoch this loop holds the lock in
  int64_t known = 0;    // the last epoch it knew
  while (!stop->HasBeenNotified()) {
    if (leading != 0) {
      if (!clock_->SleepFor(options_.renew, stop)) break;
      const absl::Time sent = clock_->Now();
      if (leadership_.StillLeads()) {
        {
          absl::MutexLock lock(&mu_);
          renewed_ = sent;
        }
        if (role() != v1::AGENT_ROLE_LEADER) {
          spdlog::info("lease of cluster={} epoch={} renewed again: acting", cluster_, leading);
          Become(v1::AGENT_ROLE_LEADER, leading);
        }
        continue;
      }
      spdlog::warn("leadership lost cluster={} epoch={}: its session or its epoch is gone; "
                   "standing by",
                   cluster_, leading);
      leading = 0;
      Become(v1::AGENT_ROLE_STANDBY, known);
      continue;
    }
    const absl::Time sent = clock_->Now();
    auto epoch = leadership_.TryLead(options_.wait);
    if (!epoch.ok()) {
      const absl::Duration delay = backoff_.Next();
      spdlog::warn("cannot contend for leadership cluster={} retry_in={} reason=\"{}\"", cluster_,
                   absl::FormatDuration(delay), epoch.status().message());
      if (!clock_->SleepFor(delay, stop)) break;
      continue;
    }
    backoff_.Reset();
    if (*epoch > 0) {
      leading = known = *epoch;
      {
        absl::MutexLock lock(&mu_);
        renewed_ = sent;
      }
      spdlog::info("leading cluster={} epoch={}", cluster_, leading);
      Become(v1::AGENT_ROLE_LEADER, leading);
      continue;
    }
    auto broken = leadership_.BreakStaleLease(options_.lease);
    if (!broken.ok()) {
      spdlog::warn("cannot look at the leader's lease cluster={} reason=\"{}\"", cluster_,
                   broken.status().message());
    } else if (!broken->empty()) {
      spdlog::warn("ended the session of leader {} of cluster={}: its lease was not renewed for "
                   "{}",
                   absl::CHexEscape(*broken), cluster_, absl::FormatDuration(options_.lease));
    }
  }
  leadership_.Resign();
  if (leading != 0) spdlog::info("resigned leadership cluster={} epoch={}", cluster_, leading);
  fence_->set_epoch(0);
  watchdog.join();
}

}  // namespace tether::agent
