// tetherctl's command verbs in-process against a scripted ControlService on port 0: a queued
// command retried under one idempotency key, followed across a broken stream without losing or
// doubling a line, the exit status and the summary, -o json, --detach, and the listings.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <deque>
#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/files.h"
#include "tests/testing/postgres_server.h"
#include "tether/v1/control_service.grpc.pb.h"
#include "tools/ctl/ctl.h"

namespace tether {
namespace {

bool IsFinished(v1::CommandState s) {
  return s == v1::COMMAND_STATE_SUCCEEDED || s == v1::COMMAND_STATE_FAILED ||
         s == v1::COMMAND_STATE_CANCELLED;
}

v1::CommandLine Line(int64_t seq, const std::string& agent, const std::string& text) {
  v1::CommandLine l;
  l.set_seq(seq);
  l.mutable_at()->set_seconds(1'800'000'000 + seq);
  l.set_agent(agent);
  l.set_text(text);
  return l;
}

v1::CommandStatus Status(v1::CommandState state, int64_t lines, const std::string& error = "") {
  v1::CommandStatus s;
  s.set_id("42");
  s.set_cluster("shop");
  s.set_kind("migrate");
  s.set_summary("migrate shop to the latest version");
  s.set_state(state);
  s.set_lines(lines);
  s.set_created_by("tok-1");
  s.mutable_created_at()->set_seconds(1'800'000'000);
  for (const char* name : {"web-1", "web-2"}) {
    auto* t = s.add_targets();
    t->set_agent(name);
    t->set_steps_total(2);
    const bool fails = !error.empty() && std::string(name) == "web-2";
    t->set_state(fails                                ? v1::COMMAND_STATE_FAILED
                 : state == v1::COMMAND_STATE_FAILED ? v1::COMMAND_STATE_SUCCEEDED
                                                     : state);
    t->set_steps_done(state == v1::COMMAND_STATE_SUCCEEDED ? 2 : 1);
    if (fails) t->set_error(error);
  }
  if (IsFinished(state)) s.mutable_finished_at()->set_seconds(1'800'000'002);
  return s;
}

// One WatchCommand call's script: events to write, then the status to end with.
struct WatchScript {
  std::vector<v1::CommandEvent> events;
  grpc::Status end;
};

v1::CommandEvent Event(const v1::CommandLine& l) {
  v1::CommandEvent e;
  *e.mutable_line() = l;
  return e;
}

v1::CommandEvent Event(const v1::CommandStatus& s) {
  v1::CommandEvent e;
  *e.mutable_status() = s;
  return e;
}

class ScriptedControl final : public v1::ControlService::Service {
 public:
  grpc::Status RunCommand(grpc::ServerContext*, const v1::RunCommandRequest* request,
                          v1::CommandStatus* response) override {
    absl::MutexLock lock(&mu_);
    runs_.push_back(*request);
    if (unavailable_runs_ > 0) {
      --unavailable_runs_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
    }
    *response = Status(v1::COMMAND_STATE_QUEUED, 0);
    return grpc::Status::OK;
  }

  grpc::Status WatchCommand(grpc::ServerContext*, const v1::WatchCommandRequest* request,
                            grpc::ServerWriter<v1::CommandEvent>* writer) override {
    WatchScript script;
    {
      absl::MutexLock lock(&mu_);
      watches_.push_back(*request);
      if (watch_scripts_.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "no script");
      script = watch_scripts_.front();
      watch_scripts_.pop_front();
    }
    for (const auto& e : script.events) writer->Write(e);
    return script.end;
  }

  grpc::Status ListCommands(grpc::ServerContext*, const v1::ListCommandsRequest* request,
                            v1::ListCommandsResponse* response) override {
    absl::MutexLock lock(&mu_);
    lists_.push_back(*request);
    *response->add_commands() = Status(v1::COMMAND_STATE_FAILED, 3, "boom");
    return grpc::Status::OK;
  }

  grpc::Status ApplySpec(grpc::ServerContext*, const v1::ApplySpecRequest* request,
                         v1::ApplySpecResponse* response) override {
    absl::MutexLock lock(&mu_);
    applies_.push_back(*request);
    if (unavailable_runs_ > 0) {
      --unavailable_runs_;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "restarting");
    }
    response->set_cluster(request->spec().cluster());
    response->set_revision(2);
    response->set_previous_revision(1);
    response->add_changes("+ tenant acme");
    response->set_stored(!request->dry_run());
    if (!request->dry_run()) response->set_command_id("42");
    return grpc::Status::OK;
  }

  grpc::Status GetCommand(grpc::ServerContext*, const v1::GetCommandRequest* request,
                          v1::CommandStatus* response) override {
    if (request->id() != "42") return grpc::Status(grpc::StatusCode::NOT_FOUND, "no command 7");
    *response = Status(v1::COMMAND_STATE_FAILED, 3, "acme: syntax error\x1b[2J");
    return grpc::Status::OK;
  }

  // Agents a0000… a0004 in pages of two; events 1…2500, pages as the mothership gives them.
  grpc::Status ListAgents(grpc::ServerContext*, const v1::ListAgentsRequest* request,
                          v1::ListAgentsResponse* response) override {
    absl::MutexLock lock(&mu_);
    agent_pages_.push_back(*request);
    int from = request->page_token().empty() ? 0 : std::stoi(request->page_token());
    // Pages of two, or fewer when asked.
    const int to = std::min({from + 2, from + std::max(request->page_size(), 1), 5});
    for (int i = from; i < to; ++i) {
      auto* a = response->add_agents();
      a->set_name(absl::StrCat("a000", i));
      a->set_cluster("shop");
    }
    if (to < 5) response->set_next_page_token(absl::StrCat(to));
    return grpc::Status::OK;
  }

  grpc::Status ListEvents(grpc::ServerContext*, const v1::ListEventsRequest* request,
                          v1::ListEventsResponse* response) override {
    absl::MutexLock lock(&mu_);
    event_pages_.push_back(*request);
    if (request->limit() > 1000) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "limit must be at most 1000");
    }
    const int64_t last = request->before_id() == 0 ? 2500 : request->before_id() - 1;
    for (int64_t id = std::max<int64_t>(1, last - request->limit() + 1); id <= last; ++id) {
      auto* e = response->add_events();
      e->set_id(id);
      e->set_kind("agent.registered");
    }
    return grpc::Status::OK;
  }

  void Script(std::deque<WatchScript> scripts, int unavailable_runs = 0) {
    absl::MutexLock lock(&mu_);
    watch_scripts_ = std::move(scripts);
    unavailable_runs_ = unavailable_runs;
  }
  std::vector<v1::RunCommandRequest> runs() {
    absl::MutexLock lock(&mu_);
    return runs_;
  }
  std::vector<v1::WatchCommandRequest> watches() {
    absl::MutexLock lock(&mu_);
    return watches_;
  }
  std::vector<v1::ApplySpecRequest> applies() {
    absl::MutexLock lock(&mu_);
    return applies_;
  }
  std::vector<v1::ListCommandsRequest> lists() {
    absl::MutexLock lock(&mu_);
    return lists_;
  }
  std::vector<v1::ListAgentsRequest> agent_pages() {
    absl::MutexLock lock(&mu_);
    return agent_pages_;
  }
  std::vector<v1::ListEventsRequest> event_pages() {
    absl::MutexLock lock(&mu_);
    return event_pages_;
  }

 private:
  absl::Mutex mu_;
  std::deque<WatchScript> watch_scripts_ ABSL_GUARDED_BY(mu_);
  int unavailable_runs_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<v1::RunCommandRequest> runs_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::WatchCommandRequest> watches_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ListCommandsRequest> lists_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ApplySpecRequest> applies_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ListAgentsRequest> agent_pages_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::ListEventsRequest> event_pages_ ABSL_GUARDED_BY(mu_);
};

class CtlCommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(&control_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port);
    ASSERT_TRUE(common::WriteFileAtomically(dir_.path() + "/no-config", "", 0600).ok());
  }
  void TearDown() override { server_->Shutdown(); }

