// LxdClient: the calls of the LXD REST API the agent needs — an instance's state, pushing files,
// running a command with its output recorded, waiting on operations — over an LxdTransport.
// It knows nothing of PostgreSQL or provisioning. LXD's error envelopes become Status with
// canonical codes (404 kNotFound, 403 kPermissionDenied, 400 kFailedPrecondition, 5xx
// kUnavailable or kInternal); transport failures pass through unchanged.
// Thread-safe when its transport and clock are (the real ones are); it holds no state.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/provision/lxd/lxd_transport.h"
#include "common/clock.h"

namespace tether::agent {

struct LxdInstanceInfo {
  std::string name;
  std::string status;  // "Running", "Stopped", "Frozen", ...
};

// Owner and permissions of a file or directory written into an instance.
struct LxdFileOptions {
  int uid = 0;
  int gid = 0;
  int mode = 0644;
};

struct LxdExecRequest {
  std::vector<std::string> command;
  // Goes to LXD in the request body, so secrets here never appear on a command line.
  std::map<std::string, std::string> environment;
  std::string cwd;  // empty: LXD's default (the user's home)
};

// An LXD background operation as /1.0/operations/ID/wait reports it.
struct LxdOperation {
  std::string id;
  std::string status;       // "Running", "Success", "Failure", "Cancelled", ...
  std::string err;          // LXD's reason when status is "Failure"
  nlohmann::json metadata;  // the operation's result; for exec {"return": N, "output": {...}}
  bool done() const { return status == "Success" || status == "Failure" || status == "Cancelled"; }
};

struct LxdExecResult {
  int exit_code = 0;
  std::string stdout_text;
  std::string stderr_text;
};

class LxdClient {
 public:
  // `transport` and `clock` must outlive the client.
  LxdClient(LxdTransport* transport, common::Clock* clock);

  // GET /1.0/instances/NAME. kNotFound when there is no such instance.
  absl::StatusOr<LxdInstanceInfo> GetInstance(const std::string& name);

  // POST /1.0/instances/NAME/files with X-LXD-type: directory. An existing directory is fine.
  // kNotFound when the instance or the parent directory does not exist.
  absl::Status MakeDirectory(const std::string& instance, const std::string& path,
                             const LxdFileOptions& options);
  // POST /1.0/instances/NAME/files with X-LXD-type: file; replaces an existing file.
  absl::Status PushFile(const std::string& instance, const std::string& path,
                        const std::string& contents, const LxdFileOptions& options);

  // POST /1.0/instances/NAME/exec, non-interactive, no websocket, output recorded.
  // Returns the operation's id. kNotFound when the instance does not exist;
  // kFailedPrecondition when it is not running.
  absl::StatusOr<std::string> StartExec(const std::string& instance, const LxdExecRequest& request);

  // One long-poll of GET /1.0/operations/ID/wait?timeout=N (N = `timeout` in whole seconds,
  // at least 1). Returns the operation whether or not it finished. kNotFound for an unknown id.
  absl::StatusOr<LxdOperation> WaitOperation(const std::string& id, absl::Duration timeout);

  // Runs a command to completion: StartExec, wait until it finishes, read its recorded stdout
  // and stderr, then delete those logs. A non-zero exit is not an error here: read exit_code.
  // kDeadlineExceeded when it has not finished within `timeout` (LXD cannot cancel an exec;
  // it keeps running); kInternal when LXD reports the operation failed (e.g. no such
  // command), with LXD's reason; the errors of StartExec otherwise.
  absl::StatusOr<LxdExecResult> Exec(const std::string& instance, const LxdExecRequest& request,
                                     absl::Duration timeout);

  // GET of a resource that is not a JSON envelope (an exec log). kNotFound when it is gone.
  absl::StatusOr<std::string> GetRaw(const std::string& path);
  absl::Status Delete(const std::string& path);

 private:
  // Sends a request and returns the envelope of a successful answer, or the error it carries.
  absl::StatusOr<nlohmann::json> Call(LxdHttpRequest request);
  absl::Status WriteFile(const std::string& instance, const std::string& path,
                         const std::string& type, const std::string& contents,
                         const LxdFileOptions& options);

  LxdTransport* transport_;
  common::Clock* clock_;
};

// "/" and the unreserved characters stay; everything else is %XX. For paths and query values.
std::string LxdEscape(const std::string& s);

}  // namespace tether::agent
