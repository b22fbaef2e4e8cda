// PgChangeBus: LISTEN/NOTIFY between replicas.
#include "controlplane/fanout/pg_change_bus.h"

#include <spdlog/spdlog.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/backoff.h"
#include "common/logging.h"
#include "common/pg/pool.h"
#include "common/secrets.h"

namespace tether::controlplane {
namespace {

constexpr size_t kMaxPayload = 1024;  // ours are ~100 bytes; PostgreSQL allows 8000
constexpr size_t kBatch = 200;         // changes sent in one transaction

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection& conn, std::function<void(const std::string&)> on)
      : pqxx::notification_receiver(conn, PgChangeBus::kChannel), on_(std::move(on)) {}
  void operator()(const std::string& payload, int) override { on_(payload); }

 private:
  std::function<void(const std::string&)> on_;
};

}  // namespace

std::string EncodeChange(const std::string& origin, const Change& change) {
  return absl::StrCat(origin, "|", static_cast<int>(change.kind), "|", change.number, "|",
                      change.cluster, "|", change.agent_id);
}

std::optional<std::pair<std::string, Change>> DecodeChange(const std::string& payload) {
  if (payload.size() > kMaxPayload) return std::nullopt;
  std::vector<std::string> parts = absl::StrSplit(payload, '|');
  int kind = 0;
  Change change{Change::Kind::kEvent, "", "", 0};
  if (parts.size() != 5 || !absl::SimpleAtoi(parts[1], &kind) ||
      !absl::SimpleAtoi(parts[2], &change.number) ||
      kind < static_cast<int>(Change::Kind::kRevision) ||
      kind > static_cast<int>(Change::Kind::kEvent) ||
      kind == static_cast<int>(Change::Kind::kShutdown)) {
    return std::nullopt;
  }
  change.kind = static_cast<Change::Kind>(kind);
  change.cluster = parts[3];
  change.agent_id = parts[4];
  return std::make_pair(parts[0], change);
}

PgChangeBus::PgChangeBus(std::string url, common::Clock* clock, common::Random* random)
    : url_(std::move(url)),
      clock_(clock),
      random_(random),
      origin_(common::RandomHex(8)) {}

PgChangeBus::~PgChangeBus() { Stop(); }

void PgChangeBus::Start() {
  sender_ = std::thread([this] { SendLoop(); });
  listener_ = std::thread([this] { ListenLoop(); });
  listening_.WaitForNotification();
}

void PgChangeBus::Stop() {
  if (stopping_.exchange(true)) return;
  {
    absl::MutexLock lock(&mu_);
    stop_.Notify();
  }
  if (sender_.joinable()) sender_.join();
  if (listener_.joinable()) listener_.join();
}

int PgChangeBus::connections() const {
  absl::MutexLock lock(&mu_);
  return connections_;
}

void PgChangeBus::Publish(const Change& change) {
  local_.Publish(change);
  if (change.kind == Change::Kind::kShutdown) return;  // this process's alone
  absl::MutexLock lock(&mu_);
  if (queue_.size() >= kMaxQueued) {
    // The database is away: other replicas catch up from it when their listener returns.
    queue_.pop_front();
    if (!dropped_logged_) {
      spdlog::warn("change bus: {} changes wait to be sent; dropping the oldest", kMaxQueued);
      dropped_logged_ = true;
    }
  }
  queue_.push_back(EncodeChange(origin_, change));
}

