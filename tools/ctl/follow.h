// Following a command across mothership restarts: pure rendering (plain lines, a live
// per-agent display) and seq bookkeeping, tested without a server, and CommandFollower, which
// owns the WatchCommand stream and its reconnects. Single-threaded: one follower per command.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/clock.h"
#include "common/random.h"
#include "tether/v1/control_service.grpc.pb.h"

namespace tether::ctl {

// "HH:MM:SS.mmm AGENT  TEXT" (UTC), agent and text escaped so neither can forge a line or
// drive the terminal; the mothership's own lines (no agent) are shown as "-".
std::string FormatCommandLine(const v1::CommandLine& line);

// "[#####-----]" with `cells` cells over done/total; full when `full` (a succeeded target that
// reported no steps), empty when total is 0.
std::string ProgressBar(int done, int total, int cells, bool full = false);

// The live display's block, one string per line, none wider than `width` columns: a header
// naming the command and its state, then one line per target
//   "web-1  [#####-----] 3/6  acme: applying 0002_add_orders"
// (the current step, the error of a failed target, or its state). Every agent-supplied string
// is escaped.
// With more than `max_targets` targets, the unfinished and failed ones are shown first and the
// rest counted on a last line.
std::vector<std::string> RenderTargets(const v1::CommandStatus& status, int width,
                                       int max_targets = 20);

// The one-line outcome: "command 42 succeeded on 2 agents in 3.4 s", "command 42 failed on
// web-2: <error>", "command 42 was cancelled ...". Escaped.
std::string CommandSummary(const v1::CommandStatus& status);

// "2/3 done" (targets succeeded of all), ", 1 failed" appended when some failed; "-" with no
// targets.
std::string AgentsCell(const v1::CommandStatus& status);

bool IsFinished(v1::CommandState state);

// `s` cut to `width` columns (a UTF-8 character counts as one column), never inside a
// character.
std::string FitToWidth(const std::string& s, int width);

// The live display as bytes for a terminal: each Frame() moves the cursor up over the block
// it drew last, clears to the end of the screen, prints the lines that arrived since (they
// scroll up and stay) and draws the block again.
class LiveView {
 public:
  explicit LiveView(int width) : width_(width) {}

  void AddLine(const v1::CommandLine& line) { pending_.push_back(FormatCommandLine(line)); }
  void SetStatus(const v1::CommandStatus& status) { status_ = status; }
  // Shown under the header until the next status (a reconnect in progress); empty clears it.
  void SetNote(std::string note) { note_ = std::move(note); }
  std::string Frame();

 private:
  int width_;
  std::vector<std::string> pending_;
  std::optional<v1::CommandStatus> status_;
  std::string note_;
  int drawn_ = 0;  // block lines on the screen below the cursor's line start
};

// What has been seen of one command's stream over any number of connections: lines are taken
// once each, in seq order, so a reconnect asks for after_seq() and a line sent twice is
// dropped.
class FollowCursor {
 public:
  explicit FollowCursor(int64_t after_seq = 0) : last_seq_(after_seq) {}

  // True when the line is new (its seq above every line taken); records it.
  bool TakeLine(const v1::CommandLine& line);
  void TakeStatus(const v1::CommandStatus& status) { status_ = status; }

  int64_t after_seq() const { return last_seq_; }
  const std::optional<v1::CommandStatus>& status() const { return status_; }
  // The command has ended and every line it stored has been taken.
  bool Complete() const;
  // The command has ended (some lines may still be owed).
  bool Ended() const { return status_.has_value() && IsFinished(status_->state()); }

 private:
  int64_t last_seq_;
  std::optional<v1::CommandStatus> status_;
};

// One WatchCommand call's events, as the generated reader gives them.
class CommandEventStream {
 public:
  virtual ~CommandEventStream() = default;
  virtual bool Read(v1::CommandEvent* event) = 0;
  virtual grpc::Status Finish() = 0;
};

// Opens WatchCommand calls; the real one wraps the stub, tests script the events.
class CommandWatcher {
 public:
  virtual ~CommandWatcher() = default;
  // With `wait_for_ready` (a reconnect to a mothership that has answered before), the real
  // one waits for the channel to come back instead of failing at once.
  virtual std::unique_ptr<CommandEventStream> Watch(const v1::WatchCommandRequest& request,
                                                    bool wait_for_ready) = 0;
};

// The stub-backed watcher; `make_context` gives each call its context (credentials, no
// deadline).
std::unique_ptr<CommandWatcher> NewGrpcCommandWatcher(
    v1::ControlService::Stub* stub,
    std::function<std::unique_ptr<grpc::ClientContext>()> make_context);

// Where a follower hands what it saw.
struct FollowCallbacks {
  std::function<void(const v1::CommandLine&)> on_line;      // each new line, once, in order
  std::function<void(const v1::CommandStatus&)> on_status;  // each status snapshot
  // The stream broke with `why` after the mothership had answered; the next attempt starts
  // after `delay`.
  std::function<void(const grpc::Status& why, absl::Duration delay)> on_reconnect;
};

struct FollowOptions {
  bool follow = true;  // false: the stored lines only
  // Whether the mothership has already answered (the command was just queued). Until it has,
  // only this many attempts are made, so a wrong address fails instead of waiting forever;
  // after that a follow reconnects until the command ends.
  bool contacted = false;
  int attempts_before_contact = 4;
};

// Streams one command's lines and statuses to callbacks until it ends (or, without follow,
// until the stored lines are sent). Retries broken streams with capped backoff.
class CommandFollower {
 public:
  CommandFollower(CommandWatcher* watcher, common::Clock* clock, common::Random* random)
      : watcher_(watcher), clock_(clock), random_(random) {}

  // OK with the last status seen (absent when the server sent none). Errors: the call's own
  // status when it cannot be retried (NOT_FOUND for an unknown id, UNAUTHENTICATED, ...) or
  // when the mothership could not be reached before it ever answered.
  grpc::Status Run(const std::string& id, const FollowOptions& options,
                   const FollowCallbacks& callbacks, std::optional<v1::CommandStatus>* last);

 private:
  CommandWatcher* watcher_;
  common::Clock* clock_;
  common::Random* random_;
};

// Whether a broken stream or a failed call is worth trying again: the server or the network
// went away, not a refusal.
bool IsRetryable(grpc::StatusCode code);

// Calls `call` until it succeeds, fails with a status that is not UNAVAILABLE or
// DEADLINE_EXCEEDED, or `attempts` calls were made; sleeps with backoff between. The caller
// sends the same request (and idempotency key) each time, so a retry never queues twice.
grpc::Status CallWithRetry(const std::function<grpc::Status()>& call, int attempts,
                           common::Clock* clock, common::Random* random);

}  // namespace tether::ctl
