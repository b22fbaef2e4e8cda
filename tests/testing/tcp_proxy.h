// TcpProxy: forwards TCP connections from 127.0.0.1:port() to a target address, and plays a
// network that fails: Freeze() stops moving bytes either way while every connection stays open
// (a partition, or a middlebox that stops forwarding without closing: nothing tells either side),
// and Thaw() moves them again. Accepts new connections whatever its state (frozen ones just
// carry nothing). Thread-safe.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace tether::testing {

class TcpProxy {
 public:
  TcpProxy(std::string target_host, int target_port);
  ~TcpProxy();

  // The port it listens on (127.0.0.1), chosen by the kernel; 0 when it could not listen.
  int port() const { return port_; }
  void Freeze();
  void Thaw();

 private:
  struct Pair {
    int client = -1;
    int server = -1;
  };
  void Loop();

  const std::string host_;
  const int target_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};  // a pipe: wakes the loop after a change
  std::atomic<bool> stop_{false};
  mutable absl::Mutex mu_;
  bool frozen_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace tether::testing
