// tetherctl's commands: each builds a request, calls ControlService and prints the answer.
#include "tools/ctl/ctl.h"

#include <google/protobuf/util/time_util.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "common/files.h"
#include "common/grpc_tls.h"
#include "tether/v1/control_service.grpc.pb.h"
#include "tools/ctl/config.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

using google::protobuf::util::TimeUtil;

// Everything a command needs: the config, a stub and where to print.
struct Session {
  CtlConfig config;
  std::unique_ptr<v1::ControlService::Stub> stub;
  std::ostream* out;

  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!config.token.empty()) ctx->AddMetadata("authorization", "Bearer " + config.token);
    if (!streaming) ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }
};

// A failed call as one line.
std::string Describe(const grpc::Status& status, const CtlConfig& config) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      return absl::StrCat("cannot reach the mothership at ", config.server, ": ",
                          status.error_message());
    case grpc::StatusCode::UNAUTHENTICATED:
      return absl::StrCat("not authorised: ", status.error_message());
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StrCat("the mothership at ", config.server, " did not answer in time");
    default:
      return status.error_message();
  }
}

std::string EnumName(const std::string& full, const std::string& prefix) {
  std::string s = full.rfind(prefix, 0) == 0 ? full.substr(prefix.size()) : full;
  for (auto& c : s) c = static_cast<char>(std::tolower(c));
  return s;
}

int64_t Seconds(const google::protobuf::Timestamp& t) { return t.seconds(); }

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

std::string TokenRemaining(const v1::BootstrapToken& t) {
  return t.uses_allowed() == 0 ? "unlimited" : absl::StrCat(t.uses_allowed() - t.uses());
}

void PrintAgents(const std::vector<const v1::Agent*>& agents, std::ostream& out) {
  Table table{{"NAME", "CLUSTER", "STATUS", "POSTGRES", "LAST SEEN", "INCARNATION", "VERSION",
               "MODE"},
              {}};
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  for (const auto* a : agents) {
    std::string pg = EnumName(v1::ProvisioningState_Name(a->health().state()), "PROVISIONING_STATE_");
    if (pg == "unspecified") pg = "-";
    if (!a->health().postgres_version().empty()) {
      absl::StrAppend(&pg, " ", a->health().postgres_version());
    }
    if (a->health().has_select1_latency()) {
      absl::StrAppend(&pg, absl::StrFormat(
                               " (%.1fms)",
                               TimeUtil::DurationToMicroseconds(a->health().select1_latency()) / 1000.0));
    }
    table.rows.push_back({a->name(), a->cluster(),
                          EnumName(v1::AgentStatus_Name(a->status()), "AGENT_STATUS_"), pg,
                          Ago(Seconds(a->last_seen_at()), now), absl::StrCat(a->incarnation()),
                          a->version(), EnumName(v1::AgentMode_Name(a->mode()), "AGENT_MODE_")});
  }
  PrintTable(table, out);
}

void PrintEvents(const google::protobuf::RepeatedPtrField<v1::Event>& events, std::ostream& out,
                 bool header) {
  Table table{{"ID", "TIME", "CLUSTER", "AGENT", "KIND", "MESSAGE"}, {}};
  for (const auto& e : events) {
    table.rows.push_back({absl::StrCat(e.id()), FormatTime(e.at()), e.cluster().empty() ? "-" : e.cluster(),
                          e.agent().empty() ? "-" : e.agent(), e.kind(), e.message()});
  }
  if (header) {
    PrintTable(table, out);
  } else {
    for (const auto& row : table.rows) {
      out << absl::StrJoin(row, "  ") << "\n";
    }
  }
}

}  // namespace

