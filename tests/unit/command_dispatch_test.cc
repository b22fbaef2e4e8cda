// CommandDispatcher over fake records, a fake clock, a task queue the test drains and a
// recording link: a duplicate delivery runs once; a delivery after the end is answered from the
// record and never run again; a cancel before the start records CANCELLED without running, one
// during a run signals its stop; a record left RUNNING by a restart is resumed as the next
// attempt and finishes once; lines a broken stream lost are re-sent after what the mothership
// stored, numbered, in updates of at most 1000 lines, and after a closed stream before any new
// line; an attempt numbers a bounded count of lines; an end that cannot be recorded is not sent
// and is recorded again, never run again; a run not ready yet runs again later; two deliveries
// at once create one record; commands run in the order they arrived; invalid commands are
// refused; apply commands get their reconcile's lines.
#include "agent/commands/command_dispatch.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_command_records.h"

namespace tether::agent {
namespace {

class CommandDispatchTest : public ::testing::Test {
 protected:
  std::unique_ptr<CommandDispatcher> Make(CommandDispatcherOptions options = {}) {
    CommandDispatcher::Callbacks callbacks;
    callbacks.schedule = [this](CommandDispatcher::Task task) {
      if (run_inline_) {
        task(&shutdown_);
      } else {
        tasks_.push_back(std::move(task));
      }
    };
    callbacks.schedule_after = [this](absl::Duration delay, CommandDispatcher::Task task) {
      delays_.push_back(delay);
      tasks_.push_back(std::move(task));
    };
    callbacks.send = [this](const v1::CommandUpdate& update) {
      if (!link_up_) return false;
      sent_.push_back(update);
      return true;
    };
    callbacks.run = [this](const CommandRecord& record, const CommandIo& io, CommandStops stops) {
      ++runs_;
      return run_ ? run_(record, io, stops)
                  : CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", true};
    };
    callbacks.tenants_changed = [this] { ++changed_; };
    return std::make_unique<CommandDispatcher>(&clock_, std::move(callbacks), options);
  }

  // Runs the first queued task only (one that schedules itself again is not run again).
  void RunOne() {
    ASSERT_FALSE(tasks_.empty());
    auto task = std::move(tasks_.front());
    tasks_.erase(tasks_.begin());
    task(&shutdown_);
  }

  void RunTasks() {
    while (!tasks_.empty()) {
      auto task = std::move(tasks_.front());
      tasks_.erase(tasks_.begin());
      task(&shutdown_);
    }
  }

  static v1::Command Migrate(const std::string& id, bool cancel = false, int64_t attempt = 0,
                             int64_t lines_stored = 0) {
    v1::Command c;
    c.set_id(id);
    c.mutable_migrate()->set_tenant("acme");
    c.set_cancel(cancel);
    c.set_attempt(attempt);
    c.set_lines_stored(lines_stored);
    return c;
  }

  // Every line sent for `id`, by attempt and number, as the mothership would store them.
  std::map<std::pair<int64_t, int64_t>, std::string> Lines(const std::string& id) const {
    std::map<std::pair<int64_t, int64_t>, std::string> out;
    for (const auto& u : sent_) {
      if (u.command_id() != id) continue;
      for (int i = 0; i < u.progress_size(); ++i) {
        out[{u.attempt(), u.first_line() + i}] = u.progress(i);
      }
    }
    return out;
  }

  testing::FakeClock clock_;
  testing::FakeCommandRecords records_;
  absl::Notification shutdown_;
  std::vector<CommandDispatcher::Task> tasks_;
  std::vector<absl::Duration> delays_;  // of the tasks scheduled with a delay
  bool run_inline_ = false;             // schedule runs the task at once
  std::vector<v1::CommandUpdate> sent_;
  bool link_up_ = true;
  int runs_ = 0;
  int changed_ = 0;
  std::function<CommandResult(const CommandRecord&, const CommandIo&, CommandStops)> run_;
};

TEST_F(CommandDispatchTest, ADuplicateDeliveryRunsOnce) {
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  d->OnCommand(Migrate("c-1"));
  EXPECT_EQ(tasks_.size(), 1u);
  ASSERT_TRUE(records_.Find("c-1").has_value());
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_QUEUED);
  EXPECT_EQ(records_.Find("c-1")->command.migrate().tenant(), "acme");

