// The agent's metrics: names, help and buckets.
#include "agent/metrics.h"

#include "absl/strings/str_cat.h"

namespace tether::agent {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// Seconds, from 10 ms to 10 minutes: a reconcile that changes nothing to a long migration.
Histogram::BucketBoundaries Durations() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

}  // namespace

AgentMetrics& AgentMetrics::Process() {
  static AgentMetrics* metrics = new AgentMetrics();
  return *metrics;
}

AgentMetrics::AgentMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      connected_(BuildGauge()
                     .Name("tether_agent_connected")
                     .Help("1 while the agent's stream to the mothership is up")
                     .Register(*registry_)
                     .Add({})),
      connects_(BuildCounter()
                    .Name("tether_agent_connects_total")
                    .Help("Streams to the mothership that came up (a Welcome)")
                    .Register(*registry_)
                    .Add({})),
      stream_ends_(BuildCounter()
                       .Name("tether_agent_stream_ends_total")
                       .Help("Streams to the mothership that ended, by gRPC status code")
                       .Register(*registry_)),
      heartbeats_(BuildCounter()
                      .Name("tether_agent_heartbeats_sent_total")
                      .Help("Heartbeats sent to the mothership")
                      .Register(*registry_)
                      .Add({})),
      reconcile_(BuildHistogram()
                     .Name("tether_agent_reconcile_seconds")
                     .Help("How long reconciling one revision took, by result (ack, nack)")
                     .Register(*registry_)),
      onboarding_(BuildHistogram()
                      .Name("tether_agent_onboarding_seconds")
                      .Help("How long onboarding one tenant took, by method (migrations, "
                            "template, warm_pool, snapshot)")
                      .Register(*registry_)) {}

void AgentMetrics::Connected() {
  connected_.Set(1);
  connects_.Increment();
}

void AgentMetrics::StreamEnded(int code) {
  connected_.Set(0);
  stream_ends_.Add({{"code", absl::StrCat(code)}}).Increment();
}

void AgentMetrics::Reconciled(bool ok, absl::Duration took) {
  reconcile_.Add({{"result", ok ? "ack" : "nack"}}, Durations())
      .Observe(absl::ToDoubleSeconds(took));
}

void AgentMetrics::Onboarded(const std::string& method, absl::Duration took) {
  onboarding_.Add({{"method", method}}, Durations()).Observe(absl::ToDoubleSeconds(took));
}

}  // namespace tether::agent
