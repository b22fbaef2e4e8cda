// ProvisioningLoop: the agent's state machine for its PostgreSQL,
//   checking → provisioning → checking → migrating → ready, or failed (with a reason) and
//   retried with backoff; from ready, a failed health check goes back to checking.
// Every transition is logged and put into HealthState, which every heartbeat carries.
// An operator's reprovision command makes a healthy loop provision again (Reprovision()).
// Run() drives it on one thread; Reprovision(), ready() and database_url() are safe from any
// thread.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/health_state.h"
#include "agent/provision/migration_policy.h"
#include "agent/provision/provisioner.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/random.h"

namespace tether::agent {

struct ProvisioningOptions {
  absl::Duration check_interval = absl::Seconds(10);
  common::BackoffPolicy backoff{absl::Seconds(1), absl::Seconds(30)};
  MigrationPolicy migration_policy = MigrationPolicy::kAuto;
  // The database that holds the agent's own tables; empty: the provisioner's URL as it is
  // (external mode, where the URL names the database).
  std::string own_database = "tether_agent";
};

class ProvisioningLoop {
 public:
  ProvisioningLoop(Provisioner* provisioner, HealthState* health, common::Clock* clock,
                   common::Random* random, ProvisioningOptions options);

  // Runs until `stop` is notified.
  void Run(const absl::Notification* stop);

  // Makes the next pass provision again even while PostgreSQL is healthy (provisioning is
  // idempotent), then waits until it is ready again. kUnavailable with the reason when a pass
  // failed (the loop keeps retrying on its own), kCancelled when `stop` fired first. Any thread
  // but Run()'s.
  absl::Status Reprovision(const absl::Notification* stop);

  bool ready() const;
  // The agent's own database, once ready.
  std::string database_url() const;

 private:
  // One pass of each state; each returns the next state.
  v1::ProvisioningState Check();
  v1::ProvisioningState Provision();
  v1::ProvisioningState Migrate();
  void Enter(v1::ProvisioningState state, const std::string& reason);
  std::string OwnUrl() const;

  Provisioner* provisioner_;
  HealthState* health_;
  common::Clock* clock_;
  ProvisioningOptions options_;
  common::Backoff backoff_;
  bool provisioned_since_check_ = false;
  v1::Health current_;

  mutable absl::Mutex mu_;
  bool ready_ ABSL_GUARDED_BY(mu_) = false;
  bool reprovision_requested_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t readies_ ABSL_GUARDED_BY(mu_) = 0;   // times READY was entered
  uint64_t failures_ ABSL_GUARDED_BY(mu_) = 0;  // times FAILED was entered
  std::string last_failure_ ABSL_GUARDED_BY(mu_);
  std::string url_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::agent