  int Ctl(std::vector<std::string> command, std::string* out, std::string* err) {
    std::vector<std::string> args = {"tetherctl", "--server", address_, "--token", "t",
                                     "--config", dir_.path() + "/no-config"};
    args.insert(args.end(), command.begin(), command.end());
    std::vector<const char*> argv;
    for (auto& a : args) argv.push_back(a.c_str());
    std::ostringstream o, e;
    int rc = ctl::RunCtl(static_cast<int>(argv.size()), argv.data(), o, e);
    *out = o.str();
    *err = e.str();
    return rc;
  }

  testing::TempDir dir_;
  ScriptedControl control_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

TEST_F(CtlCommandsTest, MigrateIsQueuedOnceAndFollowedAcrossABrokenStream) {
  control_.Script(
      {
          {{Event(Status(v1::COMMAND_STATE_RUNNING, 2)), Event(Line(1, "web-1", "acme: applying 0001")),
            Event(Line(2, "web-2", "acme: applying 0001"))},
           grpc::Status(grpc::StatusCode::UNAVAILABLE, "mothership restarting")},
          // After the reconnect it sends line 2 again; it is printed once.
          {{Event(Line(2, "web-2", "acme: applying 0001")), Event(Line(3, "web-1", "acme: done")),
            Event(Status(v1::COMMAND_STATE_SUCCEEDED, 3))},
           grpc::Status::OK},
      },
      /*unavailable_runs=*/1);
  std::string out, err;
  ASSERT_EQ(Ctl({"migrate", "shop", "--tenant", "acme", "--to", "3"}, &out, &err), 0) << err;

  auto runs = control_.runs();
  ASSERT_EQ(runs.size(), 2u);  // retried after UNAVAILABLE...
  EXPECT_FALSE(runs[0].idempotency_key().empty());
  EXPECT_EQ(runs[0].idempotency_key(), runs[1].idempotency_key());  // ...under the same key
  EXPECT_EQ(runs[0].cluster(), "shop");
  EXPECT_EQ(runs[0].command().migrate().tenant(), "acme");
  EXPECT_EQ(runs[0].command().migrate().to_version(), 3);

  auto watches = control_.watches();
  ASSERT_EQ(watches.size(), 2u);
  EXPECT_EQ(watches[0].after_seq(), 0);
  EXPECT_EQ(watches[1].after_seq(), 2);
  EXPECT_TRUE(watches[1].follow());
  EXPECT_EQ(watches[1].id(), "42");

  EXPECT_EQ(out,
            "command 42: migrate shop to the latest version (again: tetherctl logs 42 --follow)\n"
            "08:00:01.000 web-1  acme: applying 0001\n"
            "08:00:02.000 web-2  acme: applying 0001\n"
            "08:00:03.000 web-1  acme: done\n"
            "command 42 succeeded on 2 agents in 2.0 s\n");
  EXPECT_NE(err.find("mothership restarting; reconnecting in"), std::string::npos) << err;
}

TEST_F(CtlCommandsTest, AFailedCommandExitsOneWithTheReasonOnStderr) {
  control_.Script({{{Event(Line(1, "web-2", "acme: failed")),
                     Event(Status(v1::COMMAND_STATE_FAILED, 1, "acme: syntax error\n\x1b[2J"))},
                    grpc::Status::OK}});
  std::string out, err;
  EXPECT_EQ(Ctl({"drop-tenant", "shop", "acme", "--force", "--idempotency-key", "k-1"}, &out, &err),
            1);
  EXPECT_EQ(err, "tetherctl: command 42 failed on web-2: acme: syntax error\\n\\x1b[2J\n");
  auto runs = control_.runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].idempotency_key(), "k-1");
  EXPECT_TRUE(runs[0].command().drop_tenant().force());
}

