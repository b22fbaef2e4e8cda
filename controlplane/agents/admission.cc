// Admission.
#include "controlplane/agents/admission.h"

#include <algorithm>

namespace tether::controlplane {

Admission::Admission(double rate, int burst, common::Clock* clock)
    : rate_(rate),
      interval_(rate > 0 ? absl::Seconds(1) / rate : absl::ZeroDuration()),
      slack_(interval_ * std::max(burst - 1, 0)),
      clock_(clock) {}

std::optional<absl::Duration> Admission::Admit() {
  if (rate_ <= 0) return std::nullopt;
  const absl::Time now = clock_->Now();
  absl::MutexLock lock(&mu_);
  const absl::Time due = std::max(due_, now);
  if (due - now <= slack_) {
    due_ = due + interval_;
    return std::nullopt;
  }
  // The earliest this caller could be admitted, or the slot after the last one promised.
  promised_ = std::max(promised_ + interval_, due - slack_);
  return promised_ - now;
}

}  // namespace tether::controlplane
