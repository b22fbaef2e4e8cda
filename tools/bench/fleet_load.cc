// fleet_load: many agents in one process, speaking the real protocol to a mothership (or to
// fleet_echo, the bare-gRPC floor). Each agent registers (unless --reuse gives a file of
// registrations), opens its stream, says Hello, heartbeats every --heartbeat, acks every
// desired-state revision the moment it arrives, and when its stream ends reconnects with the
// agent's own jittered backoff, honouring the mothership's retry hint. Everything runs on gRPC's
// callback API: one process holds thousands of streams on a handful of threads.
//
// It prints one JSON object a line on stdout, for tools/bench/fleet to read:
//   {"event":"registered","n":N,"seconds":S,"failed":F}
//   {"event":"connected","n":N,"seconds":S}            all N have had a Welcome
//   {"event":"status","connected":C,"welcomes":W,"acked":{"REV":COUNT,...},
//    "ended":{"CODE message":COUNT,...}}             every second
//   {"event":"revision","revision":R,"all_acked_at":UNIX,"first_at":UNIX,"p50_at":UNIX,
//    "p99_at":UNIX}                                   once every agent acked revision R
// and runs until it is killed (SIGTERM).
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/backoff.h"
#include "common/grpc/metadata.h"
#include "common/random.h"
#include "tether/v1/agent_service.grpc.pb.h"

namespace tether::bench {
namespace {

struct Options {
  std::string target;
  std::string token;
  std::string cluster;
  std::string prefix = "load";
  int agents = 1000;
  int per_channel = 1;
  int register_window = 64;
  absl::Duration heartbeat = absl::Seconds(10);
  absl::Duration reconnect_max = absl::Seconds(5);
};

double UnixSeconds(absl::Time t) { return absl::ToDoubleSeconds(t - absl::UnixEpoch()); }

void Emit(const nlohmann::json& j) {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  std::cout << j.dump() << std::endl;
}

class Fleet;

// One agent: its registration and the stream of the moment.
struct Agent {
  int index = 0;
  std::string name;
  v1::RegisterResponse reg;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::AgentService::Stub> stub;
  std::unique_ptr<common::Backoff> backoff;
  common::RealRandom random;
  std::atomic<int64_t> acked{0};
};

// The stream of one agent: Hello, then Acks and heartbeats as they come; writes one at a time.
class Stream : public grpc::ClientBidiReactor<v1::AgentMessage, v1::MothershipMessage> {
 public:
  Stream(Fleet* fleet, Agent* agent);
  void Begin();
  void Heartbeat();
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void Write(v1::AgentMessage message);
  void WriteNextLocked();

  Fleet* fleet_;
  Agent* agent_;
  grpc::ClientContext context_;
  v1::MothershipMessage in_;
  std::mutex mu_;
  std::vector<v1::AgentMessage> out_;
  v1::AgentMessage writing_message_;
  bool writing_ = false;
  bool done_ = false;
};

class Fleet {
 public:
  explicit Fleet(Options options) : options_(std::move(options)) {}

  // Registers and connects every agent, then keeps them heartbeating and reconnecting until
  // the process is killed; never returns.
  [[noreturn]] void Run();

  // Called by streams.
  void Welcomed(Agent* agent);
  void Acked(Agent* agent, int64_t revision);
  void Ended(Agent* agent, Stream* stream, const grpc::Status& status,
             std::optional<absl::Duration> hint);

 private:
  void Register();
  void Connect(Agent* agent);
  [[noreturn]] void HeartbeatLoop();
  [[noreturn]] void ReconnectLoop();

