// Following a command without a server: the live display's lines (bars, widths, escaping), the
// summary, the seq cursor, and the follower's reconnects over a scripted watcher and a clock
// that jumps instead of sleeping.
#include "tools/ctl/follow.h"

#include <gtest/gtest.h>

#include <deque>

#include "tests/testing/fake_clock.h"

namespace tether::ctl {
namespace {

google::protobuf::Timestamp At(int64_t seconds, int32_t nanos = 0) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

v1::CommandTarget Target(const std::string& agent, v1::CommandState state, int done, int total,
                         const std::string& step = "", const std::string& error = "") {
  v1::CommandTarget t;
  t.set_agent(agent);
  t.set_state(state);
  t.set_steps_done(done);
  t.set_steps_total(total);
  t.set_step(step);
  t.set_error(error);
  return t;
}

v1::CommandStatus Status(v1::CommandState state, std::vector<v1::CommandTarget> targets) {
  v1::CommandStatus s;
  s.set_id("42");
  s.set_summary("migrate shop to the latest version");
  s.set_state(state);
  for (auto& t : targets) *s.add_targets() = std::move(t);
  return s;
}

v1::CommandLine Line(int64_t seq, const std::string& agent, const std::string& text) {
  v1::CommandLine l;
  l.set_seq(seq);
  *l.mutable_at() = At(1'800'000'000 + seq, 123'000'000);
  l.set_agent(agent);
  l.set_text(text);
  return l;
}

bool HasControl(const std::string& s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return true;
  }
  return false;
}

TEST(FollowRenderTest, BarIsFilledInProportionToSteps) {
  EXPECT_EQ(ProgressBar(3, 6, 10), "[#####-----]");
  EXPECT_EQ(ProgressBar(0, 6, 10), "[----------]");
  EXPECT_EQ(ProgressBar(6, 6, 10), "[##########]");
  EXPECT_EQ(ProgressBar(1, 3, 10), "[###-------]");
  EXPECT_EQ(ProgressBar(9, 6, 10), "[##########]");   // more done than total: full, not past it
  EXPECT_EQ(ProgressBar(-1, 6, 10), "[----------]");
  EXPECT_EQ(ProgressBar(0, 0, 10), "[----------]");   // no steps known yet
  EXPECT_EQ(ProgressBar(0, 0, 4, true), "[####]");    // finished without reporting steps
}

TEST(FollowRenderTest, OneLinePerAgentUnderAHeader) {
  auto status = Status(v1::COMMAND_STATE_RUNNING,
                       {Target("web-1", v1::COMMAND_STATE_RUNNING, 3, 6, "acme: applying 0002_add_orders"),
                        Target("web-10", v1::COMMAND_STATE_SUCCEEDED, 6, 6),
                        Target("web-2", v1::COMMAND_STATE_QUEUED, 0, 0)});
  EXPECT_EQ(RenderTargets(status, 200),
            (std::vector<std::string>{
                "command 42  migrate shop to the latest version  running  1/3 done",
                "web-1   [#####-----] 3/6  acme: applying 0002_add_orders",
                "web-10  [##########] 6/6  succeeded",
                "web-2   [----------] -    queued",
            }));
}

TEST(FollowRenderTest, AFailedAgentShowsItsErrorAndCancellingIsSaid) {
  auto status = Status(v1::COMMAND_STATE_RUNNING,
                       {Target("web-1", v1::COMMAND_STATE_FAILED, 1, 4, "acme", "relation \"x\" exists"),
                        Target("web-2", v1::COMMAND_STATE_RUNNING, 2, 4, "")});
  status.set_cancel_requested(true);
  auto lines = RenderTargets(status, 200);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0],
            "command 42  migrate shop to the latest version  running (cancelling)  0/2 done, 1 failed");
  EXPECT_EQ(lines[1], "web-1  [##--------] 1/4  failed: relation \"x\" exists");
  EXPECT_EQ(lines[2], "web-2  [#####-----] 2/4  running");
}

