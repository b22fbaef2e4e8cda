// LxdClient: LXD's JSON envelopes ({"type": "sync"|"async"|"error", ...}) read with nlohmann.
#include "agent/provision/lxd/lxd_client.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/url.h"

namespace tether::agent {
namespace {

// The longest single long-poll; a longer wait is a loop of these, so a daemon that went away
// is noticed.
constexpr absl::Duration kMaxWaitPoll = absl::Seconds(30);
// Slack for the HTTP exchange over the server-side wait timeout.
constexpr absl::Duration kWaitSlack = absl::Seconds(10);

absl::Status ErrorFromCode(int code, std::string message) {
  switch (code) {
    case 400:
      return absl::FailedPreconditionError(message);  // LXD's "not in a state to do that"
    case 401:
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return absl::AlreadyExistsError(message);
    case 502:
    case 503:
    case 504:
      return absl::UnavailableError(message);
    default:
      return code >= 500 ? absl::InternalError(message) : absl::UnknownError(message);
  }
}

LxdHttpRequest MakeRequest(std::string method, std::string path, std::string body = "") {
  LxdHttpRequest request;
  request.method = std::move(method);
  request.path = std::move(path);
  request.body = std::move(body);
  return request;
}

// Fields of LXD's answers, read without throwing: a field of an unexpected type reads as
// `fallback` (nlohmann's value() would throw, and no exception may leave this adapter).
std::string StringField(const nlohmann::json& j, const char* key,
                        const std::string& fallback = "") {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}
int IntField(const nlohmann::json& j, const char* key, int fallback = 0) {
  if (!j.is_object()) return fallback;
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

std::string Snippet(const std::string& body) {
  std::string s = body.substr(0, 200);
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

std::string OctalMode(int mode) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "%04o", mode & 07777);
  return buf;
}

}  // namespace

std::string LxdEscape(const std::string& s) { return common::PercentEncode(s, "/"); }

LxdClient::LxdClient(LxdTransport* transport, common::Clock* clock)
    : transport_(transport), clock_(clock) {}

absl::StatusOr<nlohmann::json> LxdClient::Call(LxdHttpRequest request) {
  const std::string what = absl::StrCat(request.method, " ", request.path);
  auto response = transport_->Send(request);
  if (!response.ok()) return response.status();
  nlohmann::json envelope =
      nlohmann::json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (envelope.is_discarded() || !envelope.is_object()) {
    const std::string message =
        absl::StrCat("LXD ", what, ": HTTP ", response->status,
                     " with a body that is not an LXD answer: ", Snippet(response->body));
    return response->status >= 400 ? ErrorFromCode(response->status, message)
                                   : absl::InternalError(message);
  }
  if (StringField(envelope, "type") == "error" || response->status >= 400) {
    int code = IntField(envelope, "error_code");
    if (code == 0) code = response->status;
    return ErrorFromCode(
        code,
        absl::StrCat("LXD ", what, ": ", StringField(envelope, "error", "error"), " (", code, ")"));
  }
  return envelope;
}

absl::StatusOr<LxdInstanceInfo> LxdClient::GetInstance(const std::string& name) {
  auto envelope = Call(MakeRequest("GET", absl::StrCat("/1.0/instances/", LxdEscape(name))));
  if (!envelope.ok()) return envelope.status();
  const nlohmann::json& m = (*envelope)["metadata"];
  if (!m.is_object()) return absl::InternalError("LXD answered an instance without metadata");
  return LxdInstanceInfo{StringField(m, "name", name), StringField(m, "status")};
}

absl::Status LxdClient::WriteFile(const std::string& instance, const std::string& path,
                                  const std::string& type, const std::string& contents,
                                  const LxdFileOptions& options) {
  LxdHttpRequest request;
  request.method = "POST";
  request.path =
      absl::StrCat("/1.0/instances/", LxdEscape(instance), "/files?path=", LxdEscape(path));
  request.headers = {{"Content-Type", "application/octet-stream"},
                     {"X-LXD-type", type},
                     {"X-LXD-uid", absl::StrCat(options.uid)},
                     {"X-LXD-gid", absl::StrCat(options.gid)},
                     {"X-LXD-mode", OctalMode(options.mode)}};
  if (type == "file") request.headers.emplace_back("X-LXD-write", "overwrite");
  request.body = contents;
  // Large packages: allow for a slow disk, not for a dead daemon.
  request.timeout = absl::Seconds(60) + absl::Seconds(static_cast<int64_t>(contents.size() >> 20));
  return Call(std::move(request)).status();
}

absl::Status LxdClient::MakeDirectory(const std::string& instance, const std::string& path,
                                      const LxdFileOptions& options) {
  absl::Status st = WriteFile(instance, path, "directory", "", options);
  // LXD checks for an existing directory before its mkdir; when two clients create the same
  // one at once, the loser gets a 500 "mkdir ...: file exists", which is success for us.
  if (absl::IsInternal(st) && absl::StrContains(st.message(), "file exists")) {
    return absl::OkStatus();
  }
  return st;
}

absl::Status LxdClient::PushFile(const std::string& instance, const std::string& path,
                                 const std::string& contents, const LxdFileOptions& options) {
  return WriteFile(instance, path, "file", contents, options);
}

absl::StatusOr<std::string> LxdClient::StartExec(const std::string& instance,
                                                 const LxdExecRequest& request) {
  nlohmann::json body = {{"command", request.command},
                         {"environment", nlohmann::json::object()},
                         {"wait-for-websocket", false},
                         {"record-output", true},
                         {"interactive", false}};
  for (const auto& [k, v] : request.environment) body["environment"][k] = v;
  if (!request.cwd.empty()) body["cwd"] = request.cwd;
  auto envelope =
      Call(MakeRequest("POST", absl::StrCat("/1.0/instances/", LxdEscape(instance), "/exec"),
                       body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
  if (!envelope.ok()) return envelope.status();
  // "operation": "/1.0/operations/UUID"; metadata.id is the same UUID.
  std::string id;
  if (const auto& m = (*envelope)["metadata"]; m.is_object()) id = StringField(m, "id");
  if (id.empty()) {
    const std::string op = StringField(*envelope, "operation");
    const size_t slash = op.rfind('/');
    if (slash != std::string::npos) id = op.substr(slash + 1);
  }
  if (id.empty()) return absl::InternalError("LXD started an exec but named no operation");
  return id;
}

absl::StatusOr<LxdOperation> LxdClient::WaitOperation(const std::string& id,
                                                      absl::Duration timeout) {
  const int64_t seconds =
      std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(timeout, absl::Seconds(1))));
  LxdHttpRequest request = MakeRequest(
      "GET", absl::StrCat("/1.0/operations/", LxdEscape(id), "/wait?timeout=", seconds));
  request.timeout = absl::Seconds(seconds) + kWaitSlack;
  auto envelope = Call(std::move(request));
  if (!envelope.ok()) return envelope.status();
  const nlohmann::json& m = (*envelope)["metadata"];
  if (!m.is_object()) return absl::InternalError("LXD answered an operation without metadata");
  LxdOperation op;
  op.id = StringField(m, "id", id);
  op.status = StringField(m, "status");
  op.err = StringField(m, "err");
  if (m.contains("metadata") && m["metadata"].is_object()) op.metadata = m["metadata"];
  return op;
}

absl::StatusOr<std::string> LxdClient::GetRaw(const std::string& path) {
  auto response = transport_->Send(MakeRequest("GET", path));
  if (!response.ok()) return response.status();
  if (response->status >= 400) {
    nlohmann::json e = nlohmann::json::parse(response->body, nullptr, false);
    const std::string reason = e.is_object() ? StringField(e, "error") : Snippet(response->body);
    return ErrorFromCode(response->status,
                         absl::StrCat("LXD GET ", path, ": ", reason, " (", response->status, ")"));
  }
  return std::move(response->body);
}

absl::Status LxdClient::Delete(const std::string& path) {
  return Call(MakeRequest("DELETE", path)).status();
}

absl::StatusOr<LxdExecResult> LxdClient::Exec(const std::string& instance,
                                              const LxdExecRequest& request,
                                              absl::Duration timeout) {
  auto id = StartExec(instance, request);
  if (!id.ok()) return id.status();
  const absl::Time deadline = clock_->Now() + timeout;
  LxdOperation op;
  for (;;) {
    const absl::Duration left = deadline - clock_->Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "`", absl::StrJoin(request.command, " "), "` in LXD instance ", instance,
          " did not finish within ", absl::FormatDuration(timeout), " (LXD operation ", *id,
          " may still be running)"));
    }
    auto polled = WaitOperation(*id, std::min(left, kMaxWaitPoll));
    if (!polled.ok()) return polled.status();
    op = *std::move(polled);
    if (op.done()) break;
  }

  LxdExecResult result;
  const nlohmann::json& ret = op.metadata.is_object() && op.metadata.contains("return")
                                  ? op.metadata["return"]
                                  : nlohmann::json();
  if (ret.is_number_integer()) result.exit_code = ret.get<int>();
  // The logs: {"1": ".../exec_ID.stdout", "2": ".../exec_ID.stderr"}.
  if (op.metadata.is_object() && op.metadata.contains("output") &&
      op.metadata["output"].is_object()) {
    const nlohmann::json& output = op.metadata["output"];
    for (const auto& [fd, target] :
         {std::pair{"1", &result.stdout_text}, std::pair{"2", &result.stderr_text}}) {
      if (!output.contains(fd) || !output[fd].is_string()) continue;
      const std::string path = output[fd].get<std::string>();
      auto text = GetRaw(path);
      if (!text.ok()) return text.status();
      *target = *std::move(text);
      (void)Delete(path);  // LXD keeps every exec's logs until they are deleted
    }
  }
  if (op.status != "Success") {
    return absl::InternalError(absl::StrCat(
        "LXD could not run `", request.command.empty() ? "" : request.command.front(),
        "` in instance ", instance, ": ", op.err.empty() ? op.status : op.err,
        ret.is_number_integer() ? absl::StrCat(" (exit status ", result.exit_code, ")") : ""));
  }
  if (!ret.is_number_integer()) {
    return absl::InternalError("LXD reported a finished exec without an exit status");
  }
  return result;
}

}  // namespace tether::agent
