// SpecStore: each cluster's desired state as append-only revisions in spec_revisions, the SQL
// files they carry kept once by content in spec_files. A revision is stored only when the spec
// differs from the latest; its number comes from clusters.last_revision under the cluster's row
// lock, so numbers are never reused nor skipped. A stored revision is published on the
// ChangeBus. The latest revision of each cluster is kept as a ready-to-send DesiredState
// message, so a fan-out to every agent serialises the spec once. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/pg/pool.h"
#include "controlplane/events/event_log.h"
#include "controlplane/fanout/change_bus.h"
#include "tether/v1/agent_service.pb.h"
#include "tether/v1/spec.pb.h"

namespace tether::controlplane {

struct ApplyResult {
  int64_t revision = 0;           // stored, or the latest when nothing changed or a dry run
  int64_t previous_revision = 0;
  std::vector<std::string> changes;
  bool stored = false;
  std::string command_id;  // the apply command of the stored revision
  bool retried = false;    // answered from an earlier call with the same idempotency key
};

class SpecStore {
 public:
  SpecStore(common::PgPool* pool, EventLog* events, ChangeBus* bus, common::Clock* clock);

  // Stores `spec` as the cluster's next revision if it differs from the latest (unless
  // `dry_run`), recording `who` applied it. Writes nothing when it refuses: kInvalidArgument for
  // a spec that breaks a rule (ValidateSpec), kNotFound for a cluster that does not exist,
  // kFailedPrecondition for a change no revision may make (CheckSuccessor).
  // `replace_unapplied`: migrations above the highest version any agent reports a tenant of
  // the cluster at may be edited or removed (a migration that failed everywhere).
  // A stored revision comes with an apply command (CommandStore) that follows its agents.
  // `idempotency_key`: a retry with the key answers what the first call did, without applying
  // again; the key with another request is kAlreadyExists.
  absl::StatusOr<ApplyResult> Apply(const v1::ClusterSpec& spec, const std::string& who,
                                    bool dry_run, bool replace_unapplied = false,
                                    const std::string& idempotency_key = "");

  // A stored revision (0: the latest), its files' contents included when asked.
  // kNotFound for a cluster without revisions or an unknown revision.
  absl::StatusOr<v1::SpecRevision> Get(const std::string& cluster, int64_t revision,
                                       bool with_files);
  // The newest `limit` revisions, newest first, without their specs. kNotFound for an unknown
  // cluster.
  absl::StatusOr<std::vector<v1::SpecRevision>> History(const std::string& cluster, int limit);

  // The cluster's latest revision as a DesiredState message with every file; null when the
  // cluster has none. `at_least` > 0 lets a cached message of that revision or newer answer
  // without asking the database (a fan-out of a revision this replica just stored).
  absl::StatusOr<std::shared_ptr<const v1::MothershipMessage>> LatestDesiredState(
      const std::string& cluster, int64_t at_least = 0);

 private:
  absl::StatusOr<v1::SpecRevision> Read(pqxx::transaction_base& tx, const std::string& cluster,
                                        int64_t revision, bool with_files);

  common::PgPool* pool_;
  EventLog* events_;
  ChangeBus* bus_;
  common::Clock* clock_;
  absl::Mutex mu_;  // also serialises loads of the cache, so a fan-out reads the spec once
  std::map<std::string, std::shared_ptr<const v1::MothershipMessage>> latest_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::controlplane