  Options options_;
  std::vector<std::unique_ptr<Agent>> agents_;
  absl::Mutex mu_;
  std::map<Agent*, Stream*> streams_ ABSL_GUARDED_BY(mu_);
  int welcomed_once_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<bool> ever_welcomed_ ABSL_GUARDED_BY(mu_);
  int64_t welcomes_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time connect_began_ ABSL_GUARDED_BY(mu_);
  // Per revision: when each agent (by index) first acked it.
  std::map<int64_t, std::map<int, absl::Time>> acks_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, Agent*> reconnects_ ABSL_GUARDED_BY(mu_);
  // Streams ended, by "CODE message" (cut).
  std::map<std::string, int64_t> ended_ ABSL_GUARDED_BY(mu_);
};

Stream::Stream(Fleet* fleet, Agent* agent) : fleet_(fleet), agent_(agent) {
  context_.AddMetadata("authorization", "Bearer " + agent->reg.credential());
  context_.AddMetadata("x-tether-agent-id", agent->reg.agent_id());
}

void Stream::Begin() {
  agent_->stub->async()->Connect(&context_, this);
  v1::AgentMessage hello;
  hello.mutable_hello()->set_agent_id(agent_->reg.agent_id());
  hello.mutable_hello()->set_incarnation(agent_->reg.incarnation());
  hello.mutable_hello()->set_applied_revision(agent_->acked.load());
  hello.mutable_hello()->set_version("fleet_load");
  hello.mutable_hello()->mutable_status()->set_state(v1::PROVISIONING_STATE_READY);
  Write(std::move(hello));
  StartRead(&in_);
  // Heartbeats are written from outside the reactions: the hold keeps gRPC from ending the
  // call (OnDone, then delete) between a heartbeat's check of done_ and its StartWrite. It is
  // let go when the read fails, which is how this stream learns that the call ended.
  AddHold();
  StartCall();
}

void Stream::Heartbeat() {
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->mutable_health()->set_state(v1::PROVISIONING_STATE_READY);
  Write(std::move(beat));
}

void Stream::Write(v1::AgentMessage message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  out_.push_back(std::move(message));
  if (!writing_) WriteNextLocked();
}

void Stream::WriteNextLocked() {
  if (out_.empty()) return;
  writing_message_ = std::move(out_.front());
  out_.erase(out_.begin());
  writing_ = true;
  StartWrite(&writing_message_);
}

void Stream::OnWriteDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  writing_ = false;
  if (ok && !done_) WriteNextLocked();
}

void Stream::OnReadDone(bool ok) {
  if (!ok) {  // the call ended: no write starts from now on, and OnDone may follow
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    RemoveHold();
    return;
  }
  if (in_.has_welcome()) fleet_->Welcomed(agent_);
  if (in_.has_desired_state()) {
    const int64_t revision = in_.desired_state().revision();
    v1::AgentMessage ack;
    ack.mutable_ack()->set_revision(revision);
    Write(std::move(ack));
    agent_->acked.store(revision);
    fleet_->Acked(agent_, revision);
  }
  StartRead(&in_);
}

void Stream::OnDone(const grpc::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  std::optional<absl::Duration> hint;
  const auto& trailers = context_.GetServerTrailingMetadata();
  if (auto it = trailers.find(common::kRetryAfterMetadata); it != trailers.end()) {
    int64_t ms = 0;
    if (absl::SimpleAtoi(std::string(it->second.data(), it->second.size()), &ms)) {
      hint = absl::Milliseconds(ms);
    }
  }
  fleet_->Ended(agent_, this, status, hint);
}

void Fleet::Register() {
  const absl::Time began = absl::Now();
  std::atomic<int> next{0}, failed{0};
  std::vector<std::thread> workers;
  // A window of registrations in flight, each worker one at a time (Register is unary and
  // short; threads keep this simple and the window bounded).
  for (int w = 0; w < options_.register_window; ++w) {
    workers.emplace_back([&] {
      for (int i = next++; i < options_.agents; i = next++) {
        Agent* agent = agents_[i].get();
        for (int attempt = 0;; ++attempt) {
          v1::RegisterRequest req;
          req.set_bootstrap_token(options_.token);
          req.set_name(agent->name);
          req.set_cluster(options_.cluster);
          req.set_version("fleet_load");
          req.set_registration_id(absl::StrCat(agent->name, "-registration"));
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
          grpc::Status st = agent->stub->Register(&ctx, req, &agent->reg);
          if (st.ok()) break;
          if (attempt == 20 || st.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
              st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
            ++failed;
            std::cerr << "fleet_load: " << agent->name << " not registered: " << st.error_message()
                      << "\n";
            break;
          }
          absl::SleepFor(agent->backoff->Next());
        }
        agent->backoff->Reset();
      }
    });
  }
  for (auto& t : workers) t.join();
  Emit({{"event", "registered"},
        {"n", options_.agents - failed.load()},
        {"failed", failed.load()},
        {"seconds", absl::ToDoubleSeconds(absl::Now() - began)}});
}

void Fleet::Connect(Agent* agent) {
  auto* stream = new Stream(this, agent);
  {
    absl::MutexLock lock(&mu_);
    streams_[agent] = stream;
  }
  stream->Begin();
}

void Fleet::Welcomed(Agent* agent) {
  absl::MutexLock lock(&mu_);
  agent->backoff->Reset();
  ++welcomes_;
  if (!ever_welcomed_[agent->index]) {
    ever_welcomed_[agent->index] = true;
    if (++welcomed_once_ == static_cast<int>(agents_.size())) {
      Emit({{"event", "connected"},
            {"n", welcomed_once_},
            {"seconds", absl::ToDoubleSeconds(absl::Now() - connect_began_)}});
    }
  }
}

void Fleet::Acked(Agent* agent, int64_t revision) {
  absl::MutexLock lock(&mu_);
  auto& times = acks_[revision];
  if (!times.emplace(agent->index, absl::Now()).second) return;  // acked again after a reconnect
  if (times.size() != agents_.size()) return;
  std::vector<absl::Time> sorted;
  for (const auto& [index, at] : times) sorted.push_back(at);
  std::sort(sorted.begin(), sorted.end());
  auto at = [&](double q) {
    return UnixSeconds(sorted[std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()))]);
  };
  Emit({{"event", "revision"},
        {"revision", revision},
        {"first_at", at(0)},
        {"p50_at", at(0.5)},
        {"p99_at", at(0.99)},
        {"all_acked_at", UnixSeconds(sorted.back())}});
}