TEST_F(CtlCommandsTest, JsonPrintsOnlyTheFinalStatus) {
  control_.Script({{{Event(Line(1, "web-1", "x")), Event(Status(v1::COMMAND_STATE_SUCCEEDED, 1))},
                    grpc::Status::OK}});
  std::string out, err;
  ASSERT_EQ(Ctl({"-o", "json", "reprovision", "web-1"}, &out, &err), 0) << err;
  // One document: the status, without the lines.
  auto status = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(status.is_object()) << out;
  EXPECT_EQ(status.value("state", ""), "COMMAND_STATE_SUCCEEDED");
  EXPECT_EQ(status.value("id", ""), "42");
  EXPECT_EQ(out.find("web-1  x"), std::string::npos) << out;
  EXPECT_EQ(control_.runs().at(0).agent(), "web-1");
  EXPECT_TRUE(control_.runs().at(0).cluster().empty());
}

TEST_F(CtlCommandsTest, DetachPrintsTheIdAndDoesNotWatch) {
  std::string out, err;
  ASSERT_EQ(Ctl({"rollback", "shop", "--tenant", "acme", "--steps", "2", "--detach"}, &out, &err),
            0)
      << err;
  EXPECT_EQ(out, "42\n");
  EXPECT_TRUE(control_.watches().empty());
  EXPECT_EQ(control_.runs().at(0).command().rollback().steps(), 2);
}

