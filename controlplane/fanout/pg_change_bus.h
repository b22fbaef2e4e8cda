// PgChangeBus: the ChangeBus of a mothership that shares its database with other replicas. A
// change is delivered to this process's subscribers at once (an InProcessChangeBus inside) and
// to the other replicas as a NOTIFY on channel `tether_changes`, sent by a thread of its own
// that batches them into one transaction. A listener thread LISTENs on a connection of its own
// (TCP keepalives on it) and hands the other replicas' changes to the subscribers here; its own
// come back too and are skipped by their origin. A notification only says "look": what changed
// is read from the database, so a lost one costs a delay, never a fact. When the listener loses
// its connection it reconnects (with backoff) and, having maybe missed changes meanwhile, tells
// the subscribers to look at everything that may have changed: each cluster's latest revision,
// every agent's incarnation, the unfinished and lately finished commands, the event log.
// Thread-safe.
#pragma once

#include <pqxx/pqxx>

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/clock.h"
#include "common/random.h"
#include "controlplane/fanout/change_bus.h"

namespace tether::controlplane {

// A change as a notification's payload ("origin|kind|number|cluster|agent_id"), and back.
std::string EncodeChange(const std::string& origin, const Change& change);
// nullopt for a payload that is not one (another program's, or a newer replica's kind).
std::optional<std::pair<std::string, Change>> DecodeChange(const std::string& payload);

class PgChangeBus final : public ChangeBus {
 public:
  PgChangeBus(std::string url, common::Clock* clock, common::Random* random);
  ~PgChangeBus() override;

  // Starts the sender and the listener; returns once the listener listens (or `stop`).
  void Start();
  // Ends both threads; changes not yet sent are dropped (the database has them).
  void Stop();

  void Publish(const Change& change) override;
  uint64_t Subscribe(Handler handler) override { return local_.Subscribe(std::move(handler)); }
  void Unsubscribe(uint64_t id) override { local_.Unsubscribe(id); }

  // How many times the listener connected (the first time included).
  int connections() const;

  static constexpr const char* kChannel = "tether_changes";
  static constexpr size_t kMaxQueued = 100'000;  // changes waiting to be sent

 private:
  void SendLoop();
  void ListenLoop();
  // After a reconnect: publishes here every change that may have been missed.
  void CatchUp(pqxx::connection& conn);
  // A notification from the listener's connection.
  void Received(const std::string& payload);

  const std::string url_;
  common::Clock* clock_;
  common::Random* random_;
  const std::string origin_;
  InProcessChangeBus local_;
  absl::Notification stop_;
  absl::Notification listening_;
  std::thread sender_;
  std::thread listener_;

  mutable absl::Mutex mu_;
  std::deque<std::string> queue_ ABSL_GUARDED_BY(mu_);
  bool dropped_logged_ ABSL_GUARDED_BY(mu_) = false;
  int connections_ ABSL_GUARDED_BY(mu_) = 0;
  std::atomic<bool> stopping_{false};
};

}  // namespace tether::controlplane
