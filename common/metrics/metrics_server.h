// MetricsServer: /metrics in Prometheus's text format over plain HTTP, for one registry
// (prometheus-cpp's Exposer). Both binaries start one only when --metrics-listen is given; the
// address file next to their data lets scripts and tests find a port picked with :0.
#pragma once

#include <prometheus/exposer.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tether::common {

class MetricsServer {
 public:
  // Serves `registry` on `address` (host:port; port 0 picks one). kInvalidArgument for an
  // address without a port, kUnavailable when it cannot listen there.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::shared_ptr<prometheus::Registry> registry);

  // The host and port it listens on (the port it picked, for :0).
  const std::string& address() const { return address_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, std::string address)
      : exposer_(std::move(exposer)), address_(std::move(address)) {}

  std::unique_ptr<prometheus::Exposer> exposer_;
  std::string address_;
};

}  // namespace tether::common
