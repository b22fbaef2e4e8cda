// EventLog over the events table.
#include "controlplane/events/event_log.h"

#include <google/protobuf/util/time_util.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/pg/identifiers.h"
#include "common/pg/lock_keys.h"

namespace tether::controlplane {

namespace {

thread_local const Actor* current_actor = nullptr;

}  // namespace

ScopedActor::ScopedActor(Actor actor) : actor_(std::move(actor)), previous_(current_actor) {
  current_actor = &actor_;
}

ScopedActor::~ScopedActor() { current_actor = previous_; }

const Actor& CurrentActor() {
  static const Actor kNobody;
  return current_actor != nullptr ? *current_actor : kNobody;
}

EventLog::EventLog(common::PgPool* pool, common::Clock* clock, ChangeBus* bus)
    : pool_(pool), clock_(clock), bus_(bus) {}

void EventLog::Append(pqxx::transaction_base& tx, const std::string& cluster,
                      const std::string& agent, const std::string& kind,
                      const std::string& message) {
  const Actor& actor = CurrentActor();
  // The lock is taken before the id is drawn: the function in FROM runs before the row is made.
  tx.exec_params(
      "INSERT INTO events (cluster, agent, kind, message, actor, peer) "
      "SELECT $1, $2, $3, $4, $5, $6 FROM pg_advisory_xact_lock_shared($7)",
      cluster, agent, kind, message, actor.who, actor.peer, common::kEventOrderLock);
}

void PendingEvents::Add(std::string cluster, std::string agent, std::string kind,
                        std::string message) {
  events_.push_back({std::move(cluster), std::move(agent), std::move(kind), std::move(message)});
}

bool PendingEvents::AppendTo(pqxx::transaction_base& tx) {
  for (const Pending& e : events_) EventLog::Append(tx, e.cluster, e.agent, e.kind, e.message);
  const bool any = !events_.empty();
  events_.clear();
  return any;
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

int64_t EventLog::SettledId(pqxx::connection& c) {
  // Taking the lock exclusively waits for every appender holding it shared (each has drawn its
  // id or is about to) to commit or roll back, and keeps new ones from drawing meanwhile; the
  // sequence then says up to where every id is settled. The lock is held for these statements
  // only, so appenders wait at most for the ones already under way.
  pqxx::work tx(c);
  auto last = tx.exec(absl::StrCat(
      "SELECT pg_advisory_xact_lock(", common::kEventOrderLock, "); "
      "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_id_seq"));
  tx.commit();
  return last[0][0].as<int64_t>();
}

void EventLog::Notify() { bus_->Publish({Change::Kind::kEvent, "", "", 0}); }

absl::StatusOr<std::vector<v1::Event>> EventLog::List(const EventFilter& filter,
                                                      int64_t after_id, int limit,
                                                      int64_t before_id) {
  return Fetch(filter, after_id, before_id, limit <= 0 ? 100 : limit, /*newest=*/true);
}

absl::StatusOr<std::vector<v1::Event>> EventLog::Fetch(const EventFilter& filter,
                                                       int64_t after_id, int64_t before_id,
                                                       int limit, bool newest) {
  // A cluster filter is a cluster's name: anything else could only match nothing.
  if (!filter.cluster.empty()) {
    if (auto st = common::ValidateIdentifier("cluster", filter.cluster); !st.ok()) return st;
  }
  // A kind ending in '*' is a prefix; LIKE's own wildcards in it are taken literally.
  std::string kind_like;
  if (!filter.kind.empty()) {
    absl::string_view kind = filter.kind;
    const bool prefix = absl::ConsumeSuffix(&kind, "*");
    for (char ch : kind) {
      if (ch == '%' || ch == '_' || ch == '\\') kind_like.push_back('\\');
      kind_like.push_back(ch);
    }
    if (prefix) kind_like.push_back('%');
  }
  return pool_->Run([&](pqxx::connection& c) -> absl::StatusOr<std::vector<v1::Event>> {
    const int64_t settled = SettledId(c);
    pqxx::read_transaction tx(c);
    auto rows = tx.exec_params(
        "SELECT id, (extract(epoch FROM at) * 1000000)::bigint, cluster, agent, kind, message, "
        "       actor, peer "
        "FROM (SELECT * FROM events WHERE id > $1 AND ($2 = '' OR cluster = $2) "
        "        AND id <= $8 AND ($5 = 0 OR id < $5) AND ($6 = '' OR kind LIKE $6) "
        "        AND ($7 = '' OR actor = $7 OR split_part(actor, ':', 2) = $7) "
        "      ORDER BY CASE WHEN $4 THEN -id ELSE id END LIMIT $3) page ORDER BY id",
        after_id, filter.cluster, limit, newest, before_id, kind_like, filter.actor, settled);
    std::vector<v1::Event> out;
    for (const auto& r : rows) {
      v1::Event e;
      e.set_id(r[0].as<int64_t>());
      *e.mutable_at() = google::protobuf::util::TimeUtil::MicrosecondsToTimestamp(r[1].as<int64_t>());
      e.set_cluster(r[2].as<std::string>());
      e.set_agent(r[3].as<std::string>());
      e.set_kind(r[4].as<std::string>());
      e.set_message(r[5].as<std::string>());
      e.set_actor(r[6].as<std::string>());
      e.set_peer(r[7].as<std::string>());
      out.push_back(std::move(e));
    }
    return out;
  });
}

absl::StatusOr<std::vector<v1::Event>> EventLog::After(const EventFilter& filter,
                                                       int64_t after_id, int limit) {
  return Fetch(filter, after_id, /*before_id=*/0, limit <= 0 ? 500 : limit, /*newest=*/false);
}

}  // namespace tether::controlplane
