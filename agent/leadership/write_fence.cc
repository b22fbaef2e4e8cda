// WriteFence.
#include "agent/leadership/write_fence.h"

#include "absl/strings/str_cat.h"
#include "agent/leadership/leadership.h"

namespace tether::agent {

absl::Status WriteFence::CheckLeads() const {
  if (epoch_.load() != 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "fenced: this agent does not lead cluster ", cluster_, " (another agent writes)"));
}

absl::Status WriteFence::Check(pqxx::transaction_base& tx) const {
  const int64_t epoch = epoch_.load();
  if (epoch == 0) return CheckLeads();
  std::string schema;
  {
    absl::MutexLock lock(&mu_);
    schema = schema_;
  }
  return Fence(tx, cluster_, epoch, schema);
}

absl::Status CheckFence(const WriteFence* fence, pqxx::transaction_base& tx) {
  return fence == nullptr ? absl::OkStatus() : fence->Check(tx);
}

}  // namespace tether::agent
