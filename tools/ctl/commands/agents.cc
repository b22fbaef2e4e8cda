// tetherctl get agents | get agent NAME | delete agent NAME.
#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

using google::protobuf::util::TimeUtil;

// "3 converged", "2/3 converging", "2/3 nack 3", or "-" when the cluster has no spec.
std::string RevisionCell(const v1::Agent& a) {
  if (a.desired_revision() == 0) return "-";
  if (a.converged()) return absl::StrCat(a.applied_revision(), " converged");
  if (a.nack_revision() > 0) {
    return absl::StrCat(a.applied_revision(), "/", a.desired_revision(), " nack ", a.nack_revision());
  }
  return absl::StrCat(a.applied_revision(), "/", a.desired_revision(), " converging");
}

// "leader (epoch 3)", "standby", "standalone", or "-" before the agent said.
std::string RoleCell(const v1::Health& h) {
  switch (h.role()) {
    case v1::AGENT_ROLE_LEADER:
      return absl::StrCat("leader (epoch ", h.epoch(), ")");
    case v1::AGENT_ROLE_STANDBY:
      return "standby";
    case v1::AGENT_ROLE_STANDALONE:
      return "standalone";
    default:
      return "-";
  }
}

void PrintAgents(const std::vector<const v1::Agent*>& agents, std::ostream& out) {
  Table table{{"NAME", "CLUSTER", "STATUS", "POSTGRES", "REVISION", "LAST SEEN", "INCARNATION",
               "VERSION", "MODE", "ROLE"},
              {}};
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  for (const auto* a : agents) {
    std::string pg = EnumName(v1::ProvisioningState_Name(a->health().state()), "PROVISIONING_STATE_");
    if (pg == "unspecified") pg = "-";
    if (!a->health().postgres_version().empty()) {
      absl::StrAppend(&pg, " ", Printable(a->health().postgres_version()));
    }
    if (a->health().has_select1_latency()) {
      absl::StrAppend(&pg, absl::StrFormat(
                               " (%.1fms)",
                               TimeUtil::DurationToMicroseconds(a->health().select1_latency()) / 1000.0));
    }
    table.rows.push_back({a->name(), a->cluster(),
                          EnumName(v1::AgentStatus_Name(a->status()), "AGENT_STATUS_"), pg,
                          RevisionCell(*a), Ago(a->last_seen_at().seconds(), now),
                          absl::StrCat(a->incarnation()),
                          Printable(a->version()),
                          EnumName(v1::AgentMode_Name(a->mode()), "AGENT_MODE_"),
                          RoleCell(a->health())});
  }
  PrintTable(table, out);
}

// One agent: its row, then what the row leaves out.
void PrintAgentDetails(const v1::Agent& resp, std::ostream& out) {
  PrintAgents({&resp}, out);
  out << "\nid: " << resp.id() << "\nregistered: " << FormatTime(resp.registered_at())
      << "\nprovisioner: "
      << (resp.health().provisioner().empty() ? "-" : Printable(resp.health().provisioner()))
      << "\nreason: " << (resp.health().reason().empty() ? "-" : Printable(resp.health().reason()))
      << "\nrevision: " << resp.applied_revision() << " of " << resp.desired_revision()
      << (resp.converged() ? ", converged " + FormatTime(resp.converged_at()) : "")
      << "\nlast nack: "
      << (resp.nack_revision() == 0
              ? std::string("-")
              : absl::StrCat("revision ", resp.nack_revision(), " at ",
                             FormatTime(resp.nack_at()), ": ", Printable(resp.nack_error())))
      << "\n";
}

struct AgentArgs {
  std::string cluster, name, status;
  int limit = 0;
};

v1::AgentStatus StatusNamed(const std::string& word) {
  if (word == "registered") return v1::AGENT_STATUS_REGISTERED;
  if (word == "healthy") return v1::AGENT_STATUS_HEALTHY;
  if (word == "lost") return v1::AGENT_STATUS_LOST;
  if (word == "unknown") return v1::AGENT_STATUS_UNKNOWN;
  return v1::AGENT_STATUS_UNSPECIFIED;
}

}  // namespace

void AddAgentCommands(CommandTree& tree) {
  auto args = std::make_shared<AgentArgs>();
  tree.args->push_back(args);
  auto& [cluster, name, status, limit] = *args;
  // get
  auto* get_agents = tree.get->add_subcommand(
      "agents", "list agents with status, last seen, incarnation (every page, unless --limit)");
  get_agents->add_option("--cluster", cluster, "only this cluster");
  get_agents->add_option("--status", status, "only agents in this status")
      ->check(CLI::IsMember({"registered", "healthy", "lost", "unknown"}));
  get_agents->add_option("--limit", limit, "at most this many agents (0: all)")
      ->check(CLI::Range(0, 1'000'000));
  get_agents->callback([&] {
    *tree.action = [&](Session& s) {
      // Page by page; printed as one list.
      v1::ListAgentsResponse all;
      v1::ListAgentsRequest req;
      req.set_cluster(cluster);
      req.set_status(StatusNamed(status));
      constexpr int kPage = 500;  // the most a page holds: fewer round trips for a large fleet
      do {
        const int left = limit - all.agents_size();
        req.set_page_size(limit > 0 ? std::min(kPage, left) : kPage);
        v1::ListAgentsResponse page;
        auto ctx = s.Context();
        grpc::Status st = s.stub->ListAgents(ctx.get(), req, &page);
        if (!st.ok()) return st;
        for (auto& a : *page.mutable_agents()) *all.add_agents() = std::move(a);
        req.set_page_token(page.next_page_token());
      } while (!req.page_token().empty() && (limit == 0 || all.agents_size() < limit));
      if (s.table()) {
        std::vector<const v1::Agent*> agents;
        for (const auto& a : all.agents()) agents.push_back(&a);
        PrintAgents(agents, *s.out);
      } else {
        PrintStructured(all, s.config.output, *s.out);
      }
      return grpc::Status::OK;
    };
  });
  auto* get_agent = tree.get->add_subcommand("agent", "show one agent");
  get_agent->add_option("name", name, "agent name")->required();
  get_agent->callback([&] {
    *tree.action = [&](Session& s) {
      v1::GetAgentRequest req;
      req.set_name(name);
      return CallAndPrint(s, &v1::ControlService::Stub::GetAgent, req,
                          [&](const v1::Agent& resp) { PrintAgentDetails(resp, *s.out); });
    };
  });

  // delete
  auto* del_agent = tree.del->add_subcommand(
      "agent", "forget an agent; if it still runs with a valid bootstrap token it registers again");
  del_agent->add_option("name", name, "agent name")->required();
  del_agent->callback([&] {
    *tree.action = [&](Session& s) {
      v1::DeleteAgentRequest req;
      req.set_name(name);
      return CallAndPrint(s, &v1::ControlService::Stub::DeleteAgent, req,
                          [&](const v1::DeleteAgentResponse& resp) {
                            *s.out << "deleted agent " << resp.agent().name() << " ("
                                   << resp.agent().id() << ")\n";
                          });
    };
  });

}

}  // namespace tether::ctl