int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CtlConfig config;
  CLI::App app{"tetherctl: the operator's command line for a tether fleet."};
  app.set_version_flag("--version", std::string(TETHER_VERSION));
  app.require_subcommand(1);
  AddCtlFlags(app, &config);
  std::function<grpc::Status(Session&)> action;

  // tokens
  auto* tokens = app.add_subcommand("tokens", "bootstrap tokens that let agents register");
  tokens->require_subcommand(1);
  std::string cluster, ttl_text = "0s", description, id, name;
  int uses = 0;
  auto* tokens_create = tokens->add_subcommand("create", "make a bootstrap token (shown once)");
  tokens_create->add_option("--cluster", cluster, "cluster the agents join")->required();
  tokens_create->add_option("--ttl", ttl_text, "lifetime such as 1h or 30m; 0s: never expires")
      ->capture_default_str();
  tokens_create->add_option("--uses", uses, "how many registrations it allows; 0: unlimited")
      ->capture_default_str();
  tokens_create->add_option("--description", description, "a note for `tokens list`");
  std::vector<std::string> name_patterns;
  tokens_create
      ->add_option("--names", name_patterns,
                   "only agents whose names match these glob patterns may register ('web-*'); "
                   "repeat or separate with commas")
      ->delimiter(',');
  tokens_create->callback([&] {
    absl::Duration ttl;
    if (!absl::ParseDuration(ttl_text, &ttl)) {
      throw CLI::ValidationError("--ttl", "\"" + ttl_text + "\" is not a duration like 1h or 30m");
    }
    action = [&, ttl](Session& s) {
      v1::CreateBootstrapTokenRequest req;
      req.set_cluster(cluster);
      *req.mutable_ttl() = TimeUtil::SecondsToDuration(absl::ToInt64Seconds(ttl));
      req.set_uses(uses);
      req.set_description(description);
      for (const auto& p : name_patterns) req.add_names(p);
      v1::CreateBootstrapTokenResponse resp;
      auto ctx = s.Context();
      grpc::Status st = s.stub->CreateBootstrapToken(ctx.get(), req, &resp);
      if (!st.ok()) return st;
      if (s.config.output == "table") {
        *s.out << resp.secret() << "\n";
      } else {
        PrintStructured(resp, s.config.output, *s.out);
      }
      return st;
    };
  });
  auto* tokens_list = tokens->add_subcommand("list", "list bootstrap tokens (never their secrets)");
  tokens_list->callback([&] {
    action = [&](Session& s) {
      v1::ListBootstrapTokensResponse resp;
      auto ctx = s.Context();
      grpc::Status st = s.stub->ListBootstrapTokens(ctx.get(), {}, &resp);
      if (!st.ok()) return st;
      if (s.config.output != "table") {
        PrintStructured(resp, s.config.output, *s.out);
        return st;
      }
      Table table{{"ID", "CLUSTER", "STATE", "USES LEFT", "EXPIRES", "NAMES", "CREATED", "DESCRIPTION"}, {}};
      for (const auto& t : resp.tokens()) {
        table.rows.push_back({t.id(), t.cluster(), EnumName(v1::TokenState_Name(t.state()), "TOKEN_STATE_"),
                              TokenRemaining(t), t.has_expires_at() ? FormatTime(t.expires_at()) : "never",
                              t.names().empty() ? "any" : absl::StrJoin(t.names(), ","),
                              FormatTime(t.created_at()), t.description()});
      }
      PrintTable(table, *s.out);
      return st;
    };
  });
  auto* tokens_revoke = tokens->add_subcommand("revoke", "revoke a bootstrap token");
  tokens_revoke->add_option("id", id, "token id, as `tokens list` shows it")->required();
  tokens_revoke->callback([&] {
    action = [&](Session& s) {
      v1::RevokeBootstrapTokenRequest req;
      req.set_id(id);
      v1::BootstrapToken resp;
      auto ctx = s.Context();
      grpc::Status st = s.stub->RevokeBootstrapToken(ctx.get(), req, &resp);
      if (!st.ok()) return st;
      if (s.config.output == "table") {
        *s.out << "revoked bootstrap token " << resp.id() << "\n";
      } else {
        PrintStructured(resp, s.config.output, *s.out);
      }
      return st;
    };
  });

  // get
  auto* get = app.add_subcommand("get", "show agents");
  get->require_subcommand(1);
  auto* get_agents = get->add_subcommand("agents", "list agents with status, last seen, incarnation");
  get_agents->add_option("--cluster", cluster, "only this cluster");
  get_agents->callback([&] {
    action = [&](Session& s) {
      v1::ListAgentsRequest req;
      req.set_cluster(cluster);
      v1::ListAgentsResponse resp;
      auto ctx = s.Context();
      grpc::Status st = s.stub->ListAgents(ctx.get(), req, &resp);
      if (!st.ok()) return st;
      if (s.config.output != "table") {
        PrintStructured(resp, s.config.output, *s.out);
        return st;
      }
      std::vector<const v1::Agent*> agents;
      for (const auto& a : resp.agents()) agents.push_back(&a);
      PrintAgents(agents, *s.out);
      return st;
    };
  });
  auto* get_agent = get->add_subcommand("agent", "show one agent");
  get_agent->add_option("name", name, "agent name")->required();
  get_agent->callback([&] {
    action = [&](Session& s) {
      v1::GetAgentRequest req;
      req.set_name(name);
      v1::Agent resp;
      auto ctx = s.Context();
      grpc::Status st = s.stub->GetAgent(ctx.get(), req, &resp);
      if (!st.ok()) return st;
      if (s.config.output != "table") {
        PrintStructured(resp, s.config.output, *s.out);
        return st;
      }
      PrintAgents({&resp}, *s.out);
      *s.out << "\nid: " << resp.id() << "\nregistered: " << FormatTime(resp.registered_at())
             << "\nprovisioner: " << (resp.health().provisioner().empty() ? "-" : resp.health().provisioner())
             << "\nreason: " << (resp.health().reason().empty() ? "-" : resp.health().reason()) << "\n";
      return st;
    };
  });

  // delete
  auto* del = app.add_subcommand("delete", "remove agents");
  del->require_subcommand(1);
  auto* del_agent = del->add_subcommand(
      "agent", "forget an agent; if it still runs with a valid bootstrap token it registers again");
  del_agent->add_option("name", name, "agent name")->required();
  del_agent->callback([&] {
    action = [&](Session& s) {
      v1::DeleteAgentRequest req;
      req.set_name(name);
      v1::DeleteAgentResponse resp;
      auto ctx = s.Context();
      grpc::Status st = s.stub->DeleteAgent(ctx.get(), req, &resp);
      if (!st.ok()) return st;
      if (s.config.output == "table") {
        *s.out << "deleted agent " << resp.agent().name() << " (" << resp.agent().id() << ")\n";
      } else {
        PrintStructured(resp, s.config.output, *s.out);
      }
      return st;
    };
  });

  // events
  bool follow = false;
  int limit = 50;
  auto* events = app.add_subcommand("events", "show the event log");
  events->add_option("--cluster", cluster, "only this cluster");
  events->add_flag("-f,--follow", follow, "keep printing new events until interrupted");
  events->add_option("--limit", limit, "how many recent events to show first")->capture_default_str();
  events->callback([&] {
    action = [&](Session& s) {
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

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      out << (dynamic_cast<const CLI::CallForHelp*>(&e) || dynamic_cast<const CLI::CallForAllHelp*>(&e)
                  ? app.help()
                  : std::string(TETHER_VERSION) + "\n");
      return 0;
    }
    err << "tetherctl: " << e.what() << "\n";
    return 2;
  }
  if (absl::Status st = FinishCtlConfig(&config); !st.ok()) {
    err << "tetherctl: " << st.message() << "\n";
    return 2;
  }
  if (!action) {
    err << "tetherctl: no command given (see --help)\n";
    return 2;
  }
  auto creds = common::MakeChannelCredentials(config.tls_ca, config.tls_client_cert,
                                              config.tls_client_key);
  if (!creds.ok()) {
    err << "tetherctl: " << creds.status().message() << "\n";
    return 2;
  }
  Session session{config, v1::ControlService::NewStub(grpc::CreateChannel(config.server, *creds)), &out};
  grpc::Status st = action(session);
  if (!st.ok()) {
    err << "tetherctl: " << Describe(st, config) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace tether::ctl
