// StepLines: collects the progress lines an agent component reports through a StepFn, from
// any thread, for tests to look at.
#pragma once

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "agent/reconcile/cluster_admin.h"

namespace tether::testing {

class StepLines {
 public:
  agent::StepFn Fn() {
    return [this](const std::string& line) {
      absl::MutexLock lock(&mu_);
      lines_.push_back(line);
    };
  }
  // Every line so far, in order.
  std::vector<std::string> Get() const {
    absl::MutexLock lock(&mu_);
    return lines_;
  }
  // Whether some line contains `part`.
  bool Has(const std::string& part) const {
    absl::MutexLock lock(&mu_);
    for (const auto& l : lines_) {
      if (absl::StrContains(l, part)) return true;
    }
    return false;
  }
  // Every line, one per line (for failure messages).
  std::string All() const {
    absl::MutexLock lock(&mu_);
    return absl::StrJoin(lines_, "\n");
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<std::string> lines_;
};

}  // namespace tether::testing
