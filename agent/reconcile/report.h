// ReconcileReport: how the reconcile of one revision ended — what the agent acks or nacks.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "tether/v1/spec.pb.h"

namespace tether::agent {

struct ReconcileReport {
  int64_t revision = 0;
  absl::Status status;  // OK: ack; else nack with its message
  std::vector<v1::TenantStatus> tenants;
  absl::Duration took;
};

}  // namespace tether::agent