TEST(FollowRenderTest, NoLineIsWiderThanTheTerminal) {
  auto status = Status(v1::COMMAND_STATE_RUNNING,
                       {Target("web-1", v1::COMMAND_STATE_RUNNING, 1, 2, std::string(300, 's')),
                        Target("caf\xc3\xa9-\xc3\xa9\xc3\xa9", v1::COMMAND_STATE_RUNNING, 1, 2,
                               "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9")});
  for (int width : {10, 27, 40, 80}) {
    for (const auto& line : RenderTargets(status, width)) {
      EXPECT_LE(line.size(), static_cast<size_t>(width) * 2) << line;
      EXPECT_EQ(FitToWidth(line, width), line) << "wider than " << width << ": " << line;
    }
  }
  // Cut on a character, never inside one.
  EXPECT_EQ(FitToWidth("caf\xc3\xa9s", 4), "caf\xc3\xa9");
  EXPECT_EQ(FitToWidth("caf\xc3\xa9s", 3), "caf");
  EXPECT_EQ(FitToWidth("abc", 0), "");
}

TEST(FollowRenderTest, ManyAgentsShowTheUnfinishedFirstAndCountTheRest) {
  std::vector<v1::CommandTarget> targets;
  for (int i = 0; i < 30; ++i) {
    targets.push_back(Target("a" + std::to_string(i),
                             i == 25 ? v1::COMMAND_STATE_FAILED : v1::COMMAND_STATE_SUCCEEDED, 1, 1));
  }
  auto lines = RenderTargets(Status(v1::COMMAND_STATE_RUNNING, targets), 200, /*max_targets=*/5);
  ASSERT_EQ(lines.size(), 1u + 5u);
  EXPECT_EQ(lines[1].rfind("a25 ", 0), 0u) << lines[1];
  EXPECT_EQ(lines.back(), "... and 26 more agents");
}

TEST(FollowRenderTest, HostileAgentNamesAndLinesCannotDriveTheTerminal) {
  const std::string evil = "web-1\x1b[2J\x1b]0;owned\x07\nfake-line\r";
  auto status = Status(v1::COMMAND_STATE_RUNNING,
                       {Target(evil, v1::COMMAND_STATE_FAILED, 1, 2, evil, evil)});
  status.set_summary(evil);
  status.set_id("7\x1b[A");
  for (const auto& line : RenderTargets(status, 500)) {
    EXPECT_FALSE(HasControl(line)) << line;
    EXPECT_NE(line.find("\\x1b[2J"), std::string::npos) << line;
  }
  const std::string printed = FormatCommandLine(Line(1, evil, evil));
  EXPECT_FALSE(HasControl(printed)) << printed;
  EXPECT_NE(printed.find("\\n"), std::string::npos);
  const std::string summary = CommandSummary(status);
  EXPECT_FALSE(HasControl(summary)) << summary;

  // The live view's only escapes are its own cursor movement.
  LiveView view(80);
  view.SetStatus(status);
  view.AddLine(Line(1, evil, evil));
  view.SetNote(evil);
  std::string frame = view.Frame();
  for (size_t at = frame.find('\x1b'); at != std::string::npos; at = frame.find('\x1b', at + 1)) {
    EXPECT_EQ(at, 0u) << "an escape sequence not drawn by the view: " << frame;  // "\x1b[J"
  }
  EXPECT_EQ(frame.find('\r'), std::string::npos);
}

TEST(FollowRenderTest, PlainLineIsTimeAgentText) {
  EXPECT_EQ(FormatCommandLine(Line(2, "web-1", "acme: applied 0002_add_orders")),
            "08:00:02.123 web-1  acme: applied 0002_add_orders");
  EXPECT_EQ(FormatCommandLine(Line(3, "", "queued for 2 agents")),
            "08:00:03.123 -  queued for 2 agents");
}

TEST(FollowRenderTest, LiveViewRedrawsItsBlockAndLetsLinesScrollAbove) {
  LiveView view(80);
  view.SetStatus(Status(v1::COMMAND_STATE_RUNNING,
                        {Target("web-1", v1::COMMAND_STATE_RUNNING, 1, 2, "acme")}));
  EXPECT_EQ(view.Frame(),
            "\x1b[J"
            "command 42  migrate shop to the latest version  running  0/1 done\n"
            "web-1  [#####-----] 1/2  acme\n");
  view.AddLine(Line(4, "web-1", "acme: applied 0001_init"));
  view.SetStatus(Status(v1::COMMAND_STATE_SUCCEEDED,
                        {Target("web-1", v1::COMMAND_STATE_SUCCEEDED, 2, 2)}));
  EXPECT_EQ(view.Frame(),
            "\r\x1b[2A\x1b[J"
            "08:00:04.123 web-1  acme: applied 0001_init\n"
            "command 42  migrate shop to the latest version  succeeded  1/1 done\n"
            "web-1  [##########] 2/2  succeeded\n");
  view.SetNote("(connection refused; reconnecting)");
  EXPECT_EQ(view.Frame(),
            "\r\x1b[2A\x1b[J"
            "command 42  migrate shop to the latest version  succeeded  1/1 done\n"
            "(connection refused; reconnecting)\n"
            "web-1  [##########] 2/2  succeeded\n");
}

