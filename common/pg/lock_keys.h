// Every PostgreSQL advisory lock key tether takes, in one place, so no two uses collide.
// Two-key locks use kLockClass as their first key; single-key (bigint) locks are spelled out.
#pragma once

#include <cstdint>

namespace tether::common {

// First key of every two-key advisory lock of ours ("teth").
inline constexpr int32_t kLockClass = 0x74657468;

// Second keys under kLockClass.
// Creating the schema_migrations table, shared by every migration set (transaction-level).
inline constexpr int32_t kMigrationTableLock = 0;
// A migrator run holds (kLockClass, hash of its set and scope) at session level; see
// MigratorLockKey() in migrator.cc. Hashes land anywhere in int32, so the fixed keys above
// stay few and small.

// Single bigint keys.
// The mothership's event log: appenders hold it shared to their commit, a reader exclusively
// for a moment, so that it reads only ids no transaction under way can still add below.
inline constexpr int64_t kEventOrderLock = 0x7465746865766e74;  // "tethevnt"

}  // namespace tether::common
