// tetherctl: parses the command line into one command (tools/ctl/commands/, a file per noun),
// connects to the mothership and runs it.
#include "tools/ctl/ctl.h"

#include <grpcpp/grpcpp.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <iostream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/grpc/target.h"
#include "common/grpc/tls.h"
#include "common/random.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/config.h"

namespace tether::ctl {
namespace {

// A failed call as one line.
std::string Describe(const grpc::Status& status, const CtlConfig& config) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // The mothership answered, but could not reach its own PostgreSQL.
      if (absl::StrContains(status.error_message(), "database unavailable")) {
        return absl::StrCat("the mothership at ", config.server,
                            " is up, but its database is not: ", status.error_message());
      }
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

// Whether `out` is the process's stdout on a terminal that understands cursor movement.
bool IsLiveTerminal(const std::ostream& out) {
  if (&out != &std::cout || isatty(STDOUT_FILENO) == 0) return false;
  const char* term = std::getenv("TERM");
  return term != nullptr && *term != '\0' && std::string(term) != "dumb";
}

int TerminalWidth() {
  winsize size{};
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

}  // namespace

int RunCtl(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  CtlConfig config;
  CLI::App app{"tetherctl: the operator's command line for a tether fleet."};
  app.set_version_flag("--version", std::string(TETHER_VERSION));
  app.require_subcommand(1);
  AddCtlFlags(app, &config);
  Action action;
  auto* get = app.add_subcommand("get", "show agents, specs, tenants and commands");
  get->require_subcommand(1);
  auto* del = app.add_subcommand("delete", "remove agents");
  del->require_subcommand(1);
  std::vector<std::shared_ptr<void>> args;
  CommandTree tree{&app, get, del, &action, &args};
  AddTokenCommands(tree);
  AddAgentCommands(tree);
  AddSpecCommands(tree);
  AddTenantCommands(tree);
  AddEventCommands(tree);
  AddCommandCommands(tree);

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
  auto target = common::ChannelTarget(config.server);
  if (!target.ok()) {
    err << "tetherctl: --server: " << target.status().message() << "\n";
    return 2;
  }
  grpc::ChannelArguments channel_args;
  channel_args.SetMaxReceiveMessageSize(20 << 20);  // a spec with its files (get spec --files)
  if (auto authority = common::ChannelAuthority(config.server); !authority.empty()) {
    channel_args.SetString(GRPC_ARG_DEFAULT_AUTHORITY, authority);
  }
  common::RealRandom random;
  const bool terminal = IsLiveTerminal(out);
  Session session{config,
                  v1::ControlService::NewStub(grpc::CreateCustomChannel(*target, *creds, channel_args)),
                  &out,
                  &err,
                  common::RealClock::Get(),
                  &random,
                  terminal,
                  terminal ? TerminalWidth() : 80};
  grpc::Status st = action(session);
  if (!st.ok()) {
    err << "tetherctl: " << Describe(st, config) << "\n";
    return 1;
  }
  return 0;
}

}  // namespace tether::ctl
