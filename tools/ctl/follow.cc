// Following a command: rendering (pure), the seq cursor, and the reconnecting stream loop.
#include "tools/ctl/follow.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/backoff.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

// Reconnects start quickly (a restarted mothership is back within a second or two) and never
// wait more than a few seconds, so a follower catches up soon after it returns.
constexpr common::BackoffPolicy kReconnectPolicy{absl::Milliseconds(250), absl::Seconds(5), 2.0,
                                                 0.5};

constexpr int kBarCells = 10;

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

bool IsSet(const google::protobuf::Timestamp& t) { return t.seconds() != 0 || t.nanos() != 0; }

// Display columns of UTF-8 text: one per character.
int Columns(const std::string& s) {
  int n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

std::string PadRight(const std::string& s, int columns) {
  return s + std::string(std::max(0, columns - Columns(s)), ' ');
}

std::string StateName(v1::CommandState state) {
  switch (state) {
    case v1::COMMAND_STATE_QUEUED:
      return "queued";
    case v1::COMMAND_STATE_RUNNING:
      return "running";
    case v1::COMMAND_STATE_SUCCEEDED:
      return "succeeded";
    case v1::COMMAND_STATE_FAILED:
      return "failed";
    case v1::COMMAND_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

// "3.4 s", "2m 05s", "1h 02m".
std::string FormatElapsed(absl::Duration d) {
  const double seconds = absl::ToDoubleSeconds(d);
  if (seconds < 60) return absl::StrFormat("%.1f s", std::max(0.0, seconds));
  const int64_t s = static_cast<int64_t>(seconds);
  if (s < 3600) return absl::StrFormat("%dm %02ds", s / 60, s % 60);
  return absl::StrFormat("%dh %02dm", s / 3600, (s % 3600) / 60);
}

// What a target is doing, for its line of the display.
std::string TargetDetail(const v1::CommandTarget& t) {
  switch (t.state()) {
    case v1::COMMAND_STATE_FAILED:
      return t.error().empty() ? "failed" : absl::StrCat("failed: ", Printable(t.error()));
    case v1::COMMAND_STATE_RUNNING:
      return t.step().empty() ? "running" : Printable(t.step());
    default:
      return StateName(t.state());
  }
}

}  // namespace

bool IsFinished(v1::CommandState state) {
  return state == v1::COMMAND_STATE_SUCCEEDED || state == v1::COMMAND_STATE_FAILED ||
         state == v1::COMMAND_STATE_CANCELLED;
}

std::string FormatCommandLine(const v1::CommandLine& line) {
  return absl::StrCat(absl::FormatTime("%H:%M:%E3S", ToTime(line.at()), absl::UTCTimeZone()), " ",
                      line.agent().empty() ? "-" : Printable(line.agent()), "  ",
                      Printable(line.text()));
}

std::string ProgressBar(int done, int total, int cells, bool full) {
  int filled = 0;
  if (full) {
    filled = cells;
  } else if (total > 0) {
    filled = static_cast<int>(static_cast<int64_t>(std::clamp(done, 0, total)) * cells / total);
  }
  return absl::StrCat("[", std::string(filled, '#'), std::string(cells - filled, '-'), "]");
}

std::string FitToWidth(const std::string& s, int width) {
  if (width <= 0) return "";
  int columns = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80 && ++columns > width) {
      return s.substr(0, i);
    }
  }
  return s;
}

std::string AgentsCell(const v1::CommandStatus& status) {
  if (status.targets().empty()) return "-";
  int succeeded = 0, failed = 0;
  for (const auto& t : status.targets()) {
    if (t.state() == v1::COMMAND_STATE_SUCCEEDED) ++succeeded;
    if (t.state() == v1::COMMAND_STATE_FAILED) ++failed;
  }
  std::string cell = absl::StrCat(succeeded, "/", status.targets_size(), " done");
  if (failed > 0) absl::StrAppend(&cell, ", ", failed, " failed");
  return cell;
}

