// tether-mothership: parses flags into a MothershipConfig and runs a Mothership until SIGINT
// or SIGTERM.
#include <csignal>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/process.h"
#include "controlplane/mothership.h"

int main(int argc, char** argv) {
  using namespace tether;
#ifdef NDEBUG
  // Debian's Abseil keeps a deadlock graph for every absl::Mutex (gRPC's too) unless told not
  // to; measured under a fleet's load it cost the mothership a fifth of its CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
#endif
  controlplane::MothershipConfig config;
  CLI::App app{
      "tether-mothership: keeps the desired state of every cluster and streams it to the "
      "agents.\nWith no --database-url it runs its own PostgreSQL under --data-dir (lite mode)."};
  app.set_version_flag("--version", std::string(TETHER_VERSION));
  controlplane::AddMothershipFlags(app, &config);
  CLI11_PARSE(app, argc, argv);
  if (auto st = controlplane::FinishMothershipConfig(app, &config); !st.ok()) {
    std::cerr << "tether-mothership: " << st.message() << "\n";
    return 2;
  }
  // --log-format is checked by the flag parser, so only "text" or "json" arrive here.
  common::InitLogging("tether-mothership", common::ParseLogFormat(config.log_format).value_or(common::LogFormat::kText),
                      config.log_level);

  // Signals are taken by a dedicated thread with sigwait, so no handler runs in random threads.
  // A database that does not answer must not hang a connect for ever (libpq's default).
  setenv("PGCONNECT_TIMEOUT", "10", /*overwrite=*/0);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  common::RealProcessRunner runner;
  controlplane::Mothership mothership(config, common::RealClock::Get(), &runner);
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal={} shutting down", sig);
    mothership.RequestStop();
  });
  signal_thread.detach();

  if (absl::Status st = mothership.Start(); !st.ok()) {
    if (absl::IsCancelled(st)) return 0;
    spdlog::error("cannot start: {}", st.message());
    std::cerr << "tether-mothership: " << st.message() << "\n";
    return 1;
  }
  mothership.Wait();
  mothership.Shutdown();
  return 0;
}
