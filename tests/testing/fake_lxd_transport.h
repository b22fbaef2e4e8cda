// FakeLxdTransport: an LXD daemon at the HTTP level for unit tests. Tests register canned
// answers per method and path (query string excluded); every request is recorded for the test
// to inspect. Unregistered paths answer LXD's 404 envelope. Canned bodies follow the shapes
// the real daemon (LXD 5.0) sends. Thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/provision/lxd/lxd_transport.h"

namespace tether::testing {

class FakeLxdTransport final : public agent::LxdTransport {
 public:
  using Handler =
      std::function<absl::StatusOr<agent::LxdHttpResponse>(const agent::LxdHttpRequest&)>;

  // Requests "METHOD path" get handler's answer, every time.
  void On(const std::string& method, const std::string& path, Handler handler) {
    absl::MutexLock lock(&mu_);
    handlers_[Key(method, path)] = std::move(handler);
  }
  void On(const std::string& method, const std::string& path, int status, std::string body) {
    On(method, path, [status, body](const agent::LxdHttpRequest&) {
      return absl::StatusOr<agent::LxdHttpResponse>(agent::LxdHttpResponse{status, body});
    });
  }
  // Every request fails at the transport level with `status` (a daemon that is down).
  void FailAll(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_all_ = std::move(status);
  }

  absl::StatusOr<agent::LxdHttpResponse> Send(const agent::LxdHttpRequest& request) override {
    Handler handler;
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(request);
      if (!fail_all_.ok()) return fail_all_;
      auto it = handlers_.find(Key(request.method, PathOf(request.path)));
      if (it == handlers_.end()) return agent::LxdHttpResponse{404, Error(404, "not found")};
      handler = it->second;
    }
    return handler(request);
  }
  std::string endpoint() const override { return "unix socket /fake/lxd.socket"; }

  std::vector<agent::LxdHttpRequest> requests() const {
    absl::MutexLock lock(&mu_);
    return requests_;
  }
  // The recorded requests to "METHOD path" (query excluded), in order.
  std::vector<agent::LxdHttpRequest> RequestsTo(const std::string& method,
                                                const std::string& path) const {
    absl::MutexLock lock(&mu_);
    std::vector<agent::LxdHttpRequest> out;
    for (const auto& r : requests_) {
      if (r.method == method && PathOf(r.path) == path) out.push_back(r);
    }
    return out;
  }

  // --- LXD answers, with the fields the daemon (LXD 5.0) sends ---------------------------
  static std::string Error(int code, const std::string& message) {
    return nlohmann::json{{"type", "error"},    {"status", ""},       {"status_code", 0},
                          {"operation", ""},    {"error_code", code}, {"error", message},
                          {"metadata", nullptr}}
        .dump();
  }
  static std::string Sync(nlohmann::json metadata) {
    return nlohmann::json{{"type", "sync"},
                          {"status", "Success"},
                          {"status_code", 200},
                          {"operation", ""},
                          {"error_code", 0},
                          {"error", ""},
                          {"metadata", std::move(metadata)}}
        .dump();
  }
  static std::string SyncEmpty() { return Sync(nlohmann::json::object()); }
  static std::string Instance(const std::string& name, const std::string& status) {
    return Sync({{"architecture", "x86_64"},
                 {"config", nlohmann::json::object()},
                 {"devices", nlohmann::json::object()},
                 {"ephemeral", false},
                 {"profiles", {"default"}},
                 {"stateful", false},
                 {"description", ""},
                 {"created_at", "2026-11-21T21:09:12.007592668Z"},
                 {"name", name},
                 {"status", status},
                 {"status_code", status == "Running" ? 103 : 102},
                 {"type", "container"},
                 {"project", "default"}});
  }
  static std::string ExecCreated(const std::string& instance, const std::string& op) {
    return nlohmann::json{{"type", "async"},
                          {"status", "Operation created"},
                          {"status_code", 100},
                          {"operation", "/1.0/operations/" + op},
                          {"error_code", 0},
                          {"error", ""},
                          {"metadata", Operation(instance, op, "Running", nullptr, "")}}
        .dump();
  }
  // An exec operation as /wait reports it; `status` "Running" (not done yet), "Success" or
  // "Failure" (with `err`).
  static std::string ExecOperation(const std::string& instance, const std::string& op,
                                   const std::string& status, int exit_code,
                                   const std::string& err = "") {
    nlohmann::json result = nullptr;
    if (status != "Running") {
      result = {{"output", {{"1", StdoutLog(instance, op)}, {"2", StderrLog(instance, op)}}},
                {"return", exit_code}};
    }
    return Sync(Operation(instance, op, status, std::move(result), err));
  }
  static std::string StdoutLog(const std::string& instance, const std::string& op) {
    return absl::StrCat("/1.0/instances/", instance, "/logs/exec_", op, ".stdout");
  }
  static std::string StderrLog(const std::string& instance, const std::string& op) {
    return absl::StrCat("/1.0/instances/", instance, "/logs/exec_", op, ".stderr");
  }

 private:
  static nlohmann::json Operation(const std::string& instance, const std::string& op,
                                  const std::string& status, nlohmann::json metadata,
                                  const std::string& err) {
    return {{"id", op},
            {"class", "task"},
            {"description", "Executing command"},
            {"created_at", "2026-11-21T21:09:21.412411523Z"},
            {"updated_at", "2026-11-21T21:09:21.442524358Z"},
            {"status", status},
            {"status_code", status == "Running" ? 103 : (status == "Success" ? 200 : 400)},
            {"resources",
             {{"containers", {"/1.0/containers/" + instance}},
              {"instances", {"/1.0/instances/" + instance}}}},
            {"metadata", std::move(metadata)},
            {"may_cancel", false},
            {"err", err},
            {"location", "none"}};
  }
  static std::string Key(const std::string& method, const std::string& path) {
    return method + " " + path;
  }
  static std::string PathOf(const std::string& path_and_query) {
    return path_and_query.substr(0, path_and_query.find('?'));
  }

  mutable absl::Mutex mu_;
  std::map<std::string, Handler> handlers_ ABSL_GUARDED_BY(mu_);
  std::vector<agent::LxdHttpRequest> requests_ ABSL_GUARDED_BY(mu_);
  absl::Status fail_all_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::testing