  RunTasks();
  d->OnCommand(Migrate("c-1", false, 1, 1));
  RunTasks();

  EXPECT_EQ(runs_, 1);
  EXPECT_EQ(changed_, 1);
  EXPECT_EQ(records_.StatesOf("c-1"),
            (std::vector<v1::CommandState>{v1::COMMAND_STATE_QUEUED, v1::COMMAND_STATE_RUNNING,
                                           v1::COMMAND_STATE_SUCCEEDED}));
  EXPECT_EQ(records_.Find("c-1")->attempt, 1);
  ASSERT_FALSE(sent_.empty());
  EXPECT_EQ(sent_.back().state(), v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(CommandDispatchTest, ADeliveryAfterTheEndIsAnsweredFromTheRecordAndNotRunAgain) {
  run_ = [](const CommandRecord&, const CommandIo& io, CommandStops) {
    io.line("acme: at version 3");
    return CommandResult{v1::COMMAND_STATE_FAILED, "acme: disk full", false};
  };
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunTasks();
  sent_.clear();

  // The final update was lost: the mothership stored one line of attempt 1 and asks again.
  d->OnCommand(Migrate("c-1", false, 1, 1));
  EXPECT_TRUE(tasks_.empty());
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].state(), v1::COMMAND_STATE_FAILED);
  EXPECT_EQ(sent_[0].error(), "acme: disk full");
  EXPECT_EQ(sent_[0].attempt(), 1);
  EXPECT_EQ(sent_[0].first_line(), 2);
  ASSERT_EQ(sent_[0].progress_size(), 1);
  EXPECT_EQ(sent_[0].progress(0), "acme: at version 3");

  // After a restart (a new dispatcher), from the record alone.
  sent_.clear();
  auto restarted = Make();
  ASSERT_TRUE(restarted->ResumeUnfinished(&records_).ok());
  restarted->OnCommand(Migrate("c-1", false, 1, 1));
  RunTasks();
  EXPECT_EQ(runs_, 1);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].state(), v1::COMMAND_STATE_FAILED);
  EXPECT_EQ(sent_[0].progress_size(), 0);
}

TEST_F(CommandDispatchTest, ACancelBeforeTheStartRecordsItCancelledWithoutRunningIt) {
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  d->OnCommand(Migrate("c-1", /*cancel=*/true));
  // Never seen before and already cancelled: recorded so, never scheduled.
  d->OnCommand(Migrate("c-2", /*cancel=*/true));
  EXPECT_EQ(tasks_.size(), 1u);
  RunTasks();

  EXPECT_EQ(runs_, 0);
  for (const std::string id : {"c-1", "c-2"}) {
    SCOPED_TRACE(id);
    ASSERT_TRUE(records_.Find(id).has_value());
    EXPECT_EQ(records_.Find(id)->state, v1::COMMAND_STATE_CANCELLED);
    EXPECT_TRUE(records_.Find(id)->finished_at.has_value());
  }
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[0].command_id(), "c-2");
  EXPECT_EQ(sent_[0].state(), v1::COMMAND_STATE_CANCELLED);
  EXPECT_EQ(sent_[1].command_id(), "c-1");
  EXPECT_EQ(sent_[1].state(), v1::COMMAND_STATE_CANCELLED);
}

TEST_F(CommandDispatchTest, ACancelDuringARunSignalsItsStop) {
  std::unique_ptr<CommandDispatcher> d = Make();
  bool stopped_between_steps = false;
  run_ = [&](const CommandRecord&, const CommandIo& io, CommandStops stops) {
    io.line("acme: at version 3");
    EXPECT_FALSE(stops.cancel->HasBeenNotified());
    d->OnCommand(Migrate("c-1", /*cancel=*/true, 1, 1));  // from the link, mid-run
    stopped_between_steps = stops.cancel->HasBeenNotified();
    return CommandResult{v1::COMMAND_STATE_CANCELLED, "cancelled after 1 of 2 steps", true};
  };
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunTasks();
  EXPECT_TRUE(stopped_between_steps);
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_CANCELLED);
  EXPECT_EQ(sent_.back().state(), v1::COMMAND_STATE_CANCELLED);
  EXPECT_EQ(sent_.back().error(), "cancelled after 1 of 2 steps");
}

