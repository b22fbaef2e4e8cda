// CommandDispatcher: dedupe by id, runs, numbered progress lines and their re-sending.
#include "agent/commands/command_dispatch.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace tether::agent {
namespace {

constexpr size_t kMaxEarlyCommands = 1'000;

}  // namespace

CommandDispatcher::CommandDispatcher(common::Clock* clock, Callbacks callbacks,
                                     CommandDispatcherOptions options)
    : clock_(clock), callbacks_(std::move(callbacks)), options_(options) {}

v1::CommandUpdate CommandDispatcher::FromRecord(const CommandRecord& record) {
  v1::CommandUpdate update;
  update.set_command_id(record.id);
  update.set_state(record.state);
  update.set_error(record.error);
  update.set_attempt(record.attempt);
  update.set_steps_done(record.steps_done);
  update.set_steps_total(record.steps_total);
  return update;
}

void CommandDispatcher::Send(const v1::CommandUpdate& update) {
  if (callbacks_.send) (void)callbacks_.send(update);
}

absl::Status CommandDispatcher::ResumeUnfinished(CommandRecords* records) {
  auto unfinished = records->ListUnfinished();
  if (!unfinished.ok()) return unfinished.status();
  std::vector<v1::Command> early;
  {
    absl::MutexLock lock(&mu_);
    records_ = records;  // before any run is scheduled: a run needs it
    early.swap(early_);
  }
  for (const CommandRecord& record : *unfinished) {
    spdlog::info("command resumed id={} kind={} state={}", record.id, record.kind,
                 v1::CommandState_Name(record.state));
    Schedule(record.id);
  }
  for (const v1::Command& command : early) Deliver(records, command);
  return absl::OkStatus();
}

void CommandDispatcher::Schedule(const std::string& id) {
  uint64_t token;
  {
    absl::MutexLock lock(&mu_);
    Live& live = live_[id];
    if (live.scheduled) return;  // delivered again while queued or running
    live.scheduled = true;
    token = live.task_token;
  }
  callbacks_.schedule(
      [this, id, token](const absl::Notification* stop) { RunScheduled(id, stop, token); });
}

void CommandDispatcher::Retry(const std::string& id, bool now) {
  absl::Duration delay;
  uint64_t token;
  {
    absl::MutexLock lock(&mu_);
    Live& live = live_[id];
    live.scheduled = true;
    token = ++live.task_token;  // the task scheduled before, if any, does nothing
    if (!now) {
      live.retry_delay = live.retry_delay == absl::ZeroDuration()
                             ? options_.retry_first
                             : std::min(live.retry_delay * 2, options_.retry_max);
    }
    delay = now ? absl::ZeroDuration() : live.retry_delay;
  }
  Task task = [this, id, token](const absl::Notification* stop) {
    RunScheduled(id, stop, token);
  };
  if (now || !callbacks_.schedule_after) {
    callbacks_.schedule(std::move(task));
  } else {
    callbacks_.schedule_after(delay, std::move(task));
  }
}

void CommandDispatcher::RetryDelivery(const v1::Command& command) {
  absl::Duration delay;
  {
    absl::MutexLock lock(&mu_);
    Live& live = live_[command.id()];
    if (live.delivery_pending) return;  // one retry at a time; it reads the records afresh
    live.delivery_pending = true;
    live.delivery_delay = live.delivery_delay == absl::ZeroDuration()
                              ? options_.retry_first
                              : std::min(live.delivery_delay * 2, options_.retry_max);
    delay = live.delivery_delay;
  }
  Task task = [this, command](const absl::Notification*) {
    CommandRecords* records;
    {
      absl::MutexLock lock(&mu_);
      records = records_;
      auto it = live_.find(command.id());
      if (it != live_.end()) it->second.delivery_pending = false;
    }
    if (records != nullptr) Deliver(records, command);
  };
  if (callbacks_.schedule_after) {
    callbacks_.schedule_after(delay, std::move(task));
  } else {
    callbacks_.schedule(std::move(task));
  }
}

