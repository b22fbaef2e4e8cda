// The mothership's stream machinery driven from many threads at once, for ThreadSanitizer
// (tools/test builds this test with -fsanitize=thread in build-tsan/; the main build runs it
// too): agent sessions connecting, acking and leaving while revisions, commands and deletions
// are published on the change bus; handlers leaving the bus while it publishes; a herd at the
// admission gate; jobs handed to the work pool from many threads. Once the threads are joined,
// each test checks what the classes promise. The gRPC reactor of api/agent_service.cc is not
// here: Debian's gRPC is not built for TSan, whose reports about it would be about gRPC's
// invisible synchronisation, not ours; the integration tests cover it.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/work_pool.h"
#include "controlplane/agents/admission.h"
#include "controlplane/agents/session.h"
#include "controlplane/agents/stream_registry.h"
#include "controlplane/fanout/change_bus.h"
#include "tests/testing/fake_clock.h"
#include "tests/testing/fake_session_backend.h"

namespace tether::controlplane {
namespace {

using testing::FakeSessionBackend;
using testing::FakeSessionOutbox;

class StreamStressTest : public ::testing::Test {
 protected:
  // A line per connect and disconnect would be most of the run.
  StreamStressTest() { spdlog::set_level(spdlog::level::warn); }
  ~StreamStressTest() override { spdlog::set_level(spdlog::level::info); }
};

AgentIdentity Agent(int i) {
  return AgentIdentity{absl::StrCat("id-", i), absl::StrCat("web-", i), "shop", 1};
}

v1::AgentMessage Hello(const AgentIdentity& agent) {
  v1::AgentMessage m;
  m.mutable_hello()->set_agent_id(agent.id);
  m.mutable_hello()->set_incarnation(agent.incarnation);
  return m;
}

v1::AgentMessage Ack(int64_t revision) {
  v1::AgentMessage m;
  m.mutable_ack()->set_revision(revision);
  return m;
}

// One stream's outbox after its session was detached, and how much it had sent by then.
struct EndedStream {
  std::unique_ptr<FakeSessionOutbox> outbox;
  size_t sent_when_detached = 0;
};

size_t SentCount(FakeSessionOutbox& outbox) {
  absl::MutexLock lock(&outbox.mu_);
  return outbox.sent.size();
}

TEST_F(StreamStressTest, SessionsComeAndGoWhileRevisionsCommandsAndDeletionsArePublished) {
  constexpr int kAgents = 6;
  constexpr int kConnectors = 4;
  constexpr int kRounds = 500;
  constexpr int64_t kCommands = 20;
  InProcessChangeBus bus;
  StreamRegistry streams(&bus);
  FakeSessionBackend backend;
  std::latch start(kConnectors + 1);
  std::atomic<int> connecting{kConnectors};
  std::vector<std::vector<EndedStream>> ended(kConnectors);
  std::atomic<int> acks{0};
  int64_t latest = 0;  // the publisher's, read after it is joined

  std::vector<std::thread> threads;
  for (int t = 0; t < kConnectors; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        // Several connectors share each agent, so streams replace each other in the registry.
        const AgentIdentity agent = Agent((t + round) % kAgents);
        auto outbox = std::make_unique<FakeSessionOutbox>();
        auto session = std::make_shared<AgentSession>(agent, &backend, &streams, outbox.get());
        EXPECT_TRUE(session->OnMessage(Hello(agent)).ok());
        v1::AgentMessage heartbeat;
        heartbeat.mutable_heartbeat()->mutable_health()->set_state(v1::PROVISIONING_STATE_READY);
        EXPECT_TRUE(session->OnMessage(heartbeat).ok());
        for (const int64_t revision : outbox->Revisions()) {
          EXPECT_TRUE(session->OnMessage(Ack(revision)).ok());
          ++acks;
        }
        session->Detach();
        const size_t sent = SentCount(*outbox);
        ended[t].push_back({std::move(outbox), sent});
      }
      --connecting;
    });
  }
  // Publishes for as long as sessions come and go.
  threads.emplace_back([&] {
    start.arrive_and_wait();
    for (int64_t revision = 1; connecting.load() > 0; ++revision) {
      backend.SetLatest(revision);
      latest = revision;
      bus.Publish(Change{Change::Kind::kRevision, "shop", "", revision});
      if (revision % 10 == 0) {
        // A few commands, each queued once and then announced again (as when cancelled).
        const int64_t id = (revision / 10 - 1) % kCommands + 1;
        if (revision / 10 <= kCommands) {
          v1::Command command;
          command.set_id(std::to_string(id));
          command.set_revision(revision);
          command.mutable_reprovision();
          absl::MutexLock lock(&backend.mu_);
          backend.commands.push_back(command);
        }
        bus.Publish(Change{Change::Kind::kCommand, "shop", Agent(id % kAgents).id, id});
      }
      if (revision % 25 == 0) {
        const AgentIdentity agent = Agent(static_cast<int>(revision / 25) % kAgents);
        bus.Publish(Change{Change::Kind::kAgentDeleted, "shop", agent.id, 0});
      }
    }
  });
  for (auto& thread : threads) thread.join();

  EXPECT_EQ(streams.size(), 0);
  {
    absl::MutexLock lock(&backend.mu_);
    EXPECT_EQ(static_cast<int>(backend.acks.size()), acks.load());
  }
  for (auto& per_thread : ended) {
    for (auto& stream : per_thread) {
      // Nothing reached a stream after its session was detached.
      ASSERT_EQ(SentCount(*stream.outbox), stream.sent_when_detached);
      const std::vector<v1::MothershipMessage>& sent = stream.outbox->sent;
      ASSERT_FALSE(sent.empty());
      EXPECT_TRUE(sent[0].has_welcome());
      // Each revision once, never an older one after a newer.
      const std::vector<int64_t> revisions = stream.outbox->Revisions();
      EXPECT_TRUE(std::adjacent_find(revisions.begin(), revisions.end(),
                                     [](int64_t a, int64_t b) { return a >= b; }) ==
                  revisions.end());
    }
  }
  // Whatever happened, an agent that connects now is sent the latest revision.
  ASSERT_GT(latest, 0);
  for (int i = 0; i < kAgents; ++i) {
    FakeSessionOutbox outbox;
    auto session = std::make_shared<AgentSession>(Agent(i), &backend, &streams, &outbox);
    ASSERT_TRUE(session->OnMessage(Hello(Agent(i))).ok());
    EXPECT_EQ(outbox.Revisions(), std::vector<int64_t>{latest});
    session->Detach();
  }
}