TEST_F(CommandDispatchTest, ARecordLeftRunningIsResumedAsTheNextAttemptAndFinishesOnce) {
  CommandRecord left;
  left.id = "c-1";
  left.kind = "rollback";
  left.command.set_id("c-1");
  left.command.mutable_rollback()->set_tenant("acme");
  left.state = v1::COMMAND_STATE_RUNNING;
  left.attempt = 1;
  left.detail = {{"target_version", 2}};
  records_.Seed(left);
  nlohmann::json seen_detail;
  run_ = [&](const CommandRecord& record, const CommandIo&, CommandStops) {
    seen_detail = record.detail;
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", true};
  };

  auto d = Make();
  d->OnCommand(left.command);  // before the records are ready: waits
  EXPECT_TRUE(tasks_.empty());
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  EXPECT_EQ(tasks_.size(), 1u);  // the early delivery did not add a second run
  RunTasks();

  EXPECT_EQ(runs_, 1);
  EXPECT_EQ(seen_detail["target_version"], 2);
  EXPECT_EQ(records_.Find("c-1")->attempt, 2);
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_SUCCEEDED);
  ASSERT_FALSE(sent_.empty());
  EXPECT_EQ(sent_[0].attempt(), 2);
  EXPECT_EQ(sent_[0].first_line(), 1);
  ASSERT_EQ(sent_[0].progress_size(), 1);
  EXPECT_EQ(sent_[0].progress(0), "resuming after a restart (attempt 2)");

  auto again = Make();
  ASSERT_TRUE(again->ResumeUnfinished(&records_).ok());
  EXPECT_TRUE(tasks_.empty());
}

TEST_F(CommandDispatchTest, LinesABrokenStreamLostAreResentAfterWhatWasStored) {
  std::unique_ptr<CommandDispatcher> d = Make();
  run_ = [&](const CommandRecord&, const CommandIo& io, CommandStops) {
    io.line("line 2");
    link_up_ = false;
    io.line("line 3");  // lost
    link_up_ = true;
    io.line("line 4");  // held back: it would land after a gap
    // The stream is back; the mothership stored lines 1 and 2 of attempt 1.
    d->OnCommand(Migrate("c-1", false, 1, 2));
    io.line("line 5");
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", false};
  };
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunTasks();

  const auto lines = Lines("c-1");
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines.at({1, 1}), "running: migrate acme to the latest version");
  EXPECT_EQ(lines.at({1, 2}), "line 2");
  EXPECT_EQ(lines.at({1, 3}), "line 3");
  EXPECT_EQ(lines.at({1, 4}), "line 4");
  EXPECT_EQ(lines.at({1, 5}), "line 5");
  // Sent in order: no update starts beyond the line after the last one sent.
  int64_t next = 1;
  for (const auto& u : sent_) {
    if (u.progress_size() == 0) continue;
    EXPECT_LE(u.first_line(), next);
    next = std::max(next, u.first_line() + u.progress_size());
  }
  EXPECT_EQ(changed_, 0);
}

TEST_F(CommandDispatchTest, OnlyTheNewestLinesAreKeptForResending) {
  CommandDispatcherOptions options;
  options.max_lines_per_command = 3;
  auto d = Make(options);
  run_ = [](const CommandRecord&, const CommandIo& io, CommandStops) {
    for (int i = 2; i <= 6; ++i) io.line(absl::StrCat("line ", i));
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", false};
  };
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunTasks();
  sent_.clear();
  d->OnCommand(Migrate("c-1", false, 1, 0));
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].first_line(), 4);
  ASSERT_EQ(sent_[0].progress_size(), 3);
  EXPECT_EQ(sent_[0].progress(2), "line 6");
}

TEST_F(CommandDispatchTest, AnInvalidCommandIsRecordedFailedAndNeverRun) {
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  v1::Command bad;
  bad.set_id("c-1");
  bad.mutable_rollback()->set_tenant("acme; DROP DATABASE shop");
  d->OnCommand(bad);
  RunTasks();
  EXPECT_EQ(runs_, 0);
  ASSERT_TRUE(records_.Find("c-1").has_value());
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_FAILED);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].state(), v1::COMMAND_STATE_FAILED);
  EXPECT_EQ(sent_[0].error().rfind("invalid command: rollback.tenant: ", 0), 0u) << sent_[0].error();
}