void CommandDispatcher::StreamClosed() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, live] : live_) live.blocked = true;
}

void CommandDispatcher::OnCommand(const v1::Command& command) {
  if (command.kind_case() == v1::Command::kApply) {
    // Run by the reconcile of its revision: only its lines can be asked for again.
    ResendAndUnblock(command.id(), command.attempt(), command.lines_stored());
    return;
  }
  CommandRecords* records;
  {
    absl::MutexLock lock(&mu_);
    records = records_;
    if (records == nullptr) {
      // The agent's database is not ready: handled once it is (the newest delivery wins).
      auto same = std::find_if(early_.begin(), early_.end(), [&](const v1::Command& c) {
        return c.id() == command.id();
      });
      if (same != early_.end()) {
        *same = command;  // keeps its place in the order of arrival
      } else if (early_.size() < kMaxEarlyCommands) {
        early_.push_back(command);
      } else {
        spdlog::warn("command dropped until the next stream id={} reason=\"too many waiting\"",
                     command.id());
      }
      return;
    }
  }
  Deliver(records, command);
}

void CommandDispatcher::Deliver(CommandRecords* records, const v1::Command& command) {
  const std::string& id = command.id();
  const absl::Status valid = ValidateCommand(command);
  if (id.empty() || id.size() > 128) {
    spdlog::warn("command ignored reason=\"{}\"", valid.message());
    return;
  }
  auto got = records->Get(id);
  if (!got.ok()) {
    spdlog::warn("command not handled yet, retrying id={} reason=\"{}\"", id,
                 got.status().message());
    RetryDelivery(command);
    return;
  }
  if (!got->has_value()) {
    // Created only if still absent: another delivery (the replay of early ones at start-up,
    // a re-delivery on the link) may have created, run or ended it since the Get.
    CommandRecord record;
    record.id = id;
    record.command = command;
    // What the mothership knew of the run at delivery is not part of the command.
    record.command.clear_cancel();
    record.command.clear_attempt();
    record.command.clear_lines_stored();
    record.kind = CommandKind(command);
    record.started_at = clock_->Now();
    if (!valid.ok() || command.cancel()) {
      record.state = valid.ok() ? v1::COMMAND_STATE_CANCELLED : v1::COMMAND_STATE_FAILED;
      record.error = valid.ok() ? "cancelled before it started"
                                : absl::StrCat("invalid command: ", valid.message());
      record.finished_at = clock_->Now();
    } else {
      record.state = v1::COMMAND_STATE_QUEUED;
    }
    auto created = records->Create(record);
    if (!created.ok()) {
      spdlog::warn("command not recorded yet, retrying id={} reason=\"{}\"", id,
                   created.status().message());
      RetryDelivery(command);
      return;
    }
    if (*created && IsFinished(record.state)) {
      spdlog::info("command {} id={} kind={}", valid.ok() ? "cancelled" : "refused", id,
                   record.kind);
      Send(FromRecord(record));
      return;
    }
    if (*created) {
      spdlog::info("command queued id={} kind={} what=\"{}\"", id, record.kind,
                   DescribeCommand(command));
      Schedule(id);
      return;
    }
    got = records->Get(id);
    if (!got.ok() || !got->has_value()) {
      spdlog::warn("command not handled yet, retrying id={} reason=\"{}\"", id,
                   got.ok() ? "its record vanished" : std::string(got.status().message()));
      RetryDelivery(command);
      return;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second.delivery_delay = absl::ZeroDuration();
  }
  const CommandRecord& record = **got;
  if (IsFinished(record.state)) {
    // Delivered again after it ended (the update was lost with a stream): answer from the
    // record, with the lines still in memory; never run it again.
    // The last lines go with the terminal state, the ones before in updates of their own.
    v1::CommandUpdate update = FromRecord(record);
    std::vector<v1::CommandUpdate> lines;
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(id);
      if (it != live_.end() && it->second.attempt == record.attempt) {
        lines = ResendLocked(id, command.attempt(), command.lines_stored());
      }
    }
    if (!lines.empty()) {
      update.set_first_line(lines.back().first_line());
      *update.mutable_progress() = lines.back().progress();
      lines.pop_back();
    }
    for (const v1::CommandUpdate& u : lines) {
      if (!callbacks_.send || !callbacks_.send(u)) return;
    }
    Send(update);
    return;
  }
  // Queued or running.
  bool schedule = false;
  bool resend = false;
  bool record_end = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it == live_.end() || !it->second.scheduled) {
      schedule = true;  // recorded, but no run of this process has it (its start failed)
      if (command.cancel()) live_[id].cancel->Notify();
    } else {
      if (command.cancel() && !it->second.cancel->HasBeenNotified()) {
        spdlog::info("command cancel requested id={}", id);
        it->second.cancel->Notify();
      }
      resend = true;
      record_end = it->second.unrecorded_end.has_value();
    }
  }
  if (schedule) Schedule(id);
  if (resend) ResendAndUnblock(id, command.attempt(), command.lines_stored());
  // Ended, but its end is not recorded yet: recorded again now (on the thread that runs
  // commands), never run again.
  if (record_end) Retry(id, /*now=*/true);
}

