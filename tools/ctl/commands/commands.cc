// tetherctl migrate | rollback | reprovision | drop-tenant | cancel | logs | get commands |
// get command: durable commands, queued once however often a call is retried, and followed
// live until they end.
#include <google/protobuf/util/json_util.h>

#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/secrets.h"
#include "tools/ctl/commands/command.h"
#include "tools/ctl/follow.h"
#include "tools/ctl/output.h"

namespace tether::ctl {
namespace {

// RunCommand attempts when the mothership cannot be reached or does not answer in time; the
// same idempotency key each time, so at most one command is queued.
constexpr int kRunAttempts = 4;

struct CommandArgs {
  std::string cluster;
  std::string tenant;
  std::string agent;
  std::string id;
  int64_t to_version = 0;
  int steps = 1;
  bool force = false;
  bool follow = false;
  std::string state;
  int limit = 50;
  FollowFlags follow_flags;
};

std::string StateCell(const v1::CommandStatus& c) {
  std::string state = EnumName(v1::CommandState_Name(c.state()), "COMMAND_STATE_");
  if (c.cancel_requested() && !IsFinished(c.state())) absl::StrAppend(&state, " (cancelling)");
  return state;
}

std::string OrDash(const std::string& s) { return s.empty() ? "-" : Printable(s); }

void PrintCommands(const v1::ListCommandsResponse& resp, std::ostream& out) {
  Table table{{"ID", "CLUSTER", "KIND", "SUMMARY", "STATE", "AGENTS", "BY", "CREATED"}, {}};
  for (const auto& c : resp.commands()) {
    table.rows.push_back({Printable(c.id()), OrDash(c.cluster()), OrDash(c.kind()),
                          OrDash(c.summary()), StateCell(c), AgentsCell(c), OrDash(c.created_by()),
                          FormatTime(c.created_at())});
  }
  PrintTable(table, out);
}

void PrintCommand(const v1::CommandStatus& c, std::ostream& out) {
  out << "id: " << Printable(c.id()) << "\ncluster: " << OrDash(c.cluster())
      << "\nkind: " << OrDash(c.kind()) << "\nsummary: " << OrDash(c.summary())
      << "\nstate: " << StateCell(c) << "\nerror: " << OrDash(c.error())
      << "\nby: " << OrDash(c.created_by()) << "\ncreated: " << FormatTime(c.created_at())
      << "\nfinished: " << FormatTime(c.finished_at()) << "\nrevision: " << c.command().revision()
      << "\nlines: " << c.lines() << " (tetherctl logs " << Printable(c.id()) << ")\n\n";
  Table table{{"AGENT", "STATE", "STEPS", "STEP/ERROR", "STARTED", "FINISHED"}, {}};
  for (const auto& t : c.targets()) {
    std::string detail = t.error().empty() ? OrDash(t.step()) : Printable(t.error());
    table.rows.push_back({OrDash(t.agent().empty() ? t.agent_id() : t.agent()),
                          EnumName(v1::CommandState_Name(t.state()), "COMMAND_STATE_"),
                          absl::StrCat(t.steps_done(), "/", t.steps_total()), detail,
                          FormatTime(t.started_at()), FormatTime(t.finished_at())});
  }
  if (table.rows.empty()) {
    out << "no agents yet\n";
  } else {
    PrintTable(table, out);
  }
}

// Queues `request` under an idempotency key (retrying the same call while the mothership is
// unreachable), then follows the command unless detached.
grpc::Status RunAndFollow(Session& s, v1::RunCommandRequest request, const FollowFlags& flags) {
  request.set_idempotency_key(flags.idempotency_key.empty() ? NewIdempotencyKey()
                                                            : flags.idempotency_key);
  v1::CommandStatus queued;
  grpc::Status st = CallWithRetry(
      [&] {
        queued.Clear();
        auto ctx = s.Context();
        return s.stub->RunCommand(ctx.get(), request, &queued);
      },
      kRunAttempts, s.clock, s.random);
  if (!st.ok()) return st;
  if (flags.detach) {
    if (s.table()) {
      *s.out << Printable(queued.id()) << "\n";
    } else {
      PrintStructured(queued, s.config.output, *s.out);
    }
    return st;
  }
  if (s.table() && (!s.terminal || flags.plain)) {
    *s.out << "command " << Printable(queued.id()) << ": " << OrDash(queued.summary())
           << " (again: tetherctl logs " << Printable(queued.id()) << " --follow)\n";
  }
  return FollowCommand(s, queued.id(), flags.plain, /*contacted=*/true);
}

// Prints each line as it comes: plain text, or one compact JSON document per line.
FollowCallbacks LogCallbacks(Session& s) {
  FollowCallbacks callbacks;
  callbacks.on_line = [&s](const v1::CommandLine& line) {
    if (s.table()) {
      *s.out << FormatCommandLine(line) << "\n";
    } else {
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(line, &json);
      *s.out << json << "\n";
    }
    s.out->flush();
  };
  callbacks.on_reconnect = [&s](const grpc::Status& why, absl::Duration delay) {
    *s.err << "tetherctl: " << Printable(why.error_message())
           << absl::StrFormat("; reconnecting in %.1f s\n", absl::ToDoubleSeconds(delay));
  };
  return callbacks;
}

// A finished command's outcome as the exit status: OK only when it succeeded.
grpc::Status Outcome(const v1::CommandStatus& status) {
  switch (status.state()) {
    case v1::COMMAND_STATE_SUCCEEDED:
      return grpc::Status::OK;
    case v1::COMMAND_STATE_CANCELLED:
      return grpc::Status(grpc::StatusCode::CANCELLED, CommandSummary(status));
    default:
      return grpc::Status(grpc::StatusCode::ABORTED, CommandSummary(status));
  }
}

grpc::Status Logs(Session& s, const std::string& id, bool follow) {
  auto watcher = NewGrpcCommandWatcher(s.stub.get(), [&s] { return s.Context(true); });
  CommandFollower follower(watcher.get(), s.clock, s.random);
  FollowOptions options;
  options.follow = follow;
  std::optional<v1::CommandStatus> last;
  grpc::Status st = follower.Run(id, options, LogCallbacks(s), &last);
  if (!st.ok() || !follow) return st;
  if (!last.has_value()) {
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("the mothership sent no status for command ", Printable(id)));
  }
  if (s.table() && last->state() == v1::COMMAND_STATE_SUCCEEDED) {
    *s.out << CommandSummary(*last) << "\n";
  }
  return Outcome(*last);
}

// A CLI11 check with a readable refusal ("--steps: must be a whole number of at least 1").
CLI::Validator AtLeast(int64_t min) {
  return CLI::Validator(
      [min](std::string& value) -> std::string {
        int64_t n = 0;
        if (!absl::SimpleAtoi(value, &n) || n < min) {
          return absl::StrCat("must be a whole number of at least ", min);
        }
        return "";
      },
      absl::StrCat(">=", min));
}

std::string StateNames() { return "queued, running, succeeded, failed, cancelled"; }

constexpr char kFollowHelp[] =
    "Queued once per --idempotency-key (a fresh one each run), however often the call is retried, "
    "then followed until every agent is done: on a terminal a live line per agent (--plain for "
    "plain lines), with -o json or yaml only the final status. Exit status 0 only if it "
    "succeeded, 1 if it failed or was cancelled. --detach prints the id and returns.";

}  // namespace