TEST_F(CtlCommandsTest, LogsPrintsStoredLinesWithoutFollowing) {
  control_.Script({{{Event(Line(1, "web-1", "one")), Event(Line(2, "", "two"))}, grpc::Status::OK}});
  std::string out, err;
  ASSERT_EQ(Ctl({"logs", "42"}, &out, &err), 0) << err;
  EXPECT_EQ(out, "08:00:01.000 web-1  one\n08:00:02.000 -  two\n");
  EXPECT_FALSE(control_.watches().at(0).follow());
}

TEST_F(CtlCommandsTest, ApplyRetriesUnderOneKeyAndFollowsItsCommand) {
  const std::string spec = dir_.path() + "/spec.yaml";
  ASSERT_TRUE(common::WriteFileAtomically(spec, "cluster: shop\ntenants: [acme]\n", 0644).ok());
  control_.Script({{{Event(Line(1, "web-1", "acme: created")),
                     Event(Status(v1::COMMAND_STATE_FAILED, 1, "acme: nack"))},
                    grpc::Status::OK}},
                  /*unavailable_runs=*/1);
  std::string out, err;
  EXPECT_EQ(Ctl({"apply", "-f", spec}, &out, &err), 1);
  auto applies = control_.applies();
  ASSERT_EQ(applies.size(), 2u);
  EXPECT_FALSE(applies[0].idempotency_key().empty());
  EXPECT_EQ(applies[0].idempotency_key(), applies[1].idempotency_key());
  EXPECT_EQ(out,
            "+ tenant acme\n"
            "cluster shop is at revision 2; following its agents (command 42)\n"
            "08:00:01.000 web-1  acme: created\n");
  EXPECT_EQ(err, "tetherctl: command 42 failed on web-2: acme: nack\n");

  // A dry run stores nothing, so it has no key and no command to follow.
  ASSERT_EQ(Ctl({"apply", "-f", spec, "--dry-run"}, &out, &err), 0) << err;
  EXPECT_TRUE(control_.applies().back().idempotency_key().empty());
  EXPECT_EQ(control_.watches().size(), 1u);

  // --detach with -o json: the response, one document, and no watch.
  ASSERT_EQ(Ctl({"-o", "json", "apply", "-f", spec, "--detach"}, &out, &err), 0) << err;
  auto response = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  EXPECT_EQ(response.value("commandId", ""), "42") << out;
  EXPECT_EQ(control_.watches().size(), 1u);
}