TEST_F(CommandDispatchTest, AnApplysLinesAreItsReconcilesInAFreshAttemptEachTime) {
  auto d = Make();
  StepFn lines = d->ApplyLines("apply-7");
  lines("revision 7: 1 tenants, 1 to change, target version 3");
  lines("acme: at version 3 (1 applied) in 0 ms");
  ASSERT_EQ(sent_.size(), 2u);
  const int64_t attempt = sent_[0].attempt();
  EXPECT_EQ(attempt, absl::ToUnixMicros(clock_.Now()));
  EXPECT_EQ(sent_[0].state(), v1::COMMAND_STATE_RUNNING);
  EXPECT_EQ(sent_[1].first_line(), 2);
  EXPECT_TRUE(records_.puts().empty());  // nothing to persist: the ack ends it

  // Redelivered with one line stored: the second is sent again.
  sent_.clear();
  v1::Command apply;
  apply.set_id("apply-7");
  apply.mutable_apply()->set_revision(7);
  apply.set_attempt(attempt);
  apply.set_lines_stored(1);
  d->OnCommand(apply);
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].first_line(), 2);
  EXPECT_EQ(sent_[0].progress(0), "acme: at version 3 (1 applied) in 0 ms");

  // Another reconcile of it (same clock): a higher attempt, numbered from 1 again.
  sent_.clear();
  d->ApplyLines("apply-7")("revision 7: 1 tenants, 0 to change, target version 3");
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_GT(sent_[0].attempt(), attempt);
  EXPECT_EQ(sent_[0].first_line(), 1);
}

