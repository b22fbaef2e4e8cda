// StreamRegistry: a map from agent id to its one current stream.
#include "controlplane/agents/stream_registry.h"

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tether::controlplane {

StreamRegistry::StreamRegistry(ChangeBus* bus, MothershipMetrics* metrics)
    : bus_(bus), metrics_(metrics) {
  if (bus_ != nullptr) {
    subscription_ = bus_->Subscribe([this](const Change& change) { OnChange(change); });
  }
}

StreamRegistry::~StreamRegistry() {
  if (bus_ != nullptr) bus_->Unsubscribe(subscription_);
}

void StreamRegistry::OnChange(const Change& change) {
  switch (change.kind) {
    case Change::Kind::kIncarnation:
      Supersede(change.agent_id, change.number,
                absl::UnauthenticatedError(
                    absl::StrCat("agent re-registered as incarnation ", change.number)));
      break;
    case Change::Kind::kAgentDeleted:
      Close(change.agent_id, absl::UnauthenticatedError("the agent was deleted"));
      break;
    case Change::Kind::kRevision:
      NotifyRevision(change.cluster, change.number);
      break;
    case Change::Kind::kCommand:
      NotifyCommand(change.cluster, change.agent_id, change.number);
      break;
    default:
      break;
  }
}

uint64_t StreamRegistry::Add(const std::string& agent_id, int64_t incarnation,
                             const std::string& cluster, std::shared_ptr<AgentStream> stream) {
  absl::MutexLock lock(&mu_);
  int64_t& newest = newest_[agent_id];
  if (incarnation < newest) return 0;
  newest = incarnation;
  auto it = streams_.find(agent_id);
  if (it != streams_.end()) {
    it->second.stream->Close(absl::AbortedError("replaced by a newer stream of the same agent"));
  }
  const uint64_t handle = next_handle_++;
  streams_[agent_id] = Entry{handle, incarnation, cluster, std::move(stream)};
  metrics_->SetStreamsOpen(static_cast<int>(streams_.size()));
  return handle;
}

void StreamRegistry::Supersede(const std::string& agent_id, int64_t incarnation,
                               const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  int64_t& newest = newest_[agent_id];
  newest = std::max(newest, incarnation);
  auto it = streams_.find(agent_id);
  if (it != streams_.end() && it->second.incarnation < incarnation) {
    it->second.stream->Close(status);
  }
}

void StreamRegistry::Remove(const std::string& agent_id, uint64_t handle) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(agent_id);
  if (it != streams_.end() && it->second.handle == handle) streams_.erase(it);
  metrics_->SetStreamsOpen(static_cast<int>(streams_.size()));
}

void StreamRegistry::Close(const std::string& agent_id, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  newest_.erase(agent_id);
  auto it = streams_.find(agent_id);
  if (it != streams_.end()) it->second.stream->Close(status);
}

void StreamRegistry::NotifyRevision(const std::string& cluster, int64_t revision) {
  std::vector<std::shared_ptr<AgentStream>> targets;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : streams_) {
      if (entry.cluster == cluster) targets.push_back(entry.stream);
    }
  }
  for (const auto& stream : targets) stream->OnRevision(revision);
}

void StreamRegistry::NotifyCommand(const std::string& cluster, const std::string& agent_id,
                                   int64_t id) {
  std::vector<std::shared_ptr<AgentStream>> targets;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [stream_agent, entry] : streams_) {
      if (entry.cluster == cluster && (agent_id.empty() || agent_id == stream_agent)) {
        targets.push_back(entry.stream);
      }
    }
  }
  for (const auto& stream : targets) stream->OnCommand(id);
}

bool StreamRegistry::IsConnected(const std::string& agent_id) {
  absl::MutexLock lock(&mu_);
  return streams_.count(agent_id) != 0;
}

int StreamRegistry::size() {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

}  // namespace tether::controlplane
