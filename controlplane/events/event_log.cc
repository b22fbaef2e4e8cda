// EventLog over the events table.
#include "controlplane/events/event_log.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/str_cat.h"
#include "common/pg/lock_keys.h"

namespace tether::controlplane {

EventLog::EventLog(common::PgPool* pool, common::Clock* clock, ChangeBus* bus)
    : pool_(pool), clock_(clock), bus_(bus) {}

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
                                                      int64_t after_id, int limit,
                                                      int64_t before_id) {
  return Fetch(cluster, after_id, before_id, limit <= 0 ? 100 : limit, /*newest=*/true);
}

absl::StatusOr<std::vector<v1::Event>> EventLog::Fetch(const std::string& cluster,
                                                       int64_t after_id, int64_t before_id,
                                                       int limit, bool newest) {
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::Event>> {
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(
        "SELECT id, (extract(epoch FROM at) * 1000000)::bigint, cluster, agent, kind, message "
        "FROM (SELECT * FROM events WHERE id > $1 AND ($2 = '' OR cluster = $2) "
        "        AND ($5 = 0 OR id < $5) "
        "      ORDER BY CASE WHEN $4 THEN -id ELSE id END LIMIT $3) page ORDER BY id",
        after_id, cluster, limit, newest, before_id);
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

absl::StatusOr<std::vector<v1::Event>> EventLog::After(const std::string& cluster,
                                                       int64_t after_id, int limit) {
  return Fetch(cluster, after_id, /*before_id=*/0, limit <= 0 ? 500 : limit, /*newest=*/false);
}

}  // namespace tether::controlplane
