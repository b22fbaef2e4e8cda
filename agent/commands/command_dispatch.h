// CommandDispatcher: the agent's side of durable commands as pure state. Delivery is at least
// once; each command runs at most once to its end, by id: an unknown one is recorded QUEUED
// (the command kept whole; created only if no record exists, so two deliveries at once make
// one) and scheduled; one already finished is answered from its record and never run again;
// one under way is cancelled on request. A run persists RUNNING with a new attempt, streams
// every progress line at once as a numbered CommandUpdate (kept in memory, so lines a broken
// stream lost are re-sent after what the mothership says it stored, in updates of at most
// max_lines_per_update lines; an attempt numbers at most max_line_number lines, the last of
// which says that further lines were dropped), and persists its terminal state, which is sent
// only once recorded: an end that cannot be recorded is kept in memory and recorded again with
// backoff, or at once when the command is delivered again (never run again in this process). A run its environment is not ready for
// (CommandResult::again) and a transient failure of the records (a delivery's or a run's) are
// scheduled again with backoff. After a stream closed (StreamClosed) no new line is sent until
// the delivery that follows re-sent what the mothership lacks. At start-up every unfinished
// record is scheduled again (a resumed run is a new attempt and says so), then the commands
// delivered before, in the order they arrived. Apply commands are not run here: their lines
// are a reconcile's steps (ApplyLines), and the Ack or Nack of their revision ends them.
// No gRPC and no threads of its own: runs are handed to `schedule` (the reconcile thread),
// updates to `send` (the link). Thread-safe; no lock is held while calling out.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/commands/command_records.h"
#include "agent/commands/command_runner.h"
#include "common/clock.h"
#include "tether/v1/command.pb.h"

namespace tether::agent {

struct CommandDispatcherOptions {
  size_t max_lines_per_command = 20'000;  // kept for re-sending; the oldest go first
  size_t max_finished_kept = 64;          // finished commands whose lines stay in memory
  size_t max_lines_per_update = 1'000;    // the mothership refuses longer updates
  int64_t max_line_number = 200'000;      // the mothership refuses lines numbered beyond
  absl::Duration retry_first = absl::Seconds(1);  // backoff of runs and records to retry
  absl::Duration retry_max = absl::Seconds(30);
};

class CommandDispatcher {
 public:
  using Task = std::function<void(const absl::Notification* stop)>;
  struct Callbacks {
    // Runs `task` later on the thread that runs commands; `stop` fires when the agent stops.
    std::function<void(Task task)> schedule;
    // Like `schedule`, not before `delay` from now; unset: `schedule`.
    std::function<void(absl::Duration delay, Task task)> schedule_after;
    // Sends an update to the mothership; false when no stream carries it.
    std::function<bool(const v1::CommandUpdate& update)> send;
    // Runs a command whose record says RUNNING (on the scheduled thread).
    std::function<CommandResult(const CommandRecord& record, const CommandIo& io,
                                CommandStops stops)>
        run;
    // A command changed tenants: the current revision should be reconciled (and acked) again.
    std::function<void()> tenants_changed;
  };

  CommandDispatcher(common::Clock* clock, Callbacks callbacks,
                    CommandDispatcherOptions options = {});

  // Starts with the agent's records once its database is ready: schedules every unfinished
  // command, then handles the commands delivered before, in the order they arrived. The
  // records' codes (kUnavailable) when they cannot be listed; then call again.
  absl::Status ResumeUnfinished(CommandRecords* records);

  // A Command from the mothership (on the link thread). Invalid ones are recorded FAILED and
  // answered so; nothing else is returned: failures to reach the records are logged, and the
  // command is handled again after a backoff delay (on the scheduled thread).
  void OnCommand(const v1::Command& command);

  // A reconcile of the revision that apply command `command_id` stored starts: its lines are
  // sent as updates of that command (RUNNING), in a fresh attempt (microseconds since the
  // epoch, so each reconcile attempt numbers its lines from 1).
  StepFn ApplyLines(const std::string& command_id);

  // The stream to the mothership ended (on the link thread): lines it may have lost are re-sent
  // on the next delivery of each command, and no new line is sent before that.
  void StreamClosed();

 private:
  // What is kept in memory of one command's current attempt.
  struct Live {
    int64_t attempt = 0;
    std::deque<std::string> lines;
    int64_t first = 1;       // the number of lines.front()
    int64_t numbered = 0;    // lines numbered in this attempt (at most max_line_number)
    int64_t dropped = 0;     // lines past max_line_number, not sent
    bool blocked = false;    // a send failed: later lines wait for the re-send a delivery asks
    bool scheduled = false;  // a run is queued or under way
    bool finished = false;
    bool deferred = false;   // the last attempt was not run (CommandResult::again)
    uint64_t finished_order = 0;
    int steps_done = 0;
    int steps_total = 0;
    std::string step;
    std::optional<CommandRecord> unrecorded_end;  // a terminal state whose Put failed
    bool end_changed_tenants = false;             // of unrecorded_end
    absl::Duration retry_delay = absl::ZeroDuration();
    uint64_t task_token = 0;  // of the task that may run it; older ones do nothing
    bool delivery_pending = false;  // a delivery the records failed is to be handled again
    absl::Duration delivery_delay = absl::ZeroDuration();
    std::shared_ptr<absl::Notification> cancel = std::make_shared<absl::Notification>();
  };

  void Deliver(CommandRecords* records, const v1::Command& command);
  void Schedule(const std::string& id);
  // Schedules command `id` again after its next backoff delay, or `now` (it stays scheduled);
  // the task scheduled for it before, if any, then does nothing.
  void Retry(const std::string& id, bool now = false);
  // Handles `command` again after a backoff delay: the records failed its delivery.
  void RetryDelivery(const v1::Command& command);
  // Records `record`'s terminal state, then sends it; keeps it for Retry when it cannot.
  void RecordEnd(CommandRecords* records, const CommandRecord& record, bool changed_tenants);
  // Sends the kept lines the mothership lacks, then the ones added meanwhile; unblocks the
  // command's lines once all went out.
  void ResendAndUnblock(const std::string& id, int64_t attempt, int64_t lines_stored);
  // Runs command `id` (or records its end again) unless a later Retry replaced `token`.
  void RunScheduled(const std::string& id, const absl::Notification* shutdown, uint64_t token);
  void AddLine(const std::string& id, const std::string& line);
  void Progress(const std::string& id, int done, int total, const std::string& step);
  // Updates carrying the kept lines after `lines_stored` when the mothership's `attempt` is the
  // one in memory (all kept lines when it knows only an older one), max_lines_per_update each.
  std::vector<v1::CommandUpdate> ResendLocked(const std::string& id, int64_t attempt,
                                                int64_t lines_stored)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const std::string& id, Live& live) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Send(const v1::CommandUpdate& update);
  static v1::CommandUpdate FromRecord(const CommandRecord& record);

  common::Clock* clock_;
  const Callbacks callbacks_;
  const CommandDispatcherOptions options_;

  absl::Mutex mu_;
  CommandRecords* records_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::vector<v1::Command> early_ ABSL_GUARDED_BY(mu_);  // delivered before start, in order
  std::map<std::string, Live> live_ ABSL_GUARDED_BY(mu_);
  uint64_t finished_seq_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace tether::agent
