// Fuzzes LxdClient's reading of LXD's answers: envelopes, instances, exec operations and their
// logs, as LXD (or something pretending to be it on its socket) sends them. The input is the
// daemon's answers in order, each a line with the HTTP status and then the body, separated by
// lines of "%%":
//   200
//   {"type": "sync", "metadata": {"name": "web-1", "status": "Running"}}
//   %%
//   404
//   ...
// A transport replays them to the client's calls (GetInstance, Exec, PushFile, MakeDirectory,
// WaitOperation, GetRaw, Delete, in that order) and fails with kUnavailable once they run out;
// each exchange moves a fake clock on, so an exec that never finishes meets its deadline.
// Checked: nothing throws; a finished exec was started and waited for; once the answers run out,
// a call makes one more request and gives up.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "agent/provision/lxd/lxd_client.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/testing/fake_clock.h"

namespace tether::fuzz {
namespace {

constexpr absl::Duration kExchange = absl::Seconds(7);

class ReplayTransport final : public agent::LxdTransport {
 public:
  ReplayTransport(std::vector<agent::LxdHttpResponse> answers, testing::FakeClock* clock)
      : answers_(std::move(answers)), clock_(clock) {}

  absl::StatusOr<agent::LxdHttpResponse> Send(const agent::LxdHttpRequest& request) override {
    Require(!request.method.empty() && !request.path.empty(), "a request without method or path");
    ++requests_;
    clock_->Advance(kExchange);
    if (next_ == answers_.size()) return absl::UnavailableError("LXD answered nothing more");
    return answers_[next_++];
  }
  std::string endpoint() const override { return "unix socket /fuzz/lxd.socket"; }

  size_t requests() const { return requests_; }
  size_t answers() const { return answers_.size(); }

 private:
  std::vector<agent::LxdHttpResponse> answers_;
  size_t next_ = 0;
  size_t requests_ = 0;
  testing::FakeClock* clock_;
};

std::vector<agent::LxdHttpResponse> ReadAnswers(std::string_view text) {
  std::vector<agent::LxdHttpResponse> answers;
  while (!text.empty()) {
    size_t end = text.find("\n%%\n");
    const std::string_view answer = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 4);
    const size_t newline = answer.find('\n');
    const std::string_view status = answer.substr(0, newline);
    agent::LxdHttpResponse response;
    if (!absl::SimpleAtoi(absl::string_view(status.data(), status.size()), &response.status)) {
      response.status = 200;
    }
    if (newline != std::string_view::npos) response.body = std::string(answer.substr(newline + 1));
    answers.push_back(std::move(response));
  }
  return answers;
}

}  // namespace
}  // namespace tether::fuzz

void tether::fuzz::Setup() {}

bool tether::fuzz::FuzzOne(std::string_view input) {
  using namespace tether;
  using fuzz::Require;
  testing::FakeClock clock;
  fuzz::ReplayTransport transport(
      fuzz::ReadAnswers(input), &clock);
  agent::LxdClient client(&transport, &clock);

  // Each call may use up answers; the later ones then see kUnavailable, as from a daemon gone.
  (void)client.GetInstance("web-1");
  agent::LxdExecRequest exec;
  exec.command = {"/bin/sh", "-c", "pg_ctlcluster 15 main start"};
  exec.environment = {{"PGDATA", "/var/lib/postgresql/15/main"}};
  auto result = client.Exec("web-1", exec, absl::Minutes(1));
  if (result.ok()) {
    Require(transport.requests() >= 2, "an exec finished without starting and waiting");
  }
  (void)client.PushFile("web-1", "/opt/tether/install.sh", "#!/bin/sh\n", {0, 0, 0755});
  (void)client.MakeDirectory("web-1", "/opt/tether", {});
  (void)client.WaitOperation("a5e6b7c8", absl::Seconds(30));
  (void)client.GetRaw("/1.0/instances/web-1/logs/exec_a5e6b7c8.stdout");
  (void)client.Delete("/1.0/instances/web-1/logs/exec_a5e6b7c8.stdout");
  Require(transport.requests() <= transport.answers() + 7, "a call retried a daemon that is gone");
  return true;
}
