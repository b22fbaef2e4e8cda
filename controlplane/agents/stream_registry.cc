// StreamRegistry: a map from agent id to its one current stream.
#include "controlplane/agents/stream_registry.h"

#include <algorithm>

namespace tether::controlplane {

uint64_t StreamRegistry::Add(const std::string& agent_id, int64_t incarnation,
                             AgentStream* stream) {
  absl::MutexLock lock(&mu_);
  int64_t& newest = newest_[agent_id];
  if (incarnation < newest) return 0;
  newest = incarnation;
  auto it = streams_.find(agent_id);
  if (it != streams_.end()) {
    it->second.stream->Close(absl::AbortedError("replaced by a newer stream of the same agent"));
  }
  const uint64_t handle = next_handle_++;
  streams_[agent_id] = Entry{handle, incarnation, stream};
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
}

void StreamRegistry::Close(const std::string& agent_id, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  newest_.erase(agent_id);
  auto it = streams_.find(agent_id);
  if (it != streams_.end()) it->second.stream->Close(status);
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