TEST_F(CommandDispatchTest, LinesAreResentInUpdatesTheMothershipAccepts) {
  std::unique_ptr<CommandDispatcher> d = Make();
  std::vector<v1::CommandUpdate> resent;
  run_ = [&](const CommandRecord&, const CommandIo& io, CommandStops) {
    link_up_ = false;
    for (int i = 2; i <= 2500; ++i) io.line(absl::StrCat("line ", i));
    link_up_ = true;
    // The stream is back; the mothership stored nothing of attempt 1.
    const size_t before = sent_.size();
    d->OnCommand(Migrate("c-1", false, 1, 0));
    resent.assign(sent_.begin() + static_cast<std::ptrdiff_t>(before), sent_.end());
    io.line("line 2501");
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", false};
  };
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunTasks();

  ASSERT_EQ(resent.size(), 3u);
  EXPECT_EQ(resent[0].first_line(), 1);
  EXPECT_EQ(resent[1].first_line(), 1001);
  EXPECT_EQ(resent[2].first_line(), 2001);
  for (const auto& u : sent_) EXPECT_LE(u.progress_size(), 1000);
  const auto lines = Lines("c-1");
  ASSERT_EQ(lines.size(), 2501u);
  EXPECT_EQ(lines.at({1, 2500}), "line 2500");
  EXPECT_EQ(lines.at({1, 2501}), "line 2501");

  // Asked again after the end: the lines in chunks, the last ones with the terminal state.
  sent_.clear();
  d->OnCommand(Migrate("c-1", false, 1, 500));
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(sent_[0].first_line(), 501);
  EXPECT_EQ(sent_[0].progress_size(), 1000);
  EXPECT_EQ(sent_[2].state(), v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_EQ(sent_[2].first_line(), 2501);
  EXPECT_EQ(sent_[2].progress_size(), 1);
}

TEST_F(CommandDispatchTest, AnAttemptNumbersNoLinesPastTheLimitAndSaysSo) {
  CommandDispatcherOptions options;
  options.max_line_number = 5;
  auto d = Make(options);
  run_ = [](const CommandRecord&, const CommandIo& io, CommandStops) {
    for (int i = 2; i <= 10; ++i) io.line(absl::StrCat("line ", i));
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", false};
  };
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunTasks();
  const auto lines = Lines("c-1");
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines.rbegin()->first, std::make_pair(int64_t{1}, int64_t{5}));
  EXPECT_EQ(lines.at({1, 4}), "line 4");
  EXPECT_EQ(lines.at({1, 5}), "further lines of attempt 1 are dropped: it reached 5 lines");
  for (const auto& u : sent_) EXPECT_LE(u.first_line(), 5);
  EXPECT_EQ(sent_.back().state(), v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(CommandDispatchTest, ARunItsEnvironmentIsNotReadyForRunsAgainLaterNeverFailed) {
  int calls = 0;
  run_ = [&](const CommandRecord&, const CommandIo&, CommandStops) {
    CommandResult result{v1::COMMAND_STATE_SUCCEEDED, "", true};
    if (++calls == 1) {
      result = {v1::COMMAND_STATE_FAILED, "no desired state has reached this agent yet", false};
      result.again = true;
    }
    return result;
  };
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunOne();
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_RUNNING);
  for (const auto& u : sent_) EXPECT_EQ(u.state(), v1::COMMAND_STATE_RUNNING);
  ASSERT_EQ(tasks_.size(), 1u);
  EXPECT_EQ(delays_, (std::vector<absl::Duration>{absl::Seconds(1)}));
  RunTasks();
  EXPECT_EQ(runs_, 2);
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_EQ(Lines("c-1").at({2, 1}), "running again (attempt 2)");
  EXPECT_EQ(sent_.back().state(), v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(CommandDispatchTest, AnEndNotRecordedIsNotSentAndIsRecordedAgainNotRunAgain) {
  run_ = [&](const CommandRecord&, const CommandIo& io, CommandStops) {
    io.line("acme: rolled back to version 2");
    records_.Fail(absl::UnavailableError("connection lost"));
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", true};
  };
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunOne();
  EXPECT_EQ(runs_, 1);
  for (const auto& u : sent_) EXPECT_EQ(u.state(), v1::COMMAND_STATE_RUNNING);
  EXPECT_EQ(changed_, 0);
  ASSERT_EQ(tasks_.size(), 1u);
  RunOne();  // still failing: later again, with a longer delay
  ASSERT_EQ(tasks_.size(), 1u);
  EXPECT_EQ(delays_, (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(2)}));

  records_.Fail(absl::OkStatus());
  // Re-delivered: its end is recorded again at once (not after the 2 s), never run again.
  d->OnCommand(Migrate("c-1", false, 1, 1));
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_RUNNING);
  ASSERT_EQ(tasks_.size(), 2u);
  EXPECT_EQ(delays_.size(), 2u);
  RunOne();  // the retry the re-delivery replaced: does nothing
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_RUNNING);
  RunOne();
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_TRUE(tasks_.empty());
  EXPECT_EQ(runs_, 1);
  EXPECT_EQ(changed_, 1);
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_EQ(sent_.back().state(), v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(CommandDispatchTest, AfterAStreamClosedNoLineIsSentBeforeTheResend) {
  std::unique_ptr<CommandDispatcher> d = Make();
  size_t sent_before_redelivery = 0;
  run_ = [&](const CommandRecord&, const CommandIo& io, CommandStops) {
    io.line("line 2");  // written, but lost with the breaking stream
    d->StreamClosed();
    io.line("line 3");  // a new stream is up: held back until the re-send
    sent_before_redelivery = sent_.size();
    d->OnCommand(Migrate("c-1", false, 1, 1));  // the mothership stored line 1
    io.line("line 4");
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", false};
  };
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  d->OnCommand(Migrate("c-1"));
  RunTasks();
  ASSERT_EQ(sent_before_redelivery, 2u);  // lines 1 and 2 only
  ASSERT_GT(sent_.size(), 2u);
  EXPECT_EQ(sent_[2].first_line(), 2);  // the re-send starts after what was stored
  const auto lines = Lines("c-1");
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines.at({1, 3}), "line 3");
  EXPECT_EQ(lines.at({1, 4}), "line 4");
}

TEST_F(CommandDispatchTest, AnApplysLinesAfterAStreamClosedWaitForItsRedelivery) {
  auto d = Make();
  StepFn lines = d->ApplyLines("apply-7");
  lines("line 1");
  const int64_t attempt = sent_[0].attempt();
  d->StreamClosed();
  lines("line 2");
  EXPECT_EQ(sent_.size(), 1u);  // held back

  v1::Command apply;
  apply.set_id("apply-7");
  apply.mutable_apply()->set_revision(7);
  apply.set_attempt(attempt);
  apply.set_lines_stored(1);
  d->OnCommand(apply);
  ASSERT_EQ(sent_.size(), 2u);
  EXPECT_EQ(sent_[1].first_line(), 2);
  lines("line 3");  // unblocked
  ASSERT_EQ(sent_.size(), 3u);
  EXPECT_EQ(sent_[2].first_line(), 3);

  // Closed again; the mothership has every line: nothing to re-send, and unblocked.
  d->StreamClosed();
  apply.set_lines_stored(3);
  d->OnCommand(apply);
  EXPECT_EQ(sent_.size(), 3u);
  lines("line 4");
  ASSERT_EQ(sent_.size(), 4u);
  EXPECT_EQ(sent_[3].first_line(), 4);
}

TEST_F(CommandDispatchTest, TwoDeliveriesAtOnceNeverTurnAnEndedCommandBackToQueued) {
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  bool raced = false;
  records_.set_after_get([&](const std::string& id) {
    if (raced) return;
    raced = true;
    // Between this delivery's Get and what follows, another one ran it to its end.
    CommandRecord done;
    done.id = id;
    done.kind = "migrate";
    done.command = Migrate(id);
    done.state = v1::COMMAND_STATE_SUCCEEDED;
    done.attempt = 1;
    done.finished_at = clock_.Now();
    records_.Seed(done);
  });
  d->OnCommand(Migrate("c-1"));
  EXPECT_TRUE(tasks_.empty());
  RunTasks();
  EXPECT_EQ(runs_, 0);
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_SUCCEEDED);
  EXPECT_TRUE(records_.puts().empty());
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].state(), v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(CommandDispatchTest, CommandsRunInTheOrderTheyArrivedNumericIdsInOrder) {
  std::vector<std::string> order;
  run_ = [&](const CommandRecord& record, const CommandIo&, CommandStops) {
    order.push_back(record.id);
    return CommandResult{v1::COMMAND_STATE_SUCCEEDED, "", false};
  };
  // Left queued by an earlier run, both started at the same time.
  for (const std::string id : {"10", "9"}) {
    CommandRecord left;
    left.id = id;
    left.kind = "migrate";
    left.command = Migrate(id);
    records_.Seed(left);
  }
  auto d = Make();
  // Delivered before the records are ready.
  d->OnCommand(Migrate("99"));
  d->OnCommand(Migrate("100"));
  d->OnCommand(Migrate("99"));
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  RunTasks();
  EXPECT_EQ(order, (std::vector<std::string>{"9", "10", "99", "100"}));
}