void PgChangeBus::SendLoop() {
  common::Backoff backoff({absl::Milliseconds(100), absl::Seconds(5)}, random_);
  std::unique_ptr<pqxx::connection> conn;
  for (;;) {
    std::vector<std::string> batch;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return !queue_.empty() || stop_.HasBeenNotified();
      };
      mu_.Await(absl::Condition(&ready));
      if (stop_.HasBeenNotified()) return;
      while (!queue_.empty() && batch.size() < kBatch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      dropped_logged_ = false;
    }
    for (;;) {
      absl::Status st;
      if (conn == nullptr) {
        auto opened = common::Connect(url_);
        if (opened.ok()) {
          conn = *std::move(opened);
        } else {
          st = opened.status();
        }
      }
      if (conn != nullptr) {
        try {
          pqxx::work tx(*conn);
          for (const std::string& payload : batch) {
            tx.exec_params("SELECT pg_notify($1, $2)", kChannel, payload);
          }
          tx.commit();
          backoff.Reset();
          break;
        } catch (const std::exception& e) {
          conn.reset();
          st = absl::UnavailableError(e.what());
        }
      }
      const absl::Duration delay = backoff.Next();
      spdlog::warn("change bus: cannot notify the other replicas retry_in={} reason=\"{}\"",
                   absl::FormatDuration(delay), st.message());
      if (!clock_->SleepFor(delay, &stop_)) return;
    }
  }
}

void PgChangeBus::Received(const std::string& payload) {
  auto decoded = DecodeChange(payload);
  if (!decoded.has_value()) {
    spdlog::warn("change bus: a notification that is not a change ({} bytes); ignored",
                 payload.size());
    return;
  }
  if (decoded->first == origin_) return;  // ours, delivered here already
  local_.Publish(decoded->second);
}

void PgChangeBus::CatchUp(pqxx::connection& conn) {
  std::vector<Change> changes = {{Change::Kind::kEvent, "", "", 0}};
  {
    pqxx::read_transaction tx(conn);
    for (const auto& r : tx.exec("SELECT name, last_revision FROM clusters WHERE last_revision > 0")) {
      changes.push_back({Change::Kind::kRevision, r[0].as<std::string>(), "", r[1].as<int64_t>()});
    }
    for (const auto& r : tx.exec("SELECT id::text, cluster, incarnation FROM agents")) {
      changes.push_back({Change::Kind::kIncarnation, r[1].as<std::string>(),
                         r[0].as<std::string>(), r[2].as<int64_t>()});
    }
    // Commands under way are delivered again (agents answer those they know from their
    // records); followers of those that ended lately look again and end.
    for (const auto& r : tx.exec(
             "SELECT id, cluster, finished_at IS NULL FROM commands "
             "WHERE finished_at IS NULL OR finished_at > now() - interval '10 minutes' "
             "ORDER BY id DESC LIMIT 10000")) {
      const int64_t id = r[0].as<int64_t>();
      const std::string cluster = r[1].as<std::string>();
      if (r[2].as<bool>()) changes.push_back({Change::Kind::kCommand, cluster, "", id});
      changes.push_back({Change::Kind::kCommandProgress, cluster, "", id});
    }
  }
  spdlog::info("change bus: listening again; looking at {} things that may have changed meanwhile",
               changes.size());
  for (const Change& change : changes) local_.Publish(change);
}

void PgChangeBus::ListenLoop() {
  common::Backoff backoff({absl::Milliseconds(100), absl::Seconds(5)}, random_);
  bool first = true;
  while (!stop_.HasBeenNotified()) {
    try {
      // Keepalives: a silent network death ends the listener's connection in seconds.
      pqxx::connection conn(common::WithKeepalives(url_, 5, 2, 3, "tether-mothership-bus"));
      Receiver receiver(conn, [this](const std::string& payload) { Received(payload); });
      {
        absl::MutexLock lock(&mu_);
        ++connections_;
      }
      // Listening before looking: a change committed in between is seen by one or the other.
      if (!first) CatchUp(conn);
      first = false;
      if (!listening_.HasBeenNotified()) listening_.Notify();  // this thread's alone
      backoff.Reset();
      while (!stop_.HasBeenNotified()) conn.await_notification(0, 200'000);
      return;
    } catch (const std::exception& e) {
      const absl::Duration delay = backoff.Next();
      spdlog::warn("change bus: listener lost its connection retry_in={} reason=\"{}\"",
                   absl::FormatDuration(delay), e.what());
      if (!clock_->SleepFor(delay, &stop_)) break;
    }
  }
  if (!listening_.HasBeenNotified()) listening_.Notify();
}

}  // namespace tether::controlplane
