// AgentMetrics: what tether-agent counts and measures, served on /metrics when --metrics-listen
// is given. One agent is one process, so the set is the process's own (Process()), reached
// from the link, the reconciler and the executor without threading it through each.
// Thread-safe and cheap: an atomic add, or a histogram bucket.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/time/time.h"

namespace tether::agent {

class AgentMetrics {
 public:
  static AgentMetrics& Process();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // The stream to the mothership came up (a Welcome), or ended with a gRPC status code.
  void Connected();
  void StreamEnded(int code);
  void HeartbeatSent() { heartbeats_.Increment(); }
  // A revision reconciled: acked (ok) or nacked, and how long it took.
  void Reconciled(bool ok, absl::Duration took);
  // A tenant onboarded (by migrations, template, warm_pool or snapshot), and how long it took.
  void Onboarded(const std::string& method, absl::Duration took);

 private:
  AgentMetrics();

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge& connected_;
  prometheus::Counter& connects_;
  prometheus::Family<prometheus::Counter>& stream_ends_;
  prometheus::Counter& heartbeats_;
  prometheus::Family<prometheus::Histogram>& reconcile_;
  prometheus::Family<prometheus::Histogram>& onboarding_;
};

}  // namespace tether::agent
