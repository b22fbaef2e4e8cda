// What every tetherctl command shares: the session it runs in (config, stub, output), the
// tree of subcommands it hangs off, and small formatting helpers. Each noun's commands live in
// their own file of tools/ctl/commands/ and register themselves on the tree.
#pragma once

#include <CLI/CLI.hpp>
#include <google/protobuf/timestamp.pb.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/random.h"
#include "tether/v1/control_service.grpc.pb.h"
#include "tools/ctl/config.h"
#include "tools/ctl/output.h"

namespace tether::ctl {

// Everything a command needs: the config, a stub, where to print, and time and randomness
// for retries.
struct Session {
  CtlConfig config;
  std::unique_ptr<v1::ControlService::Stub> stub;
  std::ostream* out;
  std::ostream* err;
  common::Clock* clock;
  common::Random* random;
  bool terminal = false;  // `out` is an interactive terminal, so a display may redraw in place
  int width = 80;         // its columns

  std::unique_ptr<grpc::ClientContext> Context(bool streaming = false) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!config.token.empty()) ctx->AddMetadata("authorization", "Bearer " + config.token);
    if (!streaming) ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }
  bool table() const { return config.output == "table"; }
};

// The command the parse chose, run once the session exists.
using Action = std::function<grpc::Status(Session&)>;

// Where commands attach: the root and the shared verbs (`get X`, `delete X`).
struct CommandTree {
  CLI::App* app;
  CLI::App* get;
  CLI::App* del;
  Action* action;  // a command's callback sets it
  // Each noun's parsed arguments, alive as long as the tree.
  std::vector<std::shared_ptr<void>>* args;
};

void AddTokenCommands(CommandTree& tree);
void AddAgentCommands(CommandTree& tree);
void AddEventCommands(CommandTree& tree);
void AddSpecCommands(CommandTree& tree);
void AddTenantCommands(CommandTree& tree);
void AddCommandCommands(CommandTree& tree);

// How a command that queues one (migrate, apply, ...) goes on once it is queued.
struct FollowFlags {
  bool detach = false;  // print the id and return
  bool plain = false;   // plain lines even on a terminal
  std::string idempotency_key;  // empty: a fresh random one per invocation
};

// Declares --detach, --plain and --idempotency-key on `command`.
void AddFollowFlags(CLI::App* command, FollowFlags* flags);

// A fresh random idempotency key.
std::string NewIdempotencyKey();

// Follows command `id` until it ends, showing its lines (a live display on a terminal, plain
// lines otherwise, only the final status as JSON or YAML with -o), then a one-line summary.
// OK only when it succeeded; ABORTED or CANCELLED with the summary as the message when it
// failed or was cancelled; the call's status when the mothership refused or could not be
// reached. `contacted`: the mothership has just answered (it is worth waiting for it).
// Without `print_final_status`, -o json/yaml prints nothing (the caller printed its response).
grpc::Status FollowCommand(Session& s, const std::string& id, bool plain, bool contacted,
                           bool print_final_status = true);

// Calls `rpc` with `request` and prints its answer: through `for_people` in table mode, as
// JSON or YAML otherwise. Returns the call's status.
template <typename Request, typename Response, typename ForPeople>
grpc::Status CallAndPrint(Session& s,
                          grpc::Status (v1::ControlService::Stub::*rpc)(grpc::ClientContext*,
                                                                        const Request&, Response*),
                          const Request& request, ForPeople for_people) {
  Response response;
  auto ctx = s.Context();
  grpc::Status st = (s.stub.get()->*rpc)(ctx.get(), request, &response);
  if (!st.ok()) return st;
  if (s.table()) {
    for_people(response);
  } else {
    PrintStructured(response, s.config.output, *s.out);
  }
  return st;
}

// "AGENT_STATUS_HEALTHY" with prefix "AGENT_STATUS_" → "healthy".
std::string EnumName(const std::string& full, const std::string& prefix);
// "2026-11-22 10:04:05" (UTC), or "-" for an unset time.
std::string FormatTime(const google::protobuf::Timestamp& t);

}  // namespace tether::ctl