std::string NewIdempotencyKey() { return common::RandomHex(16); }

void AddFollowFlags(CLI::App* command, FollowFlags* flags) {
  command->add_flag("--detach", flags->detach,
                    "print the command's id (with -o, the whole response) and return; follow it "
                    "later with tetherctl logs ID --follow");
  command->add_flag("--plain", flags->plain,
                    "print progress as plain lines even on a terminal (no live display)");
  command->add_option("--idempotency-key", flags->idempotency_key,
                      "queue at most one command for this key, however often the call is "
                      "repeated (default: a fresh random key per invocation)");
}

grpc::Status FollowCommand(Session& s, const std::string& id, bool plain, bool contacted,
                           bool print_final_status) {
  const bool live = s.table() && s.terminal && !plain;
  LiveView view(s.width);
  auto redraw = [&] { *s.out << view.Frame() << std::flush; };
  FollowCallbacks callbacks;
  if (live) {
    callbacks.on_line = [&](const v1::CommandLine& line) {
      view.AddLine(line);
      redraw();
    };
    callbacks.on_status = [&](const v1::CommandStatus& status) {
      view.SetStatus(status);
      view.SetNote("");
      redraw();
    };
    callbacks.on_reconnect = [&](const grpc::Status& why, absl::Duration) {
      view.SetNote(absl::StrCat("(", why.error_message(), "; reconnecting)"));
      redraw();
    };
  } else {
    callbacks = LogCallbacks(s);
    if (!s.table()) callbacks.on_line = nullptr;  // -o json/yaml: the final status only
  }
  auto watcher = NewGrpcCommandWatcher(s.stub.get(), [&s] { return s.Context(true); });
  CommandFollower follower(watcher.get(), s.clock, s.random);
  FollowOptions options;
  options.contacted = contacted;
  std::optional<v1::CommandStatus> last;
  grpc::Status st = follower.Run(id, options, callbacks, &last);
  if (live) {
    view.SetNote("");
    redraw();
  }
  if (!st.ok()) return st;
  if (!last.has_value()) {
    return grpc::Status(grpc::StatusCode::UNKNOWN,
                        absl::StrCat("the mothership sent no status for command ", Printable(id)));
  }
  if (!s.table()) {
    if (print_final_status) PrintStructured(*last, s.config.output, *s.out);
  } else if (last->state() == v1::COMMAND_STATE_SUCCEEDED) {
    *s.out << CommandSummary(*last) << "\n";
  }
  // A failure's summary is the reason RunCtl prints on stderr.
  return Outcome(*last);
}

