// ChangeBus: how the mothership's parts learn what changed elsewhere. Registries and stores
// publish a Change after they commit it (a new revision, a superseded incarnation, a deleted
// agent, a queued command, an event); stream sessions, the event log's followers and the stream
// registry subscribe. In one process the bus is a set of callbacks (InProcessChangeBus); with
// several replicas it carries PostgreSQL LISTEN/NOTIFY, the database staying the only source
// of truth: a Change says only *that* something changed, subscribers read *what* from the
// database (or a cache it fills).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tether::controlplane {

struct Change {
  enum class Kind {
    kRevision,     // cluster has a new spec revision `number`
    kIncarnation,  // agent_id re-registered as incarnation `number`
    kAgentDeleted,  // agent_id was deleted
    kCommand,      // command `number` of cluster was queued or cancelled: tell its agents
    kCommandProgress,  // command `number` has new lines or states: tell its followers
    kShutdown,     // this process is stopping: followers end their streams
    kEvent,        // events up to id `number` were appended (0: some)
  };
  Kind kind;
  std::string cluster;
  std::string agent_id;
  int64_t number = 0;
};

class ChangeBus {
 public:
  using Handler = std::function<void(const Change&)>;
  virtual ~ChangeBus() = default;
  // Delivers `change` to every subscriber. Call after the change is committed.
  virtual void Publish(const Change& change) = 0;
  // Subscribes `handler` until Unsubscribe(returned id). Handlers run on the publisher's thread,
  // must be quick and must not subscribe or unsubscribe themselves.
  virtual uint64_t Subscribe(Handler handler) = 0;
  // After it returns, the handler is not running and will not run again.
  virtual void Unsubscribe(uint64_t id) = 0;
};

// Callbacks within one process. Thread-safe.
class InProcessChangeBus final : public ChangeBus {
 public:
  void Publish(const Change& change) override;
  uint64_t Subscribe(Handler handler) override;
  void Unsubscribe(uint64_t id) override;

 private:
  absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<uint64_t, Handler> handlers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::controlplane
