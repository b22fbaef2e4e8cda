// TcpProxy: one thread, poll() over the listening socket, a wake pipe and every connection.
#include "tests/testing/tcp_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tether::testing {
namespace {

int ConnectTo(const std::string& host, int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Copies what `from` has to `to`; false when either side is done.
bool Move(int from, int to) {
  char buf[65536];
  const ssize_t n = read(from, buf, sizeof(buf));
  if (n <= 0) return false;
  for (ssize_t off = 0; off < n;) {
    const ssize_t w = write(to, buf + off, static_cast<size_t>(n - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    off += w;
  }
  return true;
}

}  // namespace

TcpProxy::TcpProxy(std::string target_host, int target_port)
    : host_(std::move(target_host)), target_port_(target_port) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listen_fd_, 128) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return;
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Loop(); });
}

TcpProxy::~TcpProxy() {
  stop_ = true;
  if (wake_[1] >= 0) (void)!write(wake_[1], "x", 1);
  if (thread_.joinable()) thread_.join();
  for (int fd : {listen_fd_, wake_[0], wake_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void TcpProxy::Freeze() {
  absl::MutexLock lock(&mu_);
  frozen_ = true;
  (void)!write(wake_[1], "x", 1);
}

void TcpProxy::Thaw() {
  absl::MutexLock lock(&mu_);
  frozen_ = false;
  (void)!write(wake_[1], "x", 1);
}

void TcpProxy::Loop() {
  std::vector<Pair> pairs;
  auto drop = [](Pair& p) {
    close(p.client);
    close(p.server);
    p.client = p.server = -1;
  };
  while (!stop_) {
    bool frozen;
    {
      absl::MutexLock lock(&mu_);
      frozen = frozen_;
    }
    std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (!frozen) {
      for (const Pair& p : pairs) {
        fds.push_back({p.client, POLLIN, 0});
        fds.push_back({p.server, POLLIN, 0});
      }
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) {
      char buf[64];
      while (read(wake_[0], buf, sizeof(buf)) > 0) {
      }
    }
    if (fds[0].revents & POLLIN) {
      const int client = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) {
        const int server = ConnectTo(host_, target_port_);
        if (server < 0) {
          close(client);
        } else {
          pairs.push_back({client, server});
        }
      }
    }
    if (frozen) continue;
    for (size_t i = 2; i + 1 < fds.size(); i += 2) {
      Pair& p = pairs[(i - 2) / 2];
      bool ok = true;
      if (fds[i].revents != 0) ok = Move(p.client, p.server);
      if (ok && fds[i + 1].revents != 0) ok = Move(p.server, p.client);
      if (!ok) drop(p);
    }
    std::vector<Pair> alive;
    for (const Pair& p : pairs) {
      if (p.client >= 0) alive.push_back(p);
    }
    pairs.swap(alive);
  }
  for (Pair& p : pairs) drop(p);
}

}  // namespace tether::testing