void Fleet::Ended(Agent* agent, Stream* stream, const grpc::Status& status,
                  std::optional<absl::Duration> hint) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(agent);
  if (it != streams_.end() && it->second == stream) streams_.erase(it);
  delete stream;  // gRPC is done with it (OnDone)
  ++ended_[absl::StrCat(status.error_code(), " ", status.error_message().substr(0, 60))];
  // As the agent does (MothershipLink::Run): the promised slot, a little later at random, or
  // the jittered backoff.
  const absl::Duration delay = hint.has_value() && *hint > absl::ZeroDuration()
                                   ? *hint + *hint * (0.1 * agent->random.Uniform01())
                                   : agent->backoff->Next();
  reconnects_.emplace(absl::Now() + delay, agent);
}

void Fleet::HeartbeatLoop() {
  // Spread over the interval: one slice of the fleet every tick.
  const int ticks = 100;
  const absl::Duration tick = options_.heartbeat / ticks;
  // Against a deadline, not a sleep after each slice: the slices' own time would otherwise
  // stretch the interval (at 50,000 agents it sent 2,900 heartbeats a second, not 5,000).
  absl::Time next = absl::Now();
  for (int t = 0;; t = (t + 1) % ticks) {
    next += tick;
    absl::SleepFor(next - absl::Now());
    absl::MutexLock lock(&mu_);
    // This tick's slice only: walking every stream each tick held the lock for most of the
    // time at 50,000 agents, and the rest of the generator waited for it.
    for (size_t i = t; i < agents_.size(); i += ticks) {
      auto it = streams_.find(agents_[i].get());
      if (it != streams_.end()) it->second->Heartbeat();
    }
  }
}

