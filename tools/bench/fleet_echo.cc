// fleet_echo: the bare-gRPC floor for tools/bench/fleet. It serves AgentService as thinly as the
// protocol allows — Register answers at once from memory, Connect answers Hello with Welcome and
// reads every other message without doing anything with it — so fleet_load run against it
// measures what holding N streams with heartbeats costs in gRPC and protobuf alone, on this
// machine, in the same run as tether's own figures.
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <mutex>
#include <string>

#include <CLI/CLI.hpp>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "tether/v1/agent_service.grpc.pb.h"

namespace tether::bench {
namespace {

class EchoStream : public grpc::ServerBidiReactor<v1::AgentMessage, v1::MothershipMessage> {
 public:
  EchoStream() { StartRead(&in_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status::OK);
      return;
    }
    if (in_.has_hello()) {
      std::lock_guard<std::mutex> lock(mu_);
      welcome_.mutable_welcome()->set_agent_id(in_.hello().agent_id());
      welcome_.mutable_welcome()->set_incarnation(in_.hello().incarnation());
      if (!writing_) {
        writing_ = true;
        StartWrite(&welcome_);
      }
    }
    StartRead(&in_);
  }
  void OnWriteDone(bool) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
  }
  void OnDone() override { delete this; }

 private:
  v1::AgentMessage in_;
  v1::MothershipMessage welcome_;
  std::mutex mu_;
  bool writing_ = false;
};

class EchoService final : public v1::AgentService::CallbackService {
  grpc::ServerUnaryReactor* Register(grpc::CallbackServerContext* context,
                                     const v1::RegisterRequest* request,
                                     v1::RegisterResponse* response) override {
    response->set_agent_id(absl::StrCat("00000000-0000-4000-8000-", 100000000000 + next_++));
    response->set_credential("echo");
    response->set_incarnation(1);
    response->set_cluster(request->cluster());
    auto* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  grpc::ServerBidiReactor<v1::AgentMessage, v1::MothershipMessage>* Connect(
      grpc::CallbackServerContext*) override {
    return new EchoStream();
  }
  std::atomic<int64_t> next_{0};
};

}  // namespace
}  // namespace tether::bench

int main(int argc, char** argv) {
  // As the mothership and the agent do: Debian's Abseil keeps a deadlock graph for every
  // absl::Mutex (gRPC's too) otherwise, which cost this process a fifth of its CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::string listen = "127.0.0.1:0";
  CLI::App app{"fleet_echo: AgentService at the bare gRPC floor"};
  app.add_option("--listen", listen, "host:port (port 0 picks one)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  tether::bench::EchoService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  auto server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "fleet_echo: cannot listen on " << listen << "\n";
    return 1;
  }
  std::cout << "127.0.0.1:" << port << std::endl;  // where to point fleet_load
  server->Wait();
  return 0;
}