// Unsubscribe's promise: once it returns, the handler is not running and will not run again,
// so what the handler uses may be freed at once (a race TSan would report otherwise). A
// subscriber that stays for the whole run sees every change.
TEST_F(StreamStressTest, HandlersLeaveTheBusWhileItPublishes) {
  constexpr int kPublishers = 2;
  constexpr int kSubscribers = 4;
  constexpr int kRounds = 1000;
  InProcessChangeBus bus;
  std::atomic<int> seen_by_stayer{0};
  const uint64_t stayer = bus.Subscribe([&](const Change&) { ++seen_by_stayer; });
  std::latch start(kPublishers + kSubscribers);
  std::atomic<int> subscribing{kSubscribers};
  std::atomic<int> published{0};

  std::vector<std::thread> threads;
  for (int p = 0; p < kPublishers; ++p) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      // At least once, and for as long as subscribers come and go.
      do {
        bus.Publish(Change{Change::Kind::kEvent, "shop", "", ++published});
      } while (subscribing.load() > 0);
    });
  }
  for (int s = 0; s < kSubscribers; ++s) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int round = 0; round < kRounds; ++round) {
        auto count = std::make_unique<std::atomic<int>>(0);
        const uint64_t id = bus.Subscribe([c = count.get()](const Change&) { ++*c; });
        bus.Unsubscribe(id);
        count.reset();  // the handler must not touch it any more
      }
      --subscribing;
    });
  }
  for (auto& thread : threads) thread.join();
  bus.Unsubscribe(stayer);
  EXPECT_EQ(seen_by_stayer.load(), published.load());
}

// A herd at the gate with the clock standing still: exactly the burst is admitted, and the
// refused are promised distinct slots one interval apart, with no gap, whoever came first.
TEST_F(StreamStressTest, AHerdAtTheAdmissionGateGetsDistinctSlots) {
  constexpr int kThreads = 6;
  constexpr int kCallsEach = 200;
  constexpr int kBurst = 5;
  testing::FakeClock clock;
  Admission admission(/*rate=*/100, kBurst, &clock);  // one each 10 ms
  std::latch start(kThreads);
  std::vector<std::vector<std::optional<absl::Duration>>> answers(kThreads);

  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kCallsEach; ++i) answers[t].push_back(admission.Admit());
    });
  }
  for (auto& thread : threads) thread.join();

  int admitted = 0;
  std::vector<absl::Duration> waits;
  for (const auto& per_thread : answers) {
    for (const auto& answer : per_thread) {
      if (answer.has_value()) {
        waits.push_back(*answer);
      } else {
        ++admitted;
      }
    }
  }
  EXPECT_EQ(admitted, kBurst);
  std::sort(waits.begin(), waits.end());
  ASSERT_EQ(waits.size(), static_cast<size_t>(kThreads * kCallsEach - kBurst));
  for (size_t i = 0; i < waits.size(); ++i) {
    ASSERT_EQ(waits[i], absl::Milliseconds(10) * static_cast<int64_t>(i + 1)) << i;
  }
}

// Jobs handed over from many threads, some handing over another from inside the pool: each
// runs once, and all of them before the pool's destructor returns. The slots are plain ints,
// ordered only by the pool's own hand-over.
TEST_F(StreamStressTest, TheWorkPoolRunsEveryJobOnce) {
  constexpr int kSubmitters = 4;
  constexpr int kJobsEach = 500;
  constexpr int kJobs = kSubmitters * kJobsEach;
  std::vector<int> runs(2 * kJobs, 0);  // the second half: jobs submitted by jobs
  {
    common::WorkPool pool(3);
    std::latch start(kSubmitters);
    std::vector<std::thread> submitters;
    for (int t = 0; t < kSubmitters; ++t) {
      submitters.emplace_back([&, t] {
        start.arrive_and_wait();
        for (int i = 0; i < kJobsEach; ++i) {
          const int job = t * kJobsEach + i;
          pool.Submit([&runs, &pool, job] {
            ++runs[job];
            pool.Submit([&runs, job] { ++runs[kJobs + job]; });
          });
        }
      });
    }
    for (auto& thread : submitters) thread.join();
  }
  EXPECT_EQ(std::count(runs.begin(), runs.end(), 1), 2 * kJobs);
}

}  // namespace
}  // namespace tether::controlplane
