// LxdTransport: one HTTP request to the LXD daemon and its raw answer, behind an interface so
// LxdClient can be tested with a fake at the HTTP level. CurlLxdTransport is the real one, over
// LXD's unix socket or over HTTPS with a client certificate. Send() is thread-safe (each call
// uses its own libcurl handle).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace tether::agent {

struct LxdHttpRequest {
  std::string method;  // GET, POST, PUT, DELETE
  std::string path;    // with its query string: /1.0/operations/ID/wait?timeout=30
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // For the whole exchange; a long-poll (operation wait) sets it above its own timeout.
  absl::Duration timeout = absl::Seconds(60);
};

struct LxdHttpResponse {
  int status = 0;  // HTTP status code
  std::string body;
};

class LxdTransport {
 public:
  virtual ~LxdTransport() = default;
  // Any HTTP status is a successful exchange here; LxdClient reads it. kUnavailable when the
  // daemon cannot be reached or the connection breaks; kDeadlineExceeded when no whole answer
  // came within request.timeout; kFailedPrecondition when the client certificate or key
  // cannot be used.
  virtual absl::StatusOr<LxdHttpResponse> Send(const LxdHttpRequest& request) = 0;
  // Where the daemon is, for messages: "unix socket /var/lib/lxd/unix.socket".
  virtual std::string endpoint() const = 0;
};

struct CurlLxdTransportOptions {
  // Either a unix socket ...
  std::string socket_path = "/var/lib/lxd/unix.socket";
  // ... or, when url is set, HTTPS (https://host:8443) with a client certificate and key (PEM).
  std::string url;
  std::string client_cert;
  std::string client_key;
  // PEM the server's certificate must chain to; empty: the system's trust store.
  std::string server_ca;
  absl::Duration connect_timeout = absl::Seconds(5);
};

class CurlLxdTransport final : public LxdTransport {
 public:
  explicit CurlLxdTransport(CurlLxdTransportOptions options);
  absl::StatusOr<LxdHttpResponse> Send(const LxdHttpRequest& request) override;
  std::string endpoint() const override;

 private:
  CurlLxdTransportOptions options_;
};

}  // namespace tether::agent