void AddCommandCommands(CommandTree& tree) {
  auto args = std::make_shared<CommandArgs>();
  tree.args->push_back(args);

  auto* migrate = tree.app->add_subcommand(
      "migrate", "migrate a cluster's tenants to a version (the latest by default) and follow it");
  migrate->footer(absl::StrCat("Clears the hold a rollback left on a tenant.\n", kFollowHelp));
  migrate->add_option("cluster", args->cluster, "cluster")->required();
  migrate->add_option("--tenant", args->tenant, "only this tenant (default: every tenant)");
  migrate->add_option("--to", args->to_version, "the version to migrate to (default: the latest)")
      ->check(AtLeast(0));
  AddFollowFlags(migrate, &args->follow_flags);
  migrate->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::RunCommandRequest req;
      req.set_cluster(args->cluster);
      auto* m = req.mutable_command()->mutable_migrate();
      m->set_tenant(args->tenant);
      m->set_to_version(args->to_version);
      return RunAndFollow(s, req, args->follow_flags);
    };
  });

  auto* rollback = tree.app->add_subcommand(
      "rollback", "undo a tenant's newest migrations on every agent of a cluster and follow it");
  rollback->footer(absl::StrCat(
      "The tenant is then held at that version (not migrated up again) until the next "
      "migrate.\n",
      kFollowHelp));
  rollback->add_option("cluster", args->cluster, "cluster")->required();
  rollback->add_option("--tenant", args->tenant, "the tenant")->required();
  rollback->add_option("--steps", args->steps, "how many migrations to undo, newest first")
      ->check(AtLeast(1))
      ->capture_default_str();
  AddFollowFlags(rollback, &args->follow_flags);
  rollback->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::RunCommandRequest req;
      req.set_cluster(args->cluster);
      auto* r = req.mutable_command()->mutable_rollback();
      r->set_tenant(args->tenant);
      r->set_steps(args->steps);
      return RunAndFollow(s, req, args->follow_flags);
    };
  });

  auto* reprovision = tree.app->add_subcommand(
      "reprovision", "run an agent's PostgreSQL provisioning again and follow it");
  reprovision->footer(kFollowHelp);
  reprovision->add_option("agent", args->agent, "agent name")->required();
  AddFollowFlags(reprovision, &args->follow_flags);
  reprovision->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::RunCommandRequest req;
      req.set_agent(args->agent);
      req.mutable_command()->mutable_reprovision();
      return RunAndFollow(s, req, args->follow_flags);
    };
  });

  auto* drop = tree.app->add_subcommand(
      "drop-tenant", "drop a tenant that has left the spec on every agent of a cluster");
  drop->footer(absl::StrCat(
      "Drops the tenant's database (or schema); one the spec still lists only with --force, and "
      "the next reconcile creates such a tenant again, empty: remove it from the spec to keep "
      "it gone.\n",
      kFollowHelp));
  drop->add_option("cluster", args->cluster, "cluster")->required();
  drop->add_option("tenant", args->tenant, "tenant")->required();
  drop->add_flag("--force", args->force, "drop it even though the spec still lists it");
  AddFollowFlags(drop, &args->follow_flags);
  drop->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::RunCommandRequest req;
      req.set_cluster(args->cluster);
      auto* d = req.mutable_command()->mutable_drop_tenant();
      d->set_tenant(args->tenant);
      d->set_force(args->force);
      return RunAndFollow(s, req, args->follow_flags);
    };
  });

  auto* cancel = tree.app->add_subcommand(
      "cancel", "ask a command's agents to stop it before their next step");
  cancel->add_option("id", args->id, "command id")->required();
  cancel->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::CancelCommandRequest req;
      req.set_id(args->id);
      return CallAndPrint(s, &v1::ControlService::Stub::CancelCommand, req,
                          [&](const v1::CommandStatus& c) {
                            if (IsFinished(c.state())) {
                              *s.out << "command " << Printable(c.id()) << " had already ended: "
                                     << CommandSummary(c) << "\n";
                            } else {
                              *s.out << "cancel requested for command " << Printable(c.id())
                                     << " (" << OrDash(c.summary())
                                     << "); its agents stop before their next step\n";
                            }
                          });
    };
  });

  auto* logs = tree.app->add_subcommand(
      "logs", "print a command's progress lines, or follow them until it ends");
  logs->footer(
      "Lines are \"HH:MM:SS.mmm AGENT  TEXT\" (UTC); with -o json or yaml, one JSON document "
      "per line.\nWith --follow the exit status is 0 only if the command succeeded.");
  logs->add_option("id", args->id, "command id")->required();
  logs->add_flag("-f,--follow", args->follow, "keep printing lines until the command ends");
  logs->callback([&tree, args] {
    *tree.action = [args](Session& s) { return Logs(s, args->id, args->follow); };
  });

  auto* list = tree.get->add_subcommand(
      "commands", "list commands, newest first: what, state, how many agents are done");
  list->add_option("--cluster", args->cluster, "only this cluster");
  list->add_option("--state", args->state, "only commands in this state (" + StateNames() + ")")
      ->check(CLI::IsMember({"queued", "running", "succeeded", "failed", "cancelled"}));
  list->add_option("--limit", args->limit, "how many")
      ->check(AtLeast(0))
      ->capture_default_str();
  list->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::ListCommandsRequest req;
      req.set_cluster(args->cluster);
      req.set_limit(args->limit);
      if (!args->state.empty()) {
        v1::CommandState state = v1::COMMAND_STATE_UNSPECIFIED;
        (void)v1::CommandState_Parse("COMMAND_STATE_" + absl::AsciiStrToUpper(args->state),
                                     &state);
        req.set_state(state);
      }
      return CallAndPrint(s, &v1::ControlService::Stub::ListCommands, req,
                          [&](const v1::ListCommandsResponse& resp) {
                            PrintCommands(resp, *s.out);
                          });
    };
  });

  auto* one = tree.get->add_subcommand(
      "command", "show one command and, for each of its agents, its state, steps and error");
  one->add_option("id", args->id, "command id")->required();
  one->callback([&tree, args] {
    *tree.action = [args](Session& s) {
      v1::GetCommandRequest req;
      req.set_id(args->id);
      return CallAndPrint(s, &v1::ControlService::Stub::GetCommand, req,
                          [&](const v1::CommandStatus& c) { PrintCommand(c, *s.out); });
    };
  });
}

}  // namespace tether::ctl
