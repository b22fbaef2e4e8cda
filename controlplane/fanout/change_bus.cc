// InProcessChangeBus: handlers run under a reader lock, so Unsubscribe (a writer) waits for a
// running handler to return.
#include "controlplane/fanout/change_bus.h"

namespace tether::controlplane {

void InProcessChangeBus::Publish(const Change& change) {
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [id, handler] : handlers_) handler(change);
}

uint64_t InProcessChangeBus::Subscribe(Handler handler) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  handlers_[id] = std::move(handler);
  return id;
}

void InProcessChangeBus::Unsubscribe(uint64_t id) {
  absl::MutexLock lock(&mu_);
  handlers_.erase(id);
}

}  // namespace tether::controlplane