void CommandDispatcher::ResendAndUnblock(const std::string& id, int64_t attempt,
                                         int64_t lines_stored) {
  std::vector<v1::CommandUpdate> resend;
  int64_t live_attempt = 0;
  int64_t sent_upto = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    // Not run here, or the mothership knows a newer run: nothing of it to send.
    if (it == live_.end() || it->second.attempt == 0 || attempt > it->second.attempt) return;
    live_attempt = it->second.attempt;
    resend = ResendLocked(id, attempt, lines_stored);
    sent_upto = it->second.first + static_cast<int64_t>(it->second.lines.size()) - 1;
  }
  // Lines added while the re-send was on its way (held back: blocked) follow it, in order.
  for (;;) {
    for (const v1::CommandUpdate& update : resend) {
      if (!callbacks_.send || !callbacks_.send(update)) {
        absl::MutexLock lock(&mu_);
        auto it = live_.find(id);
        if (it != live_.end() && it->second.attempt == live_attempt) it->second.blocked = true;
        return;
      }
    }
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it == live_.end() || it->second.attempt != live_attempt) return;
    Live& live = it->second;
    const int64_t last = live.first + static_cast<int64_t>(live.lines.size()) - 1;
    if (last <= sent_upto) {
      live.blocked = false;
      return;
    }
    resend = ResendLocked(id, live.attempt, sent_upto);
    sent_upto = last;
  }
}

std::vector<v1::CommandUpdate> CommandDispatcher::ResendLocked(const std::string& id,
                                                               int64_t attempt,
                                                               int64_t lines_stored) {
  std::vector<v1::CommandUpdate> out;
  auto it = live_.find(id);
  if (it == live_.end() || it->second.attempt == 0) return out;
  const Live& live = it->second;
  if (attempt > live.attempt) return out;  // the mothership knows a newer run
  // Of an older attempt it has none of this one's lines.
  const int64_t after = attempt == live.attempt ? lines_stored : 0;
  const int64_t end = live.first + static_cast<int64_t>(live.lines.size());  // one past the last
  const int64_t chunk = static_cast<int64_t>(std::max<size_t>(options_.max_lines_per_update, 1));
  for (int64_t from = std::max(after + 1, live.first); from < end; from += chunk) {
    v1::CommandUpdate& update = out.emplace_back();
    update.set_command_id(id);
    update.set_state(v1::COMMAND_STATE_RUNNING);
    update.set_attempt(live.attempt);
    update.set_steps_done(live.steps_done);
    update.set_steps_total(live.steps_total);
    update.set_step(live.step);
    update.set_first_line(from);
    for (int64_t n = from; n < std::min(end, from + chunk); ++n) {
      update.add_progress(live.lines[n - live.first]);
    }
  }
  return out;
}

