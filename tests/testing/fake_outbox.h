// FakeOutbox: the agent LinkSession's outbox for unit tests, recording what it sends; it can
// be made to fail like a broken stream. The real one writes to a gRPC stream (MothershipLink),
// covered by the integration and end-to-end tests. Thread-safe.
#pragma once

#include <vector>

#include "absl/synchronization/mutex.h"
#include "agent/link/session.h"

namespace tether::testing {

class FakeOutbox final : public agent::Outbox {
 public:
  bool Send(const v1::AgentMessage& message) override {
    absl::MutexLock lock(&mu_);
    if (broken) return false;
    sent.push_back(message);
    return true;
  }
  std::vector<v1::AgentMessage> Sent() {
    absl::MutexLock lock(&mu_);
    return sent;
  }
  void Break() {
    absl::MutexLock lock(&mu_);
    broken = true;
  }

 private:
  absl::Mutex mu_;
  bool broken = false;
  std::vector<v1::AgentMessage> sent;
};

}  // namespace tether::testing
