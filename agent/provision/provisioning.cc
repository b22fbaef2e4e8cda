// ProvisioningLoop states.
#include "agent/provision/provisioning.h"

#include <google/protobuf/util/time_util.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"

#include "absl/strings/str_cat.h"
#include "common/pg/migrator.h"
#include "common/pg/identifiers.h"
#include "common/pg/pool.h"

namespace tether::agent {

std::vector<common::MigrationFile> AgentMigrationFiles();  // embedded at build time

namespace {

const char* StateName(v1::ProvisioningState s) {
  switch (s) {
    case v1::PROVISIONING_STATE_CHECKING: return "checking";
    case v1::PROVISIONING_STATE_PROVISIONING: return "provisioning";
    case v1::PROVISIONING_STATE_MIGRATING: return "migrating";
    case v1::PROVISIONING_STATE_READY: return "ready";
    case v1::PROVISIONING_STATE_FAILED: return "failed";
    default: return "unknown";
  }
}

}  // namespace

ProvisioningLoop::ProvisioningLoop(Provisioner* provisioner, HealthState* health,
                                   common::Clock* clock, common::Random* random,
                                   ProvisioningOptions options)
    : provisioner_(provisioner),
      health_(health),
      clock_(clock),
      options_(std::move(options)),
      backoff_(options_.backoff, random) {
  current_.set_provisioner(provisioner_->name());
}

bool ProvisioningLoop::ready() const {
  absl::MutexLock lock(&mu_);
  return ready_;
}

std::string ProvisioningLoop::database_url() const {
  absl::MutexLock lock(&mu_);
  return url_;
}

std::string ProvisioningLoop::OwnUrl() const {
  return provisioner_->AdminUrl(options_.own_database.empty() ? "postgres" : options_.own_database);
}

void ProvisioningLoop::Enter(v1::ProvisioningState state, const std::string& reason) {
  if (state != current_.state() || reason != current_.reason()) {
    if (state == v1::PROVISIONING_STATE_FAILED) {
      spdlog::warn("provisioning state={} attempt={} reason=\"{}\"", StateName(state),
                   current_.attempt(), reason);
    } else {
      spdlog::info("provisioning state={}{}", StateName(state),
                   reason.empty() ? "" : absl::StrCat(" step=\"", reason, "\""));
    }
  }
  current_.set_state(state);
  current_.set_reason(reason);
  health_->Set(current_);
  absl::MutexLock lock(&mu_);
  ready_ = state == v1::PROVISIONING_STATE_READY;
  url_ = ready_ ? OwnUrl() : "";
  if (ready_) ++readies_;
  if (state == v1::PROVISIONING_STATE_FAILED) {
    ++failures_;
    last_failure_ = reason;
  }
}

absl::Status ProvisioningLoop::Reprovision(const absl::Notification* stop) {
  absl::MutexLock lock(&mu_);
  const uint64_t readies = readies_;
  const uint64_t failures = failures_;
  reprovision_requested_ = true;
  auto done = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return readies_ > readies || failures_ > failures;
  };
  while (!done()) {
    if (stop != nullptr && stop->HasBeenNotified()) {
      return absl::CancelledError("stopped before PostgreSQL was ready again");
    }
    // Looks at `stop` now and then: a notification cannot wake this mutex.
    mu_.AwaitWithTimeout(absl::Condition(&done), absl::Milliseconds(200));
  }
  if (failures_ > failures) return absl::UnavailableError(last_failure_);
  return absl::OkStatus();
}

v1::ProvisioningState ProvisioningLoop::Check() {
  Enter(v1::PROVISIONING_STATE_CHECKING, "");
  const std::string admin = provisioner_->AdminUrl(options_.own_database.empty() ? "" : "postgres");
  auto ping = admin.empty() ? absl::StatusOr<common::PingResult>(
                                  absl::UnavailableError("not provisioned yet"))
                            : common::Ping(admin);
  if (!ping.ok()) {
    if (provisioned_since_check_) {
      provisioned_since_check_ = false;
      current_.set_attempt(current_.attempt() + 1);
      Enter(v1::PROVISIONING_STATE_FAILED,
            absl::StrCat("PostgreSQL does not answer: ", ping.status().message()));
      return v1::PROVISIONING_STATE_FAILED;
    }
    return v1::PROVISIONING_STATE_PROVISIONING;
  }
  provisioned_since_check_ = false;
  current_.set_postgres_version(ping->server_version);
  *current_.mutable_select1_latency() = google::protobuf::util::TimeUtil::MicrosecondsToDuration(
      absl::ToInt64Microseconds(ping->select1_latency));
  if (!options_.own_database.empty()) {
    auto conn = common::Connect(admin);
    if (!conn.ok()) return v1::PROVISIONING_STATE_PROVISIONING;
    try {
      pqxx::nontransaction tx(**conn);
      if (tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", options_.own_database)
              .empty()) {
        tx.exec("CREATE DATABASE " + common::QuoteIdentifier(options_.own_database));
        spdlog::info("created database {}", options_.own_database);
      }
    } catch (const std::exception& e) {
      current_.set_attempt(current_.attempt() + 1);
      Enter(v1::PROVISIONING_STATE_FAILED,
            absl::StrCat("cannot create database ", options_.own_database, ": ",
                         common::StatusFromException(e).message()));
      return v1::PROVISIONING_STATE_FAILED;
    }
  }
  return v1::PROVISIONING_STATE_MIGRATING;
}