TEST_F(CommandDispatchTest, AResumedRunFindsTheRecordsEvenWhenScheduledAtOnce) {
  CommandRecord left;
  left.id = "c-1";
  left.kind = "migrate";
  left.command = Migrate("c-1");
  left.state = v1::COMMAND_STATE_RUNNING;
  left.attempt = 1;
  records_.Seed(left);
  run_inline_ = true;  // a reconcile thread that runs the task before Schedule returns
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  EXPECT_EQ(runs_, 1);
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(CommandDispatchTest, ADeliveryTheRecordsFailedIsHandledAgainAfterABackoff) {
  auto d = Make();
  ASSERT_TRUE(d->ResumeUnfinished(&records_).ok());
  records_.Fail(absl::UnavailableError("connection lost"));
  d->OnCommand(Migrate("c-1"));
  d->OnCommand(Migrate("c-1"));  // one retry at a time
  EXPECT_FALSE(records_.Find("c-1").has_value());
  ASSERT_EQ(tasks_.size(), 1u);
  RunOne();  // still failing
  ASSERT_EQ(tasks_.size(), 1u);
  EXPECT_EQ(delays_, (std::vector<absl::Duration>{absl::Seconds(1), absl::Seconds(2)}));

  records_.Fail(absl::OkStatus());
  RunTasks();
  EXPECT_EQ(runs_, 1);
  EXPECT_EQ(records_.Find("c-1")->state, v1::COMMAND_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace tether::agent
