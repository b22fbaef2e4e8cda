// tetherctl get tenants [--cluster C] | get tenant C T: every tenant on every agent, as the
// agents last reported them; one tenant also shows how it was onboarded and its fingerprint.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

struct TenantArgs {
  std::string cluster;
  std::string tenant;
};

// The fingerprint, short, and whether it is the replay's.
std::string FingerprintCell(const v1::TenantStatus& status) {
  if (status.fingerprint().empty()) return "-";
  const std::string mine = Printable(status.fingerprint().substr(0, 12));
  if (status.fingerprint() == status.replay_fingerprint()) return mine + " (= replay)";
  return absl::StrCat(mine, " (replay ", Printable(status.replay_fingerprint().substr(0, 12)), ")");
}

grpc::Status ListTenants(Session& s, const std::string& cluster, const std::string& tenant) {
  v1::ListTenantsRequest req;
  req.set_cluster(cluster);
  req.set_tenant(tenant);
  v1::ListTenantsResponse resp;
  auto ctx = s.Context();
  grpc::Status st = s.stub->ListTenants(ctx.get(), req, &resp);
  if (!st.ok()) return st;
  if (!tenant.empty() && resp.tenants().empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no agent of cluster \"", cluster, "\" reports a tenant \"",
                                     tenant, "\""));
  }
  if (!s.table()) {
    PrintStructured(resp, s.config.output, *s.out);
    return st;
  }
  // One tenant: also how it was onboarded and the fingerprint that proved it.
  const bool one = !tenant.empty();
  Table table{{"CLUSTER", "AGENT", "TENANT", "STATE", "VERSION", "PENDING", "REVISION", "ERROR"}, {}};
  if (one) table.headers.insert(table.headers.end() - 1, {"ONBOARDED", "FINGERPRINT"});
  for (const auto& t : resp.tenants()) {
    const auto& status = t.status();
    std::vector<std::string> pending;
    for (int64_t v : status.pending_versions()) pending.push_back(absl::StrCat(v));
    table.rows.push_back(
        {t.cluster(), t.agent(), status.name(),
         absl::StrCat(EnumName(v1::TenantState_Name(status.state()), "TENANT_STATE_"),
                      status.held() ? " (held)" : ""),
         absl::StrCat(status.version(), "/", status.target_version()),
         pending.empty() ? "-" : absl::StrJoin(pending, ","), absl::StrCat(t.revision()),
         status.error().empty() ? "-" : Printable(status.error())});
    if (one) {
      table.rows.back().insert(table.rows.back().end() - 1,
                               {status.onboarding().empty() ? "-" : Printable(status.onboarding()),
                                FingerprintCell(status)});
    }
  }
  PrintTable(table, *s.out);
  return st;
}

}  // namespace

void AddTenantCommands(CommandTree& tree) {
  auto args = std::make_shared<TenantArgs>();
  tree.args->push_back(args);
  auto* list = tree.get->add_subcommand("tenants", "list tenants on every agent: state, version, pending migrations");
  list->add_option("--cluster", args->cluster, "only this cluster");
  list->callback([&tree, args] {
    *tree.action = [args](Session& s) { return ListTenants(s, args->cluster, ""); };
  });
  auto* one = tree.get->add_subcommand("tenant", "show one tenant on every agent of its cluster, with how it was onboarded and its schema fingerprint");
  one->add_option("cluster", args->cluster, "cluster")->required();
  one->add_option("tenant", args->tenant, "tenant")->required();
  one->callback([&tree, args] {
    *tree.action = [args](Session& s) { return ListTenants(s, args->cluster, args->tenant); };
  });
}

}  // namespace tether::ctl
