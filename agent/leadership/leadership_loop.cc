// LeadershipLoop.
#include "agent/leadership/leadership_loop.h"

#include <spdlog/spdlog.h>

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
  if (role == role_ && epoch == last_epoch_) return;
  role_ = role;
  last_epoch_ = epoch;
  // The fence first: a step that starts after this sees the new role.
  fence_->set_epoch(role == v1::AGENT_ROLE_LEADER ? epoch : 0);
  on_change_(role, epoch);
}

void LeadershipLoop::Run(const absl::Notification* stop) {
  Become(v1::AGENT_ROLE_STANDBY, 0);
  while (!ready_()) {
    if (!clock_->SleepFor(options_.ready_poll, stop)) return;
  }
  while (!stop->HasBeenNotified()) {
    if (role_ == v1::AGENT_ROLE_LEADER) {
      if (!clock_->SleepFor(options_.renew, stop)) break;
      if (leadership_.StillLeads()) continue;
      spdlog::warn("leadership lost cluster={} epoch={}: its session or its epoch is gone; "
                   "standing by",
                   cluster_, last_epoch_);
      Become(v1::AGENT_ROLE_STANDBY, last_epoch_);
      continue;
    }
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
      spdlog::info("leading cluster={} epoch={}", cluster_, *epoch);
      Become(v1::AGENT_ROLE_LEADER, *epoch);
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
  if (role_ == v1::AGENT_ROLE_LEADER) {
    spdlog::info("resigned leadership cluster={} epoch={}", cluster_, last_epoch_);
  }
  fence_->set_epoch(0);
}

}  // namespace tether::agent