std::vector<std::string> RenderTargets(const v1::CommandStatus& status, int width,
                                       int max_targets) {
  std::vector<std::string> lines;
  std::string header = absl::StrCat("command ", Printable(status.id()));
  if (!status.summary().empty()) absl::StrAppend(&header, "  ", Printable(status.summary()));
  absl::StrAppend(&header, "  ", StateName(status.state()));
  if (status.cancel_requested() && !IsFinished(status.state())) {
    absl::StrAppend(&header, " (cancelling)");
  }
  if (!status.targets().empty()) absl::StrAppend(&header, "  ", AgentsCell(status));
  lines.push_back(FitToWidth(header, width));

  // Unfinished and failed targets first when they do not all fit: they are what to watch.
  std::vector<const v1::CommandTarget*> shown;
  for (const auto& t : status.targets()) shown.push_back(&t);
  int hidden = 0;
  if (static_cast<int>(shown.size()) > max_targets) {
    std::stable_partition(shown.begin(), shown.end(), [](const v1::CommandTarget* t) {
      return t->state() != v1::COMMAND_STATE_SUCCEEDED;
    });
    hidden = static_cast<int>(shown.size()) - (max_targets - 1);
    shown.resize(max_targets - 1);
  }
  int name_width = 0, count_width = 0;
  std::vector<std::string> names, counts;
  for (const auto* t : shown) {
    names.push_back(Printable(t->agent().empty() ? t->agent_id() : t->agent()));
    counts.push_back(t->steps_total() > 0 ? absl::StrCat(t->steps_done(), "/", t->steps_total())
                                          : "-");
    name_width = std::max(name_width, Columns(names.back()));
    count_width = std::max(count_width, Columns(counts.back()));
  }
  for (size_t i = 0; i < shown.size(); ++i) {
    const auto& t = *shown[i];
    const bool full = t.state() == v1::COMMAND_STATE_SUCCEEDED;
    lines.push_back(FitToWidth(
        absl::StrCat(PadRight(names[i], name_width), "  ",
                     ProgressBar(t.steps_done(), t.steps_total(), kBarCells, full), " ",
                     PadRight(counts[i], count_width), "  ", TargetDetail(t)),
        width));
  }
  if (hidden > 0) {
    lines.push_back(FitToWidth(absl::StrCat("... and ", hidden, " more agents"), width));
  }
  return lines;
}

std::string CommandSummary(const v1::CommandStatus& status) {
  const std::string command = absl::StrCat("command ", Printable(status.id()));
  const int agents = status.targets_size();
  switch (status.state()) {
    case v1::COMMAND_STATE_SUCCEEDED: {
      std::string s = absl::StrCat(command, " succeeded on ", agents,
                                   agents == 1 ? " agent" : " agents");
      if (IsSet(status.created_at()) && IsSet(status.finished_at())) {
        absl::StrAppend(&s, " in ",
                        FormatElapsed(ToTime(status.finished_at()) - ToTime(status.created_at())));
      }
      return s;
    }
    case v1::COMMAND_STATE_FAILED: {
      const v1::CommandTarget* first = nullptr;
      int failed = 0;
      for (const auto& t : status.targets()) {
        if (t.state() != v1::COMMAND_STATE_FAILED) continue;
        if (first == nullptr) first = &t;
        ++failed;
      }
      std::string s = absl::StrCat(command, " failed");
      std::string error = status.error();
      if (first != nullptr) {
        absl::StrAppend(&s, " on ", Printable(first->agent().empty() ? first->agent_id()
                                                                      : first->agent()));
        if (failed > 1) absl::StrAppend(&s, " (and ", failed - 1, " more)");
        if (!first->error().empty()) error = first->error();
      }
      if (!error.empty()) absl::StrAppend(&s, ": ", Printable(error));
      return s;
    }
    case v1::COMMAND_STATE_CANCELLED: {
      int succeeded = 0;
      for (const auto& t : status.targets()) {
        if (t.state() == v1::COMMAND_STATE_SUCCEEDED) ++succeeded;
      }
      std::string s = absl::StrCat(command, " was cancelled");
      if (agents > 0) absl::StrAppend(&s, "; it had finished on ", succeeded, " of ", agents,
                                      agents == 1 ? " agent" : " agents");
      return s;
    }
    default:
      return absl::StrCat(command, " is ", StateName(status.state()));
  }
}

std::string LiveView::Frame() {
  std::string out;
  if (drawn_ > 0) absl::StrAppend(&out, "\r\x1b[", drawn_, "A");
  absl::StrAppend(&out, "\x1b[J");
  for (const auto& line : pending_) absl::StrAppend(&out, line, "\n");
  pending_.clear();
  // One column spare: a line that fills the last column makes some terminals wrap, and the
  // next frame would then move up one line too few.
  const int width = std::max(1, width_ - 1);
  std::vector<std::string> block;
  if (status_.has_value()) block = RenderTargets(*status_, width);
  if (!note_.empty()) {
    block.insert(block.begin() + std::min<size_t>(1, block.size()),
                 FitToWidth(Printable(note_), width));
  }
  for (const auto& line : block) absl::StrAppend(&out, line, "\n");
  drawn_ = static_cast<int>(block.size());
  return out;
}