void CommandDispatcher::AddLine(const std::string& id, const std::string& line) {
  std::optional<v1::CommandUpdate> update;
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return;  // evicted (an apply's lines after many other commands)
    Live& live = it->second;
    if (live.numbered >= options_.max_line_number) {
      ++live.dropped;  // the mothership would refuse it, and the stream with it
      return;
    }
    const int64_t number = ++live.numbered;
    const std::string text =
        number < options_.max_line_number
            ? line
            : absl::StrCat("further lines of attempt ", live.attempt, " are dropped: it reached ",
                           number, " lines");
    live.lines.push_back(text);
    while (live.lines.size() > options_.max_lines_per_command) {
      live.lines.pop_front();
      ++live.first;
    }
    if (!live.blocked) {
      update.emplace();
      update->set_command_id(id);
      update->set_state(v1::COMMAND_STATE_RUNNING);
      update->set_attempt(live.attempt);
      update->set_first_line(number);
      update->add_progress(text);
      update->set_steps_done(live.steps_done);
      update->set_steps_total(live.steps_total);
      update->set_step(live.step);
    }
  }
  if (!update.has_value()) return;
  if (!callbacks_.send || !callbacks_.send(*update)) {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second.blocked = true;
  }
}

void CommandDispatcher::Progress(const std::string& id, int done, int total,
                                 const std::string& step) {
  absl::MutexLock lock(&mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return;
  it->second.steps_done = done;
  it->second.steps_total = total;
  it->second.step = step;
}

void CommandDispatcher::FinishLocked(const std::string& id, Live& live) {
  live.finished = true;
  live.scheduled = false;
  live.finished_order = ++finished_seq_;
  size_t finished = 0;
  for (const auto& [other, l] : live_) finished += l.finished ? 1 : 0;
  while (finished > options_.max_finished_kept) {
    auto oldest = live_.end();
    for (auto it = live_.begin(); it != live_.end(); ++it) {
      if (it->second.finished &&
          (oldest == live_.end() || it->second.finished_order < oldest->second.finished_order)) {
        oldest = it;
      }
    }
    if (oldest == live_.end()) break;
    live_.erase(oldest);
    --finished;
  }
}

StepFn CommandDispatcher::ApplyLines(const std::string& command_id) {
  {
    absl::MutexLock lock(&mu_);
    Live& live = live_[command_id];
    const int64_t attempt = std::max(live.attempt + 1, absl::ToUnixMicros(clock_->Now()));
    live = Live();
    live.attempt = attempt;
    // Nothing to run or persist: it is done as far as this dispatcher goes, and may be evicted.
    FinishLocked(command_id, live);
  }
  return [this, command_id](const std::string& line) { AddLine(command_id, line); };
}

void CommandDispatcher::RecordEnd(CommandRecords* records, const CommandRecord& record,
                                  bool changed_tenants) {
  const std::string& id = record.id;
  if (auto st = records->Put(record); !st.ok()) {
    // Not ended until recorded: a restart would find it RUNNING and run it again. Kept here and
    // recorded again later; a delivery meanwhile finds it scheduled and does not run it.
    {
      absl::MutexLock lock(&mu_);
      Live& live = live_[id];
      live.unrecorded_end = record;
      live.end_changed_tenants = changed_tenants;
    }
    spdlog::warn("command end not recorded, retrying id={} state={} reason=\"{}\"", id,
                 v1::CommandState_Name(record.state), st.message());
    Retry(id);
    return;
  }
  int64_t dropped = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it != live_.end()) {
      dropped = it->second.dropped;
      it->second.unrecorded_end.reset();
      it->second.retry_delay = absl::ZeroDuration();
      FinishLocked(id, it->second);
    }
  }
  spdlog::info("command ended id={} state={} error=\"{}\" lines_dropped={}", id,
               v1::CommandState_Name(record.state), record.error, dropped);
  Send(FromRecord(record));
  if (changed_tenants && callbacks_.tenants_changed) callbacks_.tenants_changed();
}

