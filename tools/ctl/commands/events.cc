// tetherctl events [--follow]: the event log, followed live across mothership restarts.
#include <google/protobuf/util/json_util.h>

#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

void PrintEvents(const google::protobuf::RepeatedPtrField<v1::Event>& events, std::ostream& out,
                 bool header) {
  Table table{{"ID", "TIME", "CLUSTER", "AGENT", "KIND", "MESSAGE"}, {}};
  for (const auto& e : events) {
    table.rows.push_back({absl::StrCat(e.id()), FormatTime(e.at()), e.cluster().empty() ? "-" : e.cluster(),
                          e.agent().empty() ? "-" : e.agent(), e.kind(), Printable(e.message())});
  }
  if (header) {
    PrintTable(table, out);
  } else {
    for (const auto& row : table.rows) {
      out << absl::StrJoin(row, "  ") << "\n";
    }
  }
}

struct EventArgs {
  std::string cluster;
  bool follow = false;
  int limit = 50;
};

}  // namespace

void AddEventCommands(CommandTree& tree) {
  auto args = std::make_shared<EventArgs>();
  tree.args->push_back(args);
  auto& [cluster, follow, limit] = *args;
  // events
  auto* events = tree.app->add_subcommand("events", "show the event log");
  events->add_option("--cluster", cluster, "only this cluster");
  events->add_flag("-f,--follow", follow, "keep printing new events until interrupted");
  events->add_option("--limit", limit, "how many recent events to show first")->capture_default_str();
  events->callback([&] {
    *tree.action = [&](Session& s) {
      v1::ListEventsRequest req;
      req.set_cluster(cluster);
      req.set_limit(limit);
      v1::ListEventsResponse resp;
      auto ctx = s.Context();
      grpc::Status st = s.stub->ListEvents(ctx.get(), req, &resp);
      if (!st.ok()) return st;
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
