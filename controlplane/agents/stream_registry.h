// StreamRegistry: the agents' Connect streams open on this replica, so a re-registration, a
// delete or a newer stream can close the old one. Thread-safe; Close() on a stream is called
// with the registry's lock held, so a stream must not call back into the registry from Close().
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace tether::controlplane {

class AgentStream {
 public:
  virtual ~AgentStream() = default;
  // Ends the stream with `status`; idempotent.
  virtual void Close(const absl::Status& status) = 0;
};

class StreamRegistry {
 public:
  // Records `stream` (of the agent's `incarnation`) as the agent's stream, closing the one it
  // replaces. Returns a handle for Remove(), or 0 when the stream is of an incarnation older
  // than one already seen here: then it is not recorded and the caller must end it.
  uint64_t Add(const std::string& agent_id, int64_t incarnation, AgentStream* stream);
  // A new incarnation exists (the agent re-registered): closes streams of older ones and
  // refuses them from now on.
  void Supersede(const std::string& agent_id, int64_t incarnation, const absl::Status& status);
  // Forgets the stream if `handle` is still the agent's current one.
  void Remove(const std::string& agent_id, uint64_t handle);
  // Closes the agent's stream, if it has one here.
  void Close(const std::string& agent_id, const absl::Status& status);
  bool IsConnected(const std::string& agent_id);
  int size();

 private:
  struct Entry {
    uint64_t handle;
    int64_t incarnation;
    AgentStream* stream;
  };
  absl::Mutex mu_;
  uint64_t next_handle_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<std::string, Entry> streams_ ABSL_GUARDED_BY(mu_);
  // The newest incarnation seen per agent, so a late stream of an older one cannot win.
  std::map<std::string, int64_t> newest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::controlplane
