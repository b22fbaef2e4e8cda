// The mothership's metrics: names, help and buckets.
#include "controlplane/metrics.h"

namespace tether::controlplane {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using prometheus::Histogram;

// Seconds, from a millisecond to a minute: database waits, flushes, fan-out.
Histogram::BucketBoundaries Latencies() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace

MothershipMetrics::MothershipMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      streams_open_(BuildGauge()
                        .Name("tether_agent_streams_open")
                        .Help("Agent streams registered on this replica")
                        .Register(*registry_)
                        .Add({})),
      registrations_(BuildCounter()
                         .Name("tether_registrations_total")
                         .Help("Register calls, by outcome (registered, reregistered, refused)")
                         .Register(*registry_)),
      sightings_(BuildCounter()
                     .Name("tether_heartbeats_total")
                     .Help("Hellos and heartbeats heard from agents")
                     .Register(*registry_)
                     .Add({})),
      sightings_written_(BuildCounter()
                             .Name("tether_heartbeats_written_total")
                             .Help("Agents' last sightings written to the database")
                             .Register(*registry_)
                             .Add({})),
      flush_(BuildHistogram()
                 .Name("tether_heartbeat_flush_seconds")
                 .Help("How long one batched write of agents' sightings took")
                 .Register(*registry_)
                 .Add({}, Latencies())),
      admitted_(BuildCounter()
                    .Name("tether_streams_admitted_total")
                    .Help("New agent streams let in by admission control")
                    .Register(*registry_)
                    .Add({})),
      deferred_(BuildCounter()
                    .Name("tether_streams_deferred_total")
                    .Help("New agent streams told to come back later by admission control")
                    .Register(*registry_)
                    .Add({})),
      revisions_sent_(BuildCounter()
                          .Name("tether_revisions_sent_total")
                          .Help("Desired-state revisions sent to agents")
                          .Register(*registry_)
                          .Add({})),
      revisions_acked_(BuildCounter()
                           .Name("tether_revisions_acked_total")
                           .Help("Revisions agents acked after reconciling them")
                           .Register(*registry_)
                           .Add({})),
      revisions_nacked_(BuildCounter()
                            .Name("tether_revisions_nacked_total")
                            .Help("Revisions agents could not reconcile")
                            .Register(*registry_)
                            .Add({})),
      fanout_(BuildHistogram()
                  .Name("tether_revision_fanout_seconds")
                  .Help("From a revision going out on an agent's stream to that agent's ack")
                  .Register(*registry_)
                  .Add({}, Latencies())),
      commands_queued_(BuildCounter()
                           .Name("tether_commands_queued_total")
                           .Help("Commands queued, by kind")
                           .Register(*registry_)),
      command_parts_(BuildCounter()
                         .Name("tether_command_parts_finished_total")
                         .Help("Agents' parts of commands finished, by final state")
                         .Register(*registry_)),
      pool_wait_(BuildHistogram()
                     .Name("tether_db_pool_wait_seconds")
                     .Help("How long a database call waited for a pooled connection")
                     .Register(*registry_)
                     .Add({}, Latencies())) {}

MothershipMetrics* MothershipMetrics::Unexposed() {
  static MothershipMetrics* metrics = new MothershipMetrics();
  return metrics;
}

void MothershipMetrics::Registration(const std::string& result) {
  registrations_.Add({{"result", result}}).Increment();
}

void MothershipMetrics::SightingsWritten(size_t n, absl::Duration took) {
  sightings_written_.Increment(static_cast<double>(n));
  flush_.Observe(absl::ToDoubleSeconds(took));
}

void MothershipMetrics::RevisionAcked(std::optional<absl::Duration> since_sent) {
  revisions_acked_.Increment();
  if (since_sent.has_value()) fanout_.Observe(absl::ToDoubleSeconds(*since_sent));
}

void MothershipMetrics::CommandQueued(const std::string& kind) {
  commands_queued_.Add({{"kind", kind}}).Increment();
}

void MothershipMetrics::CommandPartFinished(const std::string& state) {
  command_parts_.Add({{"state", state}}).Increment();
}

}  // namespace tether::controlplane