bool FollowCursor::TakeLine(const v1::CommandLine& line) {
  if (line.seq() <= last_seq_) return false;
  last_seq_ = line.seq();
  return true;
}

bool FollowCursor::Complete() const {
  return Ended() && last_seq_ >= status_->lines();
}

bool IsRetryable(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::OUT_OF_RANGE:
    case grpc::StatusCode::UNIMPLEMENTED:
      return false;
    default:
      return true;
  }
}

grpc::Status CommandFollower::Run(const std::string& id, const FollowOptions& options,
                                  const FollowCallbacks& callbacks,
                                  std::optional<v1::CommandStatus>* last) {
  FollowCursor cursor;
  common::Backoff backoff(kReconnectPolicy, random_);
  bool contacted = options.contacted;
  for (int attempt = 1;; ++attempt) {
    v1::WatchCommandRequest request;
    request.set_id(id);
    request.set_after_seq(cursor.after_seq());
    request.set_follow(options.follow);
    auto stream = watcher_->Watch(request, contacted && attempt > 1);
    v1::CommandEvent event;
    bool received = false;
    while (stream->Read(&event)) {
      received = true;
      if (event.has_line()) {
        if (cursor.TakeLine(event.line()) && callbacks.on_line) callbacks.on_line(event.line());
      } else if (event.has_status()) {
        cursor.TakeStatus(event.status());
        if (callbacks.on_status) callbacks.on_status(event.status());
      }
    }
    grpc::Status ended = stream->Finish();
    *last = cursor.status();
    if (received || ended.ok()) {
      contacted = true;
      backoff.Reset();
    }
    // The stream ends normally after the stored lines (without follow) or once the command has
    // ended and every line was sent; a break after the last line loses nothing either.
    if (ended.ok() && (!options.follow || cursor.Ended())) return grpc::Status::OK;
    if (cursor.Complete()) return grpc::Status::OK;
    if (!ended.ok() && !IsRetryable(ended.error_code())) return ended;
    if (ended.ok()) {
      ended = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the stream ended before the command");
    }
    if (!contacted && attempt >= options.attempts_before_contact) return ended;
    const absl::Duration delay = backoff.Next();
    // Before the mothership ever answered, the final error says it all.
    if (contacted && callbacks.on_reconnect) callbacks.on_reconnect(ended, delay);
    clock_->SleepFor(delay, nullptr);
  }
}

grpc::Status CallWithRetry(const std::function<grpc::Status()>& call, int attempts,
                           common::Clock* clock, common::Random* random) {
  common::Backoff backoff(kReconnectPolicy, random);
  for (int attempt = 1;; ++attempt) {
    grpc::Status st = call();
    const bool retry = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                       st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (!retry || attempt >= attempts) return st;
    clock->SleepFor(backoff.Next(), nullptr);
  }
}

namespace {

class GrpcCommandEventStream final : public CommandEventStream {
 public:
  GrpcCommandEventStream(v1::ControlService::Stub* stub, const v1::WatchCommandRequest& request,
                         std::unique_ptr<grpc::ClientContext> context)
      : context_(std::move(context)), reader_(stub->WatchCommand(context_.get(), request)) {}

  bool Read(v1::CommandEvent* event) override { return reader_->Read(event); }
  grpc::Status Finish() override { return reader_->Finish(); }

 private:
  std::unique_ptr<grpc::ClientContext> context_;  // outlives the reader
  std::unique_ptr<grpc::ClientReader<v1::CommandEvent>> reader_;
};

class GrpcCommandWatcher final : public CommandWatcher {
 public:
  GrpcCommandWatcher(v1::ControlService::Stub* stub,
                     std::function<std::unique_ptr<grpc::ClientContext>()> make_context)
      : stub_(stub), make_context_(std::move(make_context)) {}

  std::unique_ptr<CommandEventStream> Watch(const v1::WatchCommandRequest& request,
                                            bool wait_for_ready) override {
    auto context = make_context_();
    // While the mothership restarts, wait for it rather than failing each attempt at once.
    if (wait_for_ready) context->set_wait_for_ready(true);
    return std::make_unique<GrpcCommandEventStream>(stub_, request, std::move(context));
  }

 private:
  v1::ControlService::Stub* stub_;
  std::function<std::unique_ptr<grpc::ClientContext>()> make_context_;
};

}  // namespace

std::unique_ptr<CommandWatcher> NewGrpcCommandWatcher(
    v1::ControlService::Stub* stub,
    std::function<std::unique_ptr<grpc::ClientContext>()> make_context) {
  return std::make_unique<GrpcCommandWatcher>(stub, std::move(make_context));
}

}  // namespace tether::ctl
