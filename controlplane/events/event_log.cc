// EventLog over the events table.
#include "controlplane/events/event_log.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "common/pg/lock_keys.h"

namespace tether::controlplane {

EventLog::EventLog(common::PgPool* pool, common::Clock* clock, ChangeBus* bus)
    : pool_(pool), clock_(clock), bus_(bus) {
  subscription_ = bus_->Subscribe([this](const Change& change) {
    if (change.kind != Change::Kind::kEvent) return;
    absl::MutexLock lock(&mu_);
    ++appended_;
  });
}

EventLog::~EventLog() { bus_->Unsubscribe(subscription_); }

void EventLog::Append(pqxx::transaction_base& tx, const std::string& cluster,
                      const std::string& agent, const std::string& kind,
                      const std::string& message) {
  tx.exec_params("SELECT pg_advisory_xact_lock($1)", common::kEventOrderLock);
  tx.exec_params("INSERT INTO events (cluster, agent, kind, message) VALUES ($1, $2, $3, $4)",
                 cluster, agent, kind, message);
}

absl::Status EventLog::Append(const std::string& cluster, const std::string& agent,
                              const std::string& kind, const std::string& message) {
  absl::Status st = pool_->Run([&](pqxx::connection& c) {
    pqxx::work tx(c);
    Append(tx, cluster, agent, kind, message);
    tx.commit();
    return absl::OkStatus();
  });
  if (st.ok()) Notify();
  return st;
}

void EventLog::Notify() { bus_->Publish({Change::Kind::kEvent, "", "", 0}); }

absl::StatusOr<std::vector<v1::Event>> EventLog::List(const std::string& cluster,
                                                      int64_t after_id, int limit) {
  return Fetch(cluster, after_id, limit <= 0 ? 100 : limit, /*newest=*/true);
}

absl::StatusOr<std::vector<v1::Event>> EventLog::Fetch(const std::string& cluster,
                                                       int64_t after_id, int limit, bool newest) {
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::Event>> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(
        "SELECT id, (extract(epoch FROM at) * 1000000)::bigint, cluster, agent, kind, message "
        "FROM (SELECT * FROM events WHERE id > $1 AND ($2 = '' OR cluster = $2) "
        "      ORDER BY CASE WHEN $4 THEN -id ELSE id END LIMIT $3) page ORDER BY id",
        after_id, cluster, limit, newest);
    std::vector<v1::Event> out;
    for (const auto& r : rows) {
      v1::Event e;
      e.set_id(r[0].as<int64_t>());
      *e.mutable_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r[1].as<int64_t>());
      e.set_cluster(r[2].as<std::string>());
      e.set_agent(r[3].as<std::string>());
      e.set_kind(r[4].as<std::string>());
      e.set_message(r[5].as<std::string>());
      out.push_back(std::move(e));
    }
    return out;
  });
}

absl::StatusOr<std::vector<v1::Event>> EventLog::WaitForNew(
    const std::string& cluster, int64_t after_id, absl::Duration max_wait,
    const std::function<bool()>& cancelled) {
  const absl::Time deadline = clock_->Now() + max_wait;
  for (;;) {
    uint64_t seen;
    {
      absl::MutexLock lock(&mu_);
      seen = appended_;
    }
    auto events = Fetch(cluster, after_id, 1000, /*newest=*/false);
    if (!events.ok() || !events->empty()) return events;
    if (cancelled() || clock_->Now() >= deadline) return events;
    // Woken by an append here, or after a second to look for other replicas' appends.
    absl::MutexLock lock(&mu_);
    auto changed = [this, seen]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return appended_ != seen; };
    mu_.AwaitWithTimeout(absl::Condition(&changed), absl::Seconds(1));
  }
}

}  // namespace tether::controlplane
