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

#include "tether/v1/control_service.grpc.pb.h"
#include "tools/ctl/config.h"
#include "tools/ctl/output.h"

namespace tether::ctl {

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
