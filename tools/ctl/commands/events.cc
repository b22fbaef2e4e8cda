// tetherctl events [--follow]: the event log, followed live across mothership restarts.
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <iostream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

void PrintEvents(const google::protobuf::RepeatedPtrField<v1::Event>& events, std::ostream& out,
                 bool header) {
  Table table{{"ID", "TIME", "CLUSTER", "AGENT", "KIND", "BY", "MESSAGE"}, {}};
  for (const auto& e : events) {
    table.rows.push_back({absl::StrCat(e.id()), FormatTime(e.at()), e.cluster().empty() ? "-" : e.cluster(),
                          e.agent().empty() ? "-" : e.agent(), e.kind(),
                          e.actor().empty() ? "-" : e.actor(), Printable(e.message())});
  }
  if (header) {
    PrintTable(table, out);
  } else {
    for (const auto& row : table.rows) {
      out << absl::StrJoin(row, "  ") << "\n";
    }
  }
}

// The most events one ListEvents call returns.
constexpr int kEventsPage = 1000;

struct EventArgs {
  std::string cluster, kind, actor;
  bool follow = false;
  int limit = 50;
};

}  // namespace

void AddEventCommands(CommandTree& tree) {
  auto args = std::make_shared<EventArgs>();
  tree.args->push_back(args);
  auto& [cluster, kind, actor, follow, limit] = *args;
  // events
  auto* events = tree.app->add_subcommand("events", "show the event log");
  events->add_option("--cluster", cluster, "only this cluster");
  events->add_option("--kind", kind, "only this kind (agent.lost), or a prefix (agent.*)");
  events->add_option("--actor", actor,
                     "only what this actor did: an operator token id or agent id "
                     "(operator:ID, agent:ID, or the ID alone)");
  events->add_flag("-f,--follow", follow, "keep printing new events until interrupted");
  events->add_option("--limit", limit, "how many recent events to show first")->capture_default_str();
  events->callback([&] {
    *tree.action = [&](Session& s) {
      // The newest `limit` events, a page at a time from the newest back.
      v1::ListEventsResponse resp;
      grpc::Status st;
      std::vector<v1::ListEventsResponse> pages;
      int64_t before = 0;
      for (int left = limit; left > 0;) {
        v1::ListEventsRequest req;
        req.set_cluster(cluster);
        req.set_kind(kind);
        req.set_actor(actor);
        req.set_limit(std::min(left, kEventsPage));
        req.set_before_id(before);
        v1::ListEventsResponse page;
        auto ctx = s.Context();
        st = s.stub->ListEvents(ctx.get(), req, &page);
        if (!st.ok()) return st;
        const int got = page.events_size();
        if (got > 0) before = page.events(0).id();
        left -= got;
        pages.push_back(std::move(page));
        if (got < req.limit()) break;  // no older events
      }
      for (auto it = pages.rbegin(); it != pages.rend(); ++it) {
        for (auto& e : *it->mutable_events()) *resp.add_events() = std::move(e);
      }
      const bool table = s.config.output == "table";
      if (!follow) {
        if (table) {
          PrintEvents(resp.events(), *s.out, true);
        } else {
          PrintStructured(resp, s.config.output, *s.out);
        }
        return st;
      }
      // Following: one line (table) or one compact JSON document per event.
      auto print = [&](const v1::Event& e) {
        if (table) {
          google::protobuf::RepeatedPtrField<v1::Event> one;
          *one.Add() = e;
          PrintEvents(one, *s.out, false);
        } else {
          std::string json;
          (void)google::protobuf::util::MessageToJsonString(e, &json);
          *s.out << json << "\n";
        }
        s.out->flush();
      };
      int64_t after = 0;  // with no events yet, follow from the very first one
      for (const auto& e : resp.events()) {
        print(e);
        after = e.id();
      }
      // Follow until interrupted; when the mothership restarts, pick up after the last event.
      for (;;) {
        v1::WatchEventsRequest watch;
        watch.set_cluster(cluster);
        watch.set_kind(kind);
        watch.set_actor(actor);
        watch.set_after_id(after);
        auto wctx = s.Context(/*streaming=*/true);
        wctx->set_wait_for_ready(true);
        auto reader = s.stub->WatchEvents(wctx.get(), watch);
        v1::Event e;
        while (reader->Read(&e)) {
          print(e);
          after = e.id();
        }
        grpc::Status ended = reader->Finish();
        if (ended.error_code() != grpc::StatusCode::UNAVAILABLE) return ended;
        std::cerr << "tetherctl: " << ended.error_message() << "; reconnecting\n";
      }
    };
  });

}

}  // namespace tether::ctl
