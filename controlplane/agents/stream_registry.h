// StreamRegistry: the agents' Connect streams open on this replica, by agent, so that a
// re-registration, a delete or a newer stream can close the old one, and a new revision
// or a queued command reaches every stream of its cluster. It subscribes to the ChangeBus for those changes.
// Thread-safe. AgentStream::Close() is called with the registry's lock held, so a stream must
// not call back into the registry from Close(); OnRevision() is called without it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "controlplane/fanout/change_bus.h"
#include "controlplane/metrics.h"

namespace tether::controlplane {

class AgentStream {
 public:
  virtual ~AgentStream() = default;
  // Ends the stream with `status`; idempotent.
  virtual void Close(const absl::Status& status) = 0;
  // The agent's cluster has a new spec revision.
  virtual void OnRevision(int64_t revision) = 0;
  // Command `id` was queued or cancelled; the agent may be one of its targets.
  virtual void OnCommand(int64_t id) = 0;
};

class StreamRegistry {
 public:
  // Subscribes to `bus` (may be null: then nothing arrives from it) until destroyed; keeps
  // `metrics`' count of open streams.
  explicit StreamRegistry(ChangeBus* bus = nullptr,
                          MothershipMetrics* metrics = MothershipMetrics::Unexposed());
  ~StreamRegistry();

  // Records `stream` (of the agent's `incarnation`, in `cluster`) as the agent's stream,
  // closing the one it replaces. Returns a handle for Remove(), or 0 when the stream is of an
  // incarnation older than one already seen here: then it is not recorded and the caller must
  // end it.
  uint64_t Add(const std::string& agent_id, int64_t incarnation, const std::string& cluster,
               std::shared_ptr<AgentStream> stream);
  // A new incarnation exists (the agent re-registered): closes streams of older ones and
  // refuses them from now on.
  void Supersede(const std::string& agent_id, int64_t incarnation, const absl::Status& status);
  // Forgets the stream if `handle` is still the agent's current one.
  void Remove(const std::string& agent_id, uint64_t handle);
  // Closes the agent's stream, if it has one here.
  void Close(const std::string& agent_id, const absl::Status& status);
  // Tells every stream of `cluster` about `revision`.
  void NotifyRevision(const std::string& cluster, int64_t revision);
  // Tells the streams of `cluster` (only `agent_id`'s, when set) about command `id`.
  void NotifyCommand(const std::string& cluster, const std::string& agent_id, int64_t id);
  bool IsConnected(const std::string& agent_id);
  int size();

 private:
  void OnChange(const Change& change);

  struct Entry {
    uint64_t handle;
    int64_t incarnation;
    std::string cluster;
    std::shared_ptr<AgentStream> stream;
  };
  ChangeBus* bus_;
  MothershipMetrics* metrics_;
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, Entry> streams_ ABSL_GUARDED_BY(mu_);
  // The newest incarnation seen per agent, so a late stream of an older one cannot win.
  std::map<std::string, int64_t> newest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::controlplane
