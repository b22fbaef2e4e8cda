// MothershipMetrics: what tether-mothership counts and measures, in one Prometheus registry,
// served on /metrics when --metrics-listen is given. Components take a pointer to it and
// default to Unexposed(), a set nobody scrapes, so a component built alone (a test) counts
// into nothing without a null check at every site. Every method is thread-safe and cheap (an
// atomic add, or a histogram bucket).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/time/time.h"

namespace tether::controlplane {

class MothershipMetrics {
 public:
  MothershipMetrics();
  MothershipMetrics(const MothershipMetrics&) = delete;
  MothershipMetrics& operator=(const MothershipMetrics&) = delete;

  // The metrics of components built without the mothership's: counted, never served.
  static MothershipMetrics* Unexposed();

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }

  // Agent streams registered on this replica right now.
  void SetStreamsOpen(int n) { streams_open_.Set(n); }
  // A Register call's outcome: "registered", "reregistered" (same name, new incarnation) or
  // "refused".
  void Registration(const std::string& result);
  // A Hello or heartbeat heard; a flush of sightings written (how many, how long it took).
  void Sighting() { sightings_.Increment(); }
  void SightingsWritten(size_t n, absl::Duration took);
  // A new agent stream let in, or told to come back later.
  void Admitted() { admitted_.Increment(); }
  void Deferred() { deferred_.Increment(); }
  // A desired-state revision sent on a stream; an agent's ack or nack, and for the ack of the
  // revision its stream was sent, how long after it went out.
  void RevisionSent() { revisions_sent_.Increment(); }
  void RevisionAcked(std::optional<absl::Duration> since_sent);
  void RevisionNacked() { revisions_nacked_.Increment(); }
  // A command queued (by kind); an agent's part of one finished (succeeded, failed, cancelled).
  void CommandQueued(const std::string& kind);
  void CommandPartFinished(const std::string& state);
  // How long a database call waited for a pooled connection.
  void PoolWait(absl::Duration waited) { pool_wait_.Observe(absl::ToDoubleSeconds(waited)); }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Gauge& streams_open_;
  prometheus::Family<prometheus::Counter>& registrations_;
  prometheus::Counter& sightings_;
  prometheus::Counter& sightings_written_;
  prometheus::Histogram& flush_;
  prometheus::Counter& admitted_;
  prometheus::Counter& deferred_;
  prometheus::Counter& revisions_sent_;
  prometheus::Counter& revisions_acked_;
  prometheus::Counter& revisions_nacked_;
  prometheus::Histogram& fanout_;
  prometheus::Family<prometheus::Counter>& commands_queued_;
  prometheus::Family<prometheus::Counter>& command_parts_;
  prometheus::Histogram& pool_wait_;
};

}  // namespace tether::controlplane
