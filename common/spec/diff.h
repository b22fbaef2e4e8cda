// What changes between two revisions of a cluster's spec, one line per change for people
// (apply, diff and history print them), and which changes are not allowed at all. Pure
// functions; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tether/v1/spec.pb.h"

namespace tether::common {

// The changes from `before` (null: no revision yet) to `after`, e.g. "+ tenant globex",
// "- tenant initech (orphaned: prune is false)", "+ migration 0004_add_index.up.sql",
// "~ migrations.policy: auto -> manual". Empty when nothing changed.
std::vector<std::string> DiffSpecs(const v1::ClusterSpec* before, const v1::ClusterSpec& after);

// kFailedPrecondition when `after` may not follow `before`: a migration file `before` had is
// edited or removed, a new migration is numbered at or below the newest `before` had (each
// named in the error), or the tenancy changes.
// `unapplied_above` > 0 (or = 0 with nothing applied anywhere): migrations numbered above it
// that no tenant has applied may be edited or removed — the way out of a migration that failed
// everywhere. -1: none may.
absl::Status CheckSuccessor(const v1::ClusterSpec& before, const v1::ClusterSpec& after,
                            int64_t unapplied_above = -1);

}  // namespace tether::common