v1::ProvisioningState ProvisioningLoop::Provision() {
  Enter(v1::PROVISIONING_STATE_PROVISIONING, "");
  absl::Status st = provisioner_->Provision([this](const std::string& line) {
    spdlog::info("provision: {}", line);
    current_.set_reason(line);
    health_->Set(current_);
  });
  if (!st.ok()) {
    current_.set_attempt(current_.attempt() + 1);
    Enter(v1::PROVISIONING_STATE_FAILED, std::string(st.message()));
    return v1::PROVISIONING_STATE_FAILED;
  }
  provisioned_since_check_ = true;
  return v1::PROVISIONING_STATE_CHECKING;
}

v1::ProvisioningState ProvisioningLoop::Migrate() {
  Enter(v1::PROVISIONING_STATE_MIGRATING, "");
  auto migrations = common::ParseMigrations(AgentMigrationFiles());
  if (!migrations.ok()) {
    Enter(v1::PROVISIONING_STATE_FAILED, std::string(migrations.status().message()));
    return v1::PROVISIONING_STATE_FAILED;
  }
  common::MigratorOptions mopts;
  mopts.set_name = "tether-agent";
  mopts.on_progress = [](const std::string& line) { spdlog::info("migrate: {}", line); };
  common::Migrator migrator(OwnUrl(), *std::move(migrations), mopts, clock_);
  auto report = migrator.Status();
  absl::Status st = report.status();
  // A dirty, changed or unknown migration is an error, not a silent pass.
  if (st.ok()) st = common::CheckMigrationReport(*report);
  if (st.ok() && report->pending > 0) {
    if (options_.migration_policy == MigrationPolicy::kAuto) {
      st = migrator.Up().status();
    } else {
      spdlog::warn("{} own migrations pending; policy is manual, not applying", report->pending);
    }
  }
  if (!st.ok()) {
    current_.set_attempt(current_.attempt() + 1);
    Enter(v1::PROVISIONING_STATE_FAILED, absl::StrCat("migrations: ", st.message()));
    return v1::PROVISIONING_STATE_FAILED;
  }
  current_.set_attempt(0);
  backoff_.Reset();
  Enter(v1::PROVISIONING_STATE_READY, "");
  return v1::PROVISIONING_STATE_READY;
}

void ProvisioningLoop::Run(const absl::Notification* stop) {
  v1::ProvisioningState next = v1::PROVISIONING_STATE_CHECKING;
  while (!stop->HasBeenNotified()) {
    switch (next) {
      case v1::PROVISIONING_STATE_CHECKING:
        next = Check();
        break;
      case v1::PROVISIONING_STATE_PROVISIONING:
        next = Provision();
        break;
      case v1::PROVISIONING_STATE_MIGRATING:
        next = Migrate();
        break;
      case v1::PROVISIONING_STATE_FAILED:
        if (!clock_->SleepFor(backoff_.Next(), stop)) return;
        next = v1::PROVISIONING_STATE_CHECKING;
        break;
      case v1::PROVISIONING_STATE_READY: {
        // Until the next health check, or sooner when a reprovision is asked for.
        const absl::Time check_at = clock_->Now() + options_.check_interval;
        bool reprovision = false;
        for (;;) {
          {
            absl::MutexLock lock(&mu_);
            reprovision = reprovision_requested_;
            reprovision_requested_ = false;
          }
          if (reprovision || clock_->Now() >= check_at) break;
          if (!clock_->SleepUntil(std::min(check_at, clock_->Now() + absl::Milliseconds(200)),
                                  stop)) {
            return;
          }
        }
        if (reprovision) {
          spdlog::info("provisioning again, as asked");
          next = v1::PROVISIONING_STATE_PROVISIONING;
          break;
        }
        auto ping = common::Ping(OwnUrl());
        if (ping.ok()) {
          *current_.mutable_select1_latency() =
              google::protobuf::util::TimeUtil::MicrosecondsToDuration(
                  absl::ToInt64Microseconds(ping->select1_latency));
          health_->Set(current_);
        } else {
          spdlog::warn("health check failed reason=\"{}\"", ping.status().message());
          next = v1::PROVISIONING_STATE_CHECKING;
        }
        break;
      }
      default:
        next = v1::PROVISIONING_STATE_CHECKING;
    }
  }
}

}  // namespace tether::agent
