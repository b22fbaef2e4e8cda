// CommandDispatcher: dedupe by id, runs, numbered progress lines and their re-sending.
#include "agent/commands/command_dispatch.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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
  for (const CommandRecord& record : *unfinished) {
    spdlog::info("command resumed id={} kind={} state={}", record.id, record.kind,
                 v1::CommandState_Name(record.state));
    Schedule(record.id);
  }
  std::map<std::string, v1::Command> early;
  {
    absl::MutexLock lock(&mu_);
    records_ = records;
    early.swap(early_);
  }
  for (const auto& [id, command] : early) Deliver(records, command);
  return absl::OkStatus();
}

void CommandDispatcher::Schedule(const std::string& id) {
  {
    absl::MutexLock lock(&mu_);
    Live& live = live_[id];
    if (live.scheduled) return;  // delivered again while queued or running
    live.scheduled = true;
    live.finished = false;
  }
  callbacks_.schedule([this, id](const absl::Notification* stop) { RunScheduled(id, stop); });
}

void CommandDispatcher::OnCommand(const v1::Command& command) {
  if (command.kind_case() == v1::Command::kApply) {
    // Run by the reconcile of its revision: only its lines can be asked for again.
    std::optional<v1::CommandUpdate> resend;
    {
      absl::MutexLock lock(&mu_);
      resend = ResendLocked(command.id(), command.attempt(), command.lines_stored());
    }
    if (resend.has_value()) Send(*resend);
    return;
  }
  CommandRecords* records;
  {
    absl::MutexLock lock(&mu_);
    records = records_;
    if (records == nullptr) {
      // The agent's database is not ready: handled once it is (the newest delivery wins).
      if (early_.size() < kMaxEarlyCommands || early_.count(command.id()) != 0) {
        early_[command.id()] = command;
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
    spdlog::warn("command not handled until it is delivered again id={} reason=\"{}\"", id,
                 got.status().message());
    return;
  }
  if (!got->has_value()) {
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
      if (auto st = records->Put(record); !st.ok()) {
        spdlog::warn("command not recorded id={} reason=\"{}\"", id, st.message());
        return;
      }
      spdlog::info("command {} id={} kind={}", valid.ok() ? "cancelled" : "refused", id,
                   record.kind);
      Send(FromRecord(record));
      return;
    }
    record.state = v1::COMMAND_STATE_QUEUED;
    if (auto st = records->Put(record); !st.ok()) {
      spdlog::warn("command not recorded id={} reason=\"{}\"", id, st.message());
      return;
    }
    spdlog::info("command queued id={} kind={} what=\"{}\"", id, record.kind,
                 DescribeCommand(command));
    Schedule(id);
    return;
  }
  const CommandRecord& record = **got;
  if (IsFinished(record.state)) {
    // Delivered again after it ended (the update was lost with a stream): answer from the
    // record, with the lines still in memory; never run it again.
    v1::CommandUpdate update = FromRecord(record);
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(id);
      if (it != live_.end() && it->second.attempt == record.attempt) {
        if (auto lines = ResendLocked(id, command.attempt(), command.lines_stored())) {
          update.set_first_line(lines->first_line());
          *update.mutable_progress() = lines->progress();
        }
      }
    }
    Send(update);
    return;
  }
  // Queued or running.
  bool schedule = false;
  std::optional<v1::CommandUpdate> resend;
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
      resend = ResendLocked(id, command.attempt(), command.lines_stored());
    }
  }
  if (schedule) Schedule(id);
  if (!resend.has_value()) return;
  // Lines added while the re-send was on its way follow it, in order.
  int64_t sent_upto = resend->first_line() + resend->progress_size() - 1;
  for (;;) {
    if (!callbacks_.send || !callbacks_.send(*resend)) return;
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it == live_.end() || it->second.attempt != resend->attempt()) return;
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

std::optional<v1::CommandUpdate> CommandDispatcher::ResendLocked(const std::string& id,
                                                                 int64_t attempt,
                                                                 int64_t lines_stored) {
  auto it = live_.find(id);
  if (it == live_.end() || it->second.attempt == 0) return std::nullopt;
  const Live& live = it->second;
  if (attempt > live.attempt) return std::nullopt;  // the mothership knows a newer run
  // Of an older attempt it has none of this one's lines.
  const int64_t after = attempt == live.attempt ? lines_stored : 0;
  const int64_t from = std::max(after + 1, live.first);
  const int64_t end = live.first + static_cast<int64_t>(live.lines.size());  // one past the last
  v1::CommandUpdate update;
  update.set_command_id(id);
  update.set_state(v1::COMMAND_STATE_RUNNING);
  update.set_attempt(live.attempt);
  update.set_steps_done(live.steps_done);
  update.set_steps_total(live.steps_total);
  update.set_step(live.step);
  if (from >= end) return std::nullopt;
  update.set_first_line(from);
  for (int64_t n = from; n < end; ++n) update.add_progress(live.lines[n - live.first]);
  return update;
}

void CommandDispatcher::AddLine(const std::string& id, const std::string& line) {
  std::optional<v1::CommandUpdate> update;
  {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it == live_.end()) return;  // evicted (an apply's lines after many other commands)
    Live& live = it->second;
    live.lines.push_back(line);
    const int64_t number = live.first + static_cast<int64_t>(live.lines.size()) - 1;
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
      update->add_progress(line);
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

void CommandDispatcher::RunScheduled(const std::string& id, const absl::Notification* shutdown) {
  CommandRecords* records;
  std::shared_ptr<absl::Notification> cancel;
  {
    absl::MutexLock lock(&mu_);
    records = records_;
    auto it = live_.find(id);
    if (records == nullptr || it == live_.end()) return;
    cancel = it->second.cancel;
  }
  auto unschedule = [&] {
    absl::MutexLock lock(&mu_);
    auto it = live_.find(id);
    if (it != live_.end()) it->second.scheduled = false;
  };
  auto got = records->Get(id);
  if (!got.ok() || !got->has_value()) {
    spdlog::warn("command not run id={} reason=\"{}\"", id,
                 got.ok() ? "no record" : std::string(got.status().message()));
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
    if (auto st = records->Put(record); !st.ok()) {
      // Left RUNNING in the records: resumed at the next start, where its steps are idempotent.
      spdlog::warn("command end not recorded id={} reason=\"{}\"", id, st.message());
    }
    {
      absl::MutexLock lock(&mu_);
      auto it = live_.find(id);
      if (it != live_.end()) FinishLocked(id, it->second);
    }
    spdlog::info("command ended id={} state={} error=\"{}\"", id,
                 v1::CommandState_Name(record.state), record.error);
    Send(FromRecord(record));
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
    spdlog::warn("command not started id={} reason=\"{}\"", id, st.message());
    unschedule();
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    Live& live = live_[id];
    live.attempt = record.attempt;
    live.lines.clear();
    live.first = 1;
    live.blocked = false;
    live.steps_done = record.steps_done;
    live.steps_total = record.steps_total;
    live.step.clear();
  }
  AddLine(id, resumed ? absl::StrCat("resuming after a restart (attempt ", record.attempt, ")")
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
  if (result.state == v1::COMMAND_STATE_RUNNING) {
    spdlog::info("command interrupted id={}; resumed at the next start", id);
    unschedule();
    return;
  }
  finish(result);
  if (result.changed_tenants && callbacks_.tenants_changed) callbacks_.tenants_changed();
}

}  // namespace tether::agent
