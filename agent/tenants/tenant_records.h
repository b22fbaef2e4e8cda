// TenantRecords: the agent's own record of its tenants (state, applied version, last error), in
// the `tenants` table of its own database. The executor writes a tenant's record before each
// change and after it, so after a crash the record says what was under way. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

struct TenantRecord {
  std::string name;
  v1::TenantState state = v1::TENANT_STATE_UNSPECIFIED;
  int64_t version = 0;
  std::string error;
  absl::Time updated_at;
  // Rolled back by a command: reconciles leave it at its version until a migrate command.
  bool held = false;
  // How it was onboarded and the fingerprints that proved it (agent/onboarding/); empty in a
  // Put means "keep what the record says", so later writes do not forget them.
  std::string onboarding;
  std::string fingerprint;
  std::string replay_fingerprint;
};

class TenantRecords {
 public:
  virtual ~TenantRecords() = default;
  // Every record, by name. kUnavailable when the database does not answer.
  virtual absl::StatusOr<std::map<std::string, TenantRecord>> List() = 0;
  // Inserts or replaces the record of `record.name`.
  virtual absl::Status Put(const TenantRecord& record) = 0;
  // Forgets a tenant; OK when there is no record.
  virtual absl::Status Remove(const std::string& name) = 0;
};

}  // namespace tether::agent
