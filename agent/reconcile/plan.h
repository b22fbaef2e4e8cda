// Plan: what the reconciler must do to make the agent's PostgreSQL match a revision of the
// cluster spec, as a pure function of the spec and the observed state (Redpanda's controller
// computes its deltas the same way). No I/O, no clock: the executor carries a plan out, and
// tests check plans over tables of cases. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tether/v1/spec.pb.h"

namespace tether::agent {

// What the agent knows about one tenant: whether its database or schema exists, and its own
// record of it (written before every change, so a crash leaves a record of what was under way).
struct ObservedTenant {
  bool exists = false;
  bool recorded = false;
  v1::TenantState state = v1::TENANT_STATE_UNSPECIFIED;  // as recorded
  int64_t version = 0;                                   // as recorded
  bool held = false;  // rolled back by a command: left at its version, as under policy manual
};

struct ObservedState {
  std::map<std::string, ObservedTenant> tenants;  // by name: every tenant that exists or is recorded
};

enum class ActionKind {
  kOnboard,  // create the tenant (idempotent), then migrate it to `to_version` (0: not at all)
  kMigrate,  // migrate an existing tenant to `to_version`
  kOrphan,   // the tenant left the spec and prune is off: record it as orphaned, touch nothing
  kDrop,     // the tenant left the spec and prune is on: drop it and forget it
  kForget,   // recorded, gone from PostgreSQL and from the spec: forget the record
};

struct Action {
  ActionKind kind;
  std::string tenant;
  int64_t from_version = 0;
  int64_t to_version = 0;
  bool held = false;  // the hold the tenant's record keeps (a migrate command to the latest
                      // clears it; one to a lower version sets it)
  // The tenant's last action failed: hooks that may have been the failing step are tried again
  // (each still runs at most once).
  bool after_failure = false;

  bool operator==(const Action& o) const {
    return kind == o.kind && tenant == o.tenant && from_version == o.from_version &&
           to_version == o.to_version && held == o.held && after_failure == o.after_failure;
  }
};

struct Plan {
  std::vector<Action> actions;  // independent of each other: one per tenant, any order
  // Tenants of the spec behind the target that the plan leaves alone (policy manual, or held).
  std::vector<std::string> pending;
};

// The actions that take `observed` to `spec` at its latest migration (`target_version`).
// Converged input gives an empty plan, so reconciling the same revision twice changes nothing.
// A held tenant is treated as under policy manual: never migrated up by a reconcile.
Plan PlanReconcile(const v1::ClusterSpec& spec, int64_t target_version,
                   const ObservedState& observed);

const char* ActionName(ActionKind kind);

}  // namespace tether::agent
