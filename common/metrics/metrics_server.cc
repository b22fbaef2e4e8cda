// MetricsServer over prometheus-cpp's Exposer.
#include "common/metrics/metrics_server.h"

#include <exception>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tether::common {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::shared_ptr<prometheus::Registry> registry) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-listen \"", address.substr(0, 100), "\" is not host:port (port 0 picks one)"));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    // A scrape is a few kilobytes every few seconds, but a client that connects and says
    // nothing holds a thread until the request timeout: a few threads, and a short timeout, so
    // one such client cannot keep Prometheus from scraping.
    exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", address, "num_threads", "4", "request_timeout_ms", "10000"});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", address, ": ", e.what()));
  }
  const auto ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ", address));
  }
  exposer->RegisterCollectable(registry);
  return std::unique_ptr<MetricsServer>(new MetricsServer(
      std::move(exposer), absl::StrCat(address.substr(0, colon), ":", ports.front())));
}

}  // namespace tether::common