void Fleet::ReconnectLoop() {
  int64_t last_status = 0;
  for (;;) {
    absl::SleepFor(absl::Milliseconds(20));
    std::vector<Agent*> due;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = absl::Now();
      while (!reconnects_.empty() && reconnects_.begin()->first <= now) {
        due.push_back(reconnects_.begin()->second);
        reconnects_.erase(reconnects_.begin());
      }
      const int64_t second = absl::ToUnixSeconds(now);
      if (second != last_status) {
        last_status = second;
        nlohmann::json acked = nlohmann::json::object();
        for (const auto& [revision, times] : acks_) acked[absl::StrCat(revision)] = times.size();
        Emit({{"event", "status"},
              {"at", UnixSeconds(now)},
              {"connected", streams_.size()},
              {"welcomes", welcomes_},
              {"acked", acked},
              {"ended", ended_}});
      }
    }
    for (Agent* agent : due) Connect(agent);
  }
}

void Fleet::Run() {
  common::BackoffPolicy policy;
  policy.max = options_.reconnect_max;
  std::shared_ptr<grpc::Channel> channel;
  for (int i = 0; i < options_.agents; ++i) {
    auto agent = std::make_unique<Agent>();
    agent->index = i;
    agent->name = absl::StrCat(options_.prefix, "-", i);
    if (i % options_.per_channel == 0) {
      // A connection of its own: a distinct argument keeps gRPC from sharing one.
      grpc::ChannelArguments args;
      args.SetInt("tether.bench.connection", i);
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      channel = grpc::CreateCustomChannel(options_.target, grpc::InsecureChannelCredentials(),
                                          args);
    }
    agent->channel = channel;
    agent->stub = v1::AgentService::NewStub(channel);
    agent->backoff = std::make_unique<common::Backoff>(policy, &agent->random);
    agents_.push_back(std::move(agent));
  }
  {
    absl::MutexLock lock(&mu_);
    ever_welcomed_.assign(agents_.size(), false);
  }
  Register();
  {
    absl::MutexLock lock(&mu_);
    connect_began_ = absl::Now();
  }
  for (auto& agent : agents_) {
    if (!agent->reg.agent_id().empty()) Connect(agent.get());
  }
  std::thread heartbeats([&] { HeartbeatLoop(); });
  ReconnectLoop();
}

}  // namespace
}  // namespace tether::bench

int main(int argc, char** argv) {
  // As the mothership and the agent do: Debian's Abseil keeps a deadlock graph for every
  // absl::Mutex (gRPC's too) otherwise, which cost this process a fifth of its CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  tether::bench::Options options;
  CLI::App app{"fleet_load: many agents in one process, speaking the real protocol"};
  app.add_option("--mothership", options.target, "host:port")->required();
  app.add_option("--bootstrap-token", options.token, "a bootstrap token of --cluster")->required();
  app.add_option("--cluster", options.cluster, "the token's cluster");
  app.add_option("--agents", options.agents, "how many agents")->capture_default_str();
  app.add_option("--prefix", options.prefix, "agents are named PREFIX-0 …")->capture_default_str();
  app.add_option("--per-connection", options.per_channel, "agents sharing one HTTP/2 connection")
      ->capture_default_str();
  app.add_option("--register-window", options.register_window,
                 "registrations in flight at once")
      ->capture_default_str();
  double heartbeat_seconds = 10, reconnect_max_seconds = 5;
  app.add_option("--heartbeat-seconds", heartbeat_seconds, "heartbeat interval")
      ->capture_default_str();
  app.add_option("--reconnect-max-seconds", reconnect_max_seconds,
                 "the cap of the reconnect backoff (the agent's --reconnect-max)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  options.heartbeat = absl::Seconds(heartbeat_seconds);
  options.reconnect_max = absl::Seconds(reconnect_max_seconds);
  if (options.agents < 1 || options.per_channel < 1 || options.register_window < 1) {
    std::cerr << "fleet_load: --agents, --per-connection and --register-window must be positive\n";
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  tether::bench::Fleet fleet(options);
  fleet.Run();  // until the process is killed
}
