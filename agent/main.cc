// tether-agent: parses flags into an AgentConfig and runs an Agent until SIGINT or SIGTERM,
// or until the mothership refuses it for good.
#include <csignal>
#include <iostream>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/migrate_once.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/process.h"

int main(int argc, char** argv) {
  using namespace tether;
#ifdef NDEBUG
  // Debian's Abseil keeps a deadlock graph for every absl::Mutex (gRPC's too) unless told not
  // to; measured under a fleet's load it cost the mothership a fifth of its CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  agent::AgentConfig config;
  CLI::App app{
      "tether-agent: registers with the mothership, provisions a local PostgreSQL and keeps it "
      "in the state the mothership asks for."};
  app.set_version_flag("--version", std::string(TETHER_VERSION));
  agent::AddAgentFlags(app, &config);
  agent::MigrateOnceOptions migrate;
  CLI::App* migrate_command = agent::AddMigrateOnceCommand(app, &migrate);
  CLI11_PARSE(app, argc, argv);
  if (migrate_command->parsed()) {
    setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);
    common::InitLogging("tether-agent", common::LogFormat::kText, "warn");
    return agent::RunMigrateOnce(migrate, common::RealClock::Get(), std::cout, std::cerr);
  }
  if (auto st = agent::FinishAgentConfig(app, &config); !st.ok()) {
    std::cerr << "tether-agent: " << st.message() << "\n";
    return 2;
  }
  // --log-format is checked by the flag parser, so only "text" or "json" arrive here.
  common::InitLogging("tether-agent", common::ParseLogFormat(config.log_format).value_or(common::LogFormat::kText),
                      config.log_level);

  // A database that does not answer must not hang a connect for ever (libpq's default).
  setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  common::RealProcessRunner runner;
  agent::Agent agent(config, common::RealClock::Get(), &runner);
  if (absl::Status st = agent.Start(); !st.ok()) {
    std::cerr << "tether-agent: " << st.message() << "\n";
    return 1;
  }
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal={} stopping", sig);
    agent.RequestStop();
  });
  signal_thread.detach();
  absl::Status st = agent.Wait();
  agent.Stop();
  if (!st.ok()) {
    spdlog::error("{}", st.message());
    std::cerr << "tether-agent: " << st.message() << "\n";
    return 1;
  }
  return 0;
}