TEST_F(CtlCommandsTest, ListingAndShowingCommands) {
  std::string out, err;
  ASSERT_EQ(Ctl({"get", "commands", "--cluster", "shop", "--state", "failed", "--limit", "5"}, &out,
                &err),
            0)
      << err;
  EXPECT_NE(out.find("ID  CLUSTER  KIND     SUMMARY"), std::string::npos) << out;
  EXPECT_NE(out.find("1/2 done, 1 failed"), std::string::npos) << out;
  auto lists = control_.lists();
  ASSERT_EQ(lists.size(), 1u);
  EXPECT_EQ(lists[0].state(), v1::COMMAND_STATE_FAILED);
  EXPECT_EQ(lists[0].limit(), 5);

  ASSERT_EQ(Ctl({"get", "command", "42"}, &out, &err), 0) << err;
  EXPECT_NE(out.find("AGENT  STATE"), std::string::npos) << out;
  EXPECT_NE(out.find("acme: syntax error\\x1b[2J"), std::string::npos) << out;
  EXPECT_EQ(out.find('\x1b'), std::string::npos);

  EXPECT_EQ(Ctl({"get", "command", "7"}, &out, &err), 1);
  EXPECT_EQ(err, "tetherctl: no command 7\n");
}

// No list outgrows a message: tetherctl asks page by page and prints one list.
TEST_F(CtlCommandsTest, AgentsAndEventsAreFetchedPageByPageAndPrintedAsOneList) {
  std::string out, err;
  ASSERT_EQ(Ctl({"-o", "json", "get", "agents", "--cluster", "shop"}, &out, &err), 0) << err;
  const nlohmann::json agents = nlohmann::json::parse(out, nullptr, false);
  ASSERT_EQ(agents["agents"].size(), 5u) << out;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(agents["agents"][i]["name"], absl::StrCat("a000", i));
  EXPECT_EQ(agents.value("nextPageToken", ""), "") << out;  // one list: no page follows
  auto pages = control_.agent_pages();
  ASSERT_EQ(pages.size(), 3u);
  EXPECT_EQ(pages[0].page_token(), "");
  EXPECT_EQ(pages[1].page_token(), "2");
  EXPECT_EQ(pages[2].page_token(), "4");
  for (const auto& p : pages) EXPECT_EQ(p.cluster(), "shop");

  // --limit stops paging once it has its agents; --status goes to the mothership.
  ASSERT_EQ(Ctl({"-o", "json", "get", "agents", "--status", "lost", "--limit", "3"}, &out, &err),
            0)
      << err;
  const nlohmann::json three = nlohmann::json::parse(out, nullptr, false);
  ASSERT_EQ(three["agents"].size(), 3u) << out;
  EXPECT_EQ(three["agents"][2]["name"], "a0002");
  pages = control_.agent_pages();
  ASSERT_EQ(pages.size(), 5u);
  EXPECT_EQ(pages[3].page_size(), 3);
  EXPECT_EQ(pages[4].page_size(), 1);
  for (int i = 3; i < 5; ++i) EXPECT_EQ(pages[i].status(), v1::AGENT_STATUS_LOST);
  EXPECT_EQ(Ctl({"get", "agents", "--status", "sleepy"}, &out, &err), 2);
  EXPECT_NE(err.find("--status"), std::string::npos) << err;

  // 1,500 of the newest events: two pages, the second before the first's oldest, printed
  // oldest first.
  ASSERT_EQ(Ctl({"-o", "json", "events", "--limit", "1500"}, &out, &err), 0) << err;
  const nlohmann::json events = nlohmann::json::parse(out, nullptr, false);
  ASSERT_EQ(events["events"].size(), 1500u) << err;
  EXPECT_EQ(events["events"][0]["id"], "1001");
  EXPECT_EQ(events["events"][1499]["id"], "2500");
  auto event_pages = control_.event_pages();
  ASSERT_EQ(event_pages.size(), 2u);
  EXPECT_EQ(event_pages[0].limit(), 1000);
  EXPECT_EQ(event_pages[0].before_id(), 0);
  EXPECT_EQ(event_pages[1].limit(), 500);
  EXPECT_EQ(event_pages[1].before_id(), 1501);

  // Filters go to the mothership as they are given.
  ASSERT_EQ(Ctl({"events", "--limit", "3", "--kind", "agent.*", "--actor", "operator:ab12"}, &out,
                &err),
            0)
      << err;
  EXPECT_EQ(control_.event_pages().back().kind(), "agent.*");
  EXPECT_EQ(control_.event_pages().back().actor(), "operator:ab12");
  EXPECT_NE(out.find("KIND              BY"), std::string::npos) << out;
}

}  // namespace
}  // namespace tether