void CommandDispatcher::RunScheduled(const std::string& id, const absl::Notification* shutdown,
                                     uint64_t token) {
  CommandRecords* records;
  std::shared_ptr<absl::Notification> cancel;
  std::optional<CommandRecord> unrecorded_end;
  bool end_changed_tenants = false;
  {
    absl::MutexLock lock(&mu_);
    records = records_;
    auto it = live_.find(id);
    if (it == live_.end()) return;
    if (it->second.task_token != token) return;  // replaced by a later Retry
    if (records == nullptr) {
      it->second.scheduled = false;
      return;
    }
    cancel = it->second.cancel;
    unrecorded_end = it->second.unrecorded_end;
    end_changed_tenants = it->second.end_changed_tenants;
  }
  if (unrecorded_end.has_value()) {
    RecordEnd(records, *unrecorded_end, end_changed_tenants);
    return;
  }
  auto unschedule = [&] {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second.scheduled = false;
  };
  auto got = records->Get(id);
  if (!got.ok()) {
    spdlog::warn("command not run yet, retrying id={} reason=\"{}\"", id,
                 got.status().message());
    Retry(id);
    return;
  }
  if (!got->has_value()) {
    spdlog::warn("command not run id={} reason=\"no record\"", id);
    unschedule();
    return;
  }
  CommandRecord record = **got;
  if (IsFinished(record.state)) {
    unschedule();
    return;
  }
  auto finish = [&](const CommandResult& result) {
    record.state = result.state;
    record.error = result.error;
    record.finished_at = clock_->Now();
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(id);
      if (it != live_.end()) {
        if (it->second.steps_total > 0) {
          record.steps_done = it->second.steps_done;
          record.steps_total = it->second.steps_total;
        }
      }
    }
    RecordEnd(records, record, result.changed_tenants);
  };
  if (cancel->HasBeenNotified() && record.state == v1::COMMAND_STATE_QUEUED) {
    finish({v1::COMMAND_STATE_CANCELLED, "cancelled before it started", false});
    return;
  }
  const bool resumed = record.state == v1::COMMAND_STATE_RUNNING;
  record.state = v1::COMMAND_STATE_RUNNING;
  record.attempt += 1;
  if (!resumed) record.started_at = clock_->Now();
  record.error.clear();
  record.finished_at.reset();
  if (auto st = records->Put(record); !st.ok()) {
    spdlog::warn("command not started yet, retrying id={} reason=\"{}\"", id, st.message());
    Retry(id);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    Live& live = live_[id];
    live.attempt = record.attempt;
    live.lines.clear();
    live.first = 1;
    live.numbered = 0;
    live.dropped = 0;
    live.blocked = false;
    live.steps_done = record.steps_done;
    live.steps_total = record.steps_total;
    live.step.clear();
  }
  bool deferred = false;
  {
    absl::MutexLock lock(&mu_);
    deferred = std::exchange(live_[id].deferred, false);
  }
  AddLine(id, deferred  ? absl::StrCat("running again (attempt ", record.attempt, ")")
              : resumed ? absl::StrCat("resuming after a restart (attempt ", record.attempt, ")")
                        : absl::StrCat("running: ", DescribeCommand(record.command)));
  CommandIo io;
  io.line = [this, id](const std::string& line) { AddLine(id, line); };
  io.progress = [this, id](int done, int total, const std::string& step) {
    Progress(id, done, total, step);
  };
  io.save_detail = [&record, records](const nlohmann::json& detail) {
    record.detail = detail;
    return records->Put(record);
  };
  const CommandResult result = callbacks_.run(record, io, {cancel.get(), shutdown});
  if (result.again) {
    AddLine(id, absl::StrCat("not run yet, to be run again: ", result.error));
    {
      absl::MutexLock lock(&mu_);
      live_[id].deferred = true;
    }
    Retry(id);
    return;
  }
  if (result.state == v1::COMMAND_STATE_RUNNING) {
    spdlog::info("command interrupted id={}; resumed at the next start", id);
    unschedule();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second.retry_delay = absl::ZeroDuration();
  }
  finish(result);
}

}  // namespace tether::agent