TEST(FollowRenderTest, SummarySaysHowItEnded) {
  auto ok = Status(v1::COMMAND_STATE_SUCCEEDED,
                   {Target("web-1", v1::COMMAND_STATE_SUCCEEDED, 2, 2),
                    Target("web-2", v1::COMMAND_STATE_SUCCEEDED, 2, 2)});
  *ok.mutable_created_at() = At(1'800'000'000);
  *ok.mutable_finished_at() = At(1'800'000'003, 400'000'000);
  EXPECT_EQ(CommandSummary(ok), "command 42 succeeded on 2 agents in 3.4 s");
  *ok.mutable_finished_at() = At(1'800'000'125);
  ok.mutable_targets()->RemoveLast();
  EXPECT_EQ(CommandSummary(ok), "command 42 succeeded on 1 agent in 2m 05s");

  auto failed = Status(v1::COMMAND_STATE_FAILED,
                       {Target("web-1", v1::COMMAND_STATE_SUCCEEDED, 2, 2),
                        Target("web-2", v1::COMMAND_STATE_FAILED, 1, 2, "", "acme: syntax error\n"),
                        Target("web-3", v1::COMMAND_STATE_FAILED, 1, 2, "", "other")});
  failed.set_error("web-2: acme: syntax error");
  EXPECT_EQ(CommandSummary(failed), "command 42 failed on web-2 (and 1 more): acme: syntax error\\n");
  auto nobody = Status(v1::COMMAND_STATE_FAILED, {});
  nobody.set_error("no agent of cluster shop");
  EXPECT_EQ(CommandSummary(nobody), "command 42 failed: no agent of cluster shop");

  auto cancelled = Status(v1::COMMAND_STATE_CANCELLED,
                          {Target("web-1", v1::COMMAND_STATE_SUCCEEDED, 2, 2),
                           Target("web-2", v1::COMMAND_STATE_CANCELLED, 0, 2)});
  EXPECT_EQ(CommandSummary(cancelled), "command 42 was cancelled; it had finished on 1 of 2 agents");
  EXPECT_EQ(AgentsCell(cancelled), "1/2 done");
  EXPECT_EQ(AgentsCell(failed), "1/3 done, 2 failed");
  EXPECT_EQ(AgentsCell(nobody), "-");
}

TEST(FollowCursorTest, TakesEachLineOnceAndResumesAfterTheLast) {
  FollowCursor cursor;
  EXPECT_EQ(cursor.after_seq(), 0);
  EXPECT_TRUE(cursor.TakeLine(Line(1, "a", "x")));
  EXPECT_TRUE(cursor.TakeLine(Line(2, "a", "y")));
  EXPECT_FALSE(cursor.TakeLine(Line(2, "a", "y")));  // re-sent after a reconnect
  EXPECT_FALSE(cursor.TakeLine(Line(1, "a", "x")));
  EXPECT_EQ(cursor.after_seq(), 2);
  EXPECT_TRUE(cursor.TakeLine(Line(5, "a", "z")));   // a gap is not waited for
  EXPECT_EQ(cursor.after_seq(), 5);

  auto status = Status(v1::COMMAND_STATE_RUNNING, {});
  status.set_lines(6);
  cursor.TakeStatus(status);
  EXPECT_FALSE(cursor.Ended());
  status.set_state(v1::COMMAND_STATE_SUCCEEDED);
  cursor.TakeStatus(status);
  EXPECT_TRUE(cursor.Ended());
  EXPECT_FALSE(cursor.Complete());  // line 6 is still owed
  EXPECT_TRUE(cursor.TakeLine(Line(6, "a", "done")));
  EXPECT_TRUE(cursor.Complete());
}

// The follower over a scripted watcher.

// Time that jumps forward when slept on: retries without waiting.
class JumpingClock final : public common::Clock {
 public:
  absl::Time Now() const override { return now_; }
  bool SleepUntil(absl::Time deadline, const absl::Notification*) override {
    if (deadline > now_) {
      slept_.push_back(deadline - now_);
      now_ = deadline;
    }
    return true;
  }
  const std::vector<absl::Duration>& slept() const { return slept_; }

 private:
  absl::Time now_ = absl::FromUnixSeconds(1'800'000'000);
  std::vector<absl::Duration> slept_;
};

struct Attempt {
  std::vector<v1::CommandEvent> events;
  grpc::Status finish;
};

class ScriptedWatcher final : public CommandWatcher {
 public:
  explicit ScriptedWatcher(std::deque<Attempt> attempts) : attempts_(std::move(attempts)) {}

  std::unique_ptr<CommandEventStream> Watch(const v1::WatchCommandRequest& request,
                                            bool wait_for_ready) override {
    requests.push_back(request);
    waited.push_back(wait_for_ready);
    Attempt next;
    if (attempts_.empty()) {
      next.finish = grpc::Status(grpc::StatusCode::UNAVAILABLE, "script exhausted");
    } else {
      next = attempts_.front();
      attempts_.pop_front();
    }
    return std::make_unique<Stream>(std::move(next));
  }

  std::vector<v1::WatchCommandRequest> requests;
  std::vector<bool> waited;

 private:
  class Stream final : public CommandEventStream {
   public:
    explicit Stream(Attempt a) : a_(std::move(a)) {}
    bool Read(v1::CommandEvent* event) override {
      if (next_ >= a_.events.size()) return false;
      *event = a_.events[next_++];
      return true;
    }
    grpc::Status Finish() override { return a_.finish; }

   private:
    Attempt a_;
    size_t next_ = 0;
  };
  std::deque<Attempt> attempts_;
};

v1::CommandEvent LineEvent(int64_t seq) {
  v1::CommandEvent e;
  *e.mutable_line() = Line(seq, "web-1", "line " + std::to_string(seq));
  return e;
}

v1::CommandEvent StatusEvent(v1::CommandState state, int64_t lines) {
  v1::CommandEvent e;
  *e.mutable_status() = Status(state, {Target("web-1", state, 1, 1)});
  e.mutable_status()->set_lines(lines);
  return e;
}

const grpc::Status kUnavailable(grpc::StatusCode::UNAVAILABLE, "connection refused");

class FollowerTest : public ::testing::Test {
 protected:
  grpc::Status Follow(ScriptedWatcher& watcher, FollowOptions options = {}) {
    CommandFollower follower(&watcher, &clock_, &random_);
    FollowCallbacks callbacks;
    callbacks.on_line = [this](const v1::CommandLine& l) { seqs_.push_back(l.seq()); };
    callbacks.on_status = [this](const v1::CommandStatus&) { ++statuses_; };
    callbacks.on_reconnect = [this](const grpc::Status& why, absl::Duration) {
      reconnects_.push_back(why.error_message());
    };
    return follower.Run("42", options, callbacks, &last_);
  }

  JumpingClock clock_;
  testing::FakeRandom random_{{0.0}};
  std::vector<int64_t> seqs_;
  int statuses_ = 0;
  std::vector<std::string> reconnects_;
  std::optional<v1::CommandStatus> last_;
};

TEST_F(FollowerTest, AMothershipRestartLosesAndDoublesNoLine) {
  ScriptedWatcher watcher({
      {{LineEvent(1), LineEvent(2), StatusEvent(v1::COMMAND_STATE_RUNNING, 2)}, kUnavailable},
      {{}, kUnavailable},  // still down
      // Back: it re-sends line 2 (a safety net drops it), then the rest and the end.
      {{LineEvent(2), LineEvent(3), StatusEvent(v1::COMMAND_STATE_SUCCEEDED, 4), LineEvent(4)},
       grpc::Status::OK},
  });
  ASSERT_TRUE(Follow(watcher).ok());
  EXPECT_EQ(seqs_, (std::vector<int64_t>{1, 2, 3, 4}));
  ASSERT_EQ(watcher.requests.size(), 3u);
  EXPECT_EQ(watcher.requests[0].after_seq(), 0);
  EXPECT_EQ(watcher.requests[1].after_seq(), 2);
  EXPECT_EQ(watcher.requests[2].after_seq(), 2);
  for (const auto& r : watcher.requests) {
    EXPECT_EQ(r.id(), "42");
    EXPECT_TRUE(r.follow());
  }
  EXPECT_EQ(watcher.waited, (std::vector<bool>{false, true, true}));
  EXPECT_EQ(reconnects_, (std::vector<std::string>{"connection refused", "connection refused"}));
  // Capped exponential backoff: the second wait is longer than the first.
  ASSERT_EQ(clock_.slept().size(), 2u);
  EXPECT_LT(clock_.slept()[0], clock_.slept()[1]);
  ASSERT_TRUE(last_.has_value());
  EXPECT_EQ(last_->state(), v1::COMMAND_STATE_SUCCEEDED);
}

TEST_F(FollowerTest, AStreamThatEndsBeforeTheCommandIsReopened) {
  ScriptedWatcher watcher({
      {{LineEvent(1), StatusEvent(v1::COMMAND_STATE_RUNNING, 1)}, grpc::Status::OK},
      {{LineEvent(2), StatusEvent(v1::COMMAND_STATE_FAILED, 2)}, grpc::Status::OK},
  });
  ASSERT_TRUE(Follow(watcher).ok());
  EXPECT_EQ(seqs_, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(watcher.requests.size(), 2u);
  EXPECT_EQ(watcher.requests[1].after_seq(), 1);
  EXPECT_EQ(last_->state(), v1::COMMAND_STATE_FAILED);
}

TEST_F(FollowerTest, ABreakAfterEverythingWasSentNeedsNoReconnect) {
  ScriptedWatcher watcher({
      {{LineEvent(1), StatusEvent(v1::COMMAND_STATE_SUCCEEDED, 1)}, kUnavailable},
  });
  ASSERT_TRUE(Follow(watcher).ok());
  EXPECT_EQ(watcher.requests.size(), 1u);
  EXPECT_TRUE(reconnects_.empty());
}

TEST_F(FollowerTest, ARefusalIsNotRetried) {
  ScriptedWatcher watcher({{{}, grpc::Status(grpc::StatusCode::NOT_FOUND, "no command 42")}});
  grpc::Status st = Follow(watcher);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(watcher.requests.size(), 1u);
  EXPECT_TRUE(clock_.slept().empty());
}

TEST_F(FollowerTest, AMothershipNeverReachedIsGivenUpOn) {
  ScriptedWatcher watcher({});
  FollowOptions options;
  options.attempts_before_contact = 3;
  grpc::Status st = Follow(watcher, options);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(watcher.requests.size(), 3u);
  EXPECT_EQ(watcher.waited, (std::vector<bool>{false, false, false}));  // fail fast, not hang
  EXPECT_TRUE(reconnects_.empty());  // the one error returned says it
}

TEST_F(FollowerTest, OnceContactedItKeepsReconnecting) {
  std::deque<Attempt> script(10, Attempt{{}, kUnavailable});
  script.push_back({{LineEvent(1), StatusEvent(v1::COMMAND_STATE_SUCCEEDED, 1)}, grpc::Status::OK});
  ScriptedWatcher watcher(std::move(script));
  FollowOptions options;
  options.contacted = true;  // the command was just queued
  ASSERT_TRUE(Follow(watcher, options).ok());
  EXPECT_EQ(watcher.requests.size(), 11u);
  EXPECT_EQ(seqs_, (std::vector<int64_t>{1}));
  for (absl::Duration d : clock_.slept()) EXPECT_LE(d, absl::Seconds(5));
}

TEST_F(FollowerTest, WithoutFollowTheStoredLinesAreAll) {
  ScriptedWatcher watcher({
      {{LineEvent(1), LineEvent(2)}, grpc::Status::OK},
  });
  FollowOptions options;
  options.follow = false;
  ASSERT_TRUE(Follow(watcher, options).ok());
  EXPECT_EQ(seqs_, (std::vector<int64_t>{1, 2}));
  EXPECT_FALSE(watcher.requests[0].follow());
  EXPECT_FALSE(last_.has_value());
}

TEST(CallWithRetryTest, RetriesOnlyWhileTheMothershipIsUnreachable) {
  JumpingClock clock;
  testing::FakeRandom random({0.0});
  int calls = 0;
  auto flaky = [&] {
    return ++calls < 3 ? kUnavailable : grpc::Status::OK;
  };
  EXPECT_TRUE(CallWithRetry(flaky, 4, &clock, &random).ok());
  EXPECT_EQ(calls, 3);

  calls = 0;
  auto refused = [&] {
    ++calls;
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no cluster");
  };
  EXPECT_EQ(CallWithRetry(refused, 4, &clock, &random).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(calls, 1);

  calls = 0;
  auto slow = [&] {
    ++calls;
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "slow");
  };
  EXPECT_EQ(CallWithRetry(slow, 4, &clock, &random).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(calls, 4);
}

}  // namespace
}  // namespace tether::ctl
