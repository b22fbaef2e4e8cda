// tetherctl tokens create | list | revoke: bootstrap tokens.
#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

using google::protobuf::util::TimeUtil;

std::string TokenRemaining(const v1::BootstrapToken& t) {
  return t.uses_allowed() == 0 ? "unlimited" : absl::StrCat(t.uses_allowed() - t.uses());
}

void PrintTokens(const v1::ListBootstrapTokensResponse& resp, std::ostream& out) {
  Table table{{"ID", "CLUSTER", "STATE", "USES LEFT", "EXPIRES", "NAMES", "CREATED", "DESCRIPTION"}, {}};
  for (const auto& t : resp.tokens()) {
    table.rows.push_back({t.id(), t.cluster(), EnumName(v1::TokenState_Name(t.state()), "TOKEN_STATE_"),
                          TokenRemaining(t), t.has_expires_at() ? FormatTime(t.expires_at()) : "never",
                          t.names().empty() ? "any" : absl::StrJoin(t.names(), ","),
                          FormatTime(t.created_at()), t.description()});
  }
  PrintTable(table, out);
}

struct TokenArgs {
  std::string cluster, ttl_text = "0s", description, id;
  int uses = 0;
  std::vector<std::string> name_patterns;
};

}  // namespace

void AddTokenCommands(CommandTree& tree) {
  auto args = std::make_shared<TokenArgs>();
  tree.args->push_back(args);
  auto& [cluster, ttl_text, description, id, uses, name_patterns] = *args;
  // tokens
  auto* tokens = tree.app->add_subcommand("tokens", "bootstrap tokens that let agents register");
  tokens->require_subcommand(1);
  auto* tokens_create = tokens->add_subcommand("create", "make a bootstrap token (shown once)");
  tokens_create->add_option("--cluster", cluster, "cluster the agents join")->required();
  tokens_create->add_option("--ttl", ttl_text, "lifetime such as 1h or 30m; 0s: never expires")
      ->capture_default_str();
  tokens_create->add_option("--uses", uses, "how many registrations it allows; 0: unlimited")
      ->capture_default_str();
  tokens_create->add_option("--description", description, "a note for `tokens list`");
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
    *tree.action = [&, ttl](Session& s) {
      v1::CreateBootstrapTokenRequest req;
      req.set_cluster(cluster);
      *req.mutable_ttl() = TimeUtil::SecondsToDuration(absl::ToInt64Seconds(ttl));
      req.set_uses(uses);
      req.set_description(description);
      for (const auto& p : name_patterns) req.add_names(p);
      return CallAndPrint(s, &v1::ControlService::Stub::CreateBootstrapToken, req,
                          [&](const v1::CreateBootstrapTokenResponse& resp) {
                            *s.out << resp.secret() << "\n";
                          });
    };
  });
  auto* tokens_list = tokens->add_subcommand("list", "list bootstrap tokens (never their secrets)");
  tokens_list->callback([&] {
    *tree.action = [&](Session& s) {
      return CallAndPrint(s, &v1::ControlService::Stub::ListBootstrapTokens,
                          v1::ListBootstrapTokensRequest(),
                          [&](const v1::ListBootstrapTokensResponse& resp) {
                            PrintTokens(resp, *s.out);
                          });
    };
  });
  auto* tokens_revoke = tokens->add_subcommand("revoke", "revoke a bootstrap token");
  tokens_revoke->add_option("id", id, "token id, as `tokens list` shows it")->required();
  tokens_revoke->callback([&] {
    *tree.action = [&](Session& s) {
      v1::RevokeBootstrapTokenRequest req;
      req.set_id(id);
      return CallAndPrint(s, &v1::ControlService::Stub::RevokeBootstrapToken, req,
                          [&](const v1::BootstrapToken& resp) {
                            *s.out << "revoked bootstrap token " << resp.id() << "\n";
                          });
    };
  });

}

}  // namespace tether::ctl
