// TemplateOnboarding: the template's life cycle (build, seal, bring forward, rebuild), clones
// with retry, and the warm pool.
#include "agent/onboarding/template_onboarding.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/backoff.h"
#include "common/random.h"

namespace tether::agent {
namespace {

std::string ShortHash(const std::string& sha) { return sha.substr(0, 12); }

}  // namespace

TemplateOnboarding::TemplateOnboarding(ClusterAdmin* admin, PgDatabases databases,
                                       TemplateOptions options, common::Clock* clock)
    : admin_(admin),
      databases_(std::move(databases)),
      options_(options),
      clock_(clock),
      replay_(admin) {}

absl::StatusOr<BuildMark> TemplateOnboarding::RebuildTemplate(
    const std::vector<common::Migration>& migrations, int64_t target, const StepFn& step) {
  if (auto st = databases_.Drop(kTemplateDatabase); !st.ok()) return st;
  auto fp = ReplayInto(admin_, kTemplateDatabase, migrations, target, step);
  if (!fp.ok()) return fp.status();
  BuildMark mark{target, MigrationsDigest(migrations, target), fp->sha256};
  if (auto st = databases_.Seal(kTemplateDatabase, mark); !st.ok()) return st;
  return mark;
}

absl::StatusOr<BuildMark> TemplateOnboarding::BringTemplateForward(
    const std::vector<common::Migration>& migrations, int64_t target, const StepFn& step) {
  auto info = databases_.Describe(kTemplateDatabase);
  if (!info.ok()) return info.status();
  const std::string digest = MigrationsDigest(migrations, target);
  if (!info->has_value()) {
    step(absl::StrCat("template: building ", kTemplateDatabase, " at version ", target));
    return RebuildTemplate(migrations, target, step);
  }
  const DatabaseInfo& db = **info;
  const bool sealed = db.is_template && !db.allow_connections && db.mark.has_value();
  if (sealed && db.mark->version == target && db.mark->migrations == digest) return *db.mark;
  if (!sealed) {
    step(absl::StrCat("template: ", kTemplateDatabase,
                      " was left half-built (no build mark); rebuilding it at version ", target));
    return RebuildTemplate(migrations, target, step);
  }
  if (db.mark->version > target ||
      db.mark->migrations != MigrationsDigest(migrations, db.mark->version)) {
    step(absl::StrCat("template: ", kTemplateDatabase, " was built from other migrations; "
                      "rebuilding it at version ", target));
    return RebuildTemplate(migrations, target, step);
  }
  step(absl::StrCat("template: bringing ", kTemplateDatabase, " forward from version ",
                    db.mark->version, " to ", target));
  // Unsealed, it carries no mark: a crash from here on leaves it to be rebuilt.
  if (auto st = databases_.Unseal(kTemplateDatabase); !st.ok()) return st;
  auto fp = ReplayInto(admin_, kTemplateDatabase, migrations, target, step);
  if (!fp.ok()) {
    step(absl::StrCat("template: cannot bring it forward (", fp.status().message(),
                      "); rebuilding it"));
    return RebuildTemplate(migrations, target, step);
  }
  BuildMark mark{target, digest, fp->sha256};
  if (auto st = databases_.Seal(kTemplateDatabase, mark); !st.ok()) return st;
  return mark;
}

absl::Status TemplateOnboarding::Prepare(const std::vector<common::Migration>& migrations,
                                         int64_t target_version, const StepFn& step) {
  serving_ = false;
  target_ = target_version;
  {
    absl::MutexLock lock(&mu_);
    pool_.clear();
  }
  if (target_version <= 0) return absl::OkStatus();  // nothing to copy: creating is as fast
  auto reference = ReplayInto(admin_, kReferenceTenant, migrations, target_version, step);
  if (!reference.ok()) {
    return ReplayInstead(name(), absl::StrCat("replay the migrations into ", kReferenceTenant),
                         reference.status(), step);
  }
  reference_ = *std::move(reference);
  auto mark = BringTemplateForward(migrations, target_version, step);
  if (!mark.ok()) {
    return ReplayInstead(name(), absl::StrCat("build ", kTemplateDatabase), mark.status(), step);
  }
  mark_ = *mark;
  if (mark_.fingerprint != reference_.sha256) {
    step(absl::StrCat("template: ", kTemplateDatabase, " (fingerprint ",
                      ShortHash(mark_.fingerprint), ") differs from a replay under another name (",
                      ShortHash(reference_.sha256),
                      "): the migrations depend on the database's name; new tenants of this "
                      "revision replay their migrations"));
    return absl::OkStatus();
  }
  auto info = databases_.Describe(kTemplateDatabase);
  if (!info.ok()) return info.status();
  const int64_t size = info->has_value() ? (*info)->size_bytes : 0;
  strategy_ = size >= options_.file_copy_from_bytes ? CloneStrategy::kFileCopy
                                                    : CloneStrategy::kWalLog;
  if (options_.warm_pool > 0) {
    auto pool = databases_.List(kPoolPrefix);
    if (!pool.ok()) return pool.status();
    absl::MutexLock lock(&mu_);
    for (const auto& db : *pool) {
      if (db.mark.has_value() && *db.mark == mark_) pool_.push_back(db.name);
    }
  }
  serving_ = true;
  return absl::OkStatus();
}

std::string TemplateOnboarding::TakeFromPool() {
  absl::MutexLock lock(&mu_);
  if (pool_.empty()) return "";
  std::string name = std::move(pool_.back());
  pool_.pop_back();
  return name;
}

absl::Status TemplateOnboarding::CloneFromTemplate(const std::string& name, const StepFn& step) {
  common::RealRandom random;
  common::Backoff backoff({absl::Milliseconds(100), absl::Seconds(2), 2.0, 0.5}, &random);
  const absl::Time give_up = clock_->Now() + options_.busy_wait;
  for (;;) {
    absl::Status st = databases_.Clone(name, kTemplateDatabase, strategy_);
    if (!IsSourceBusy(st)) return st;
    const absl::Duration delay = backoff.Next();
    if (clock_->Now() + delay > give_up) return st;
    step(absl::StrFormat("template busy (%s); retrying in %d ms", st.message(),
                         absl::ToInt64Milliseconds(delay)));
    clock_->SleepFor(delay, nullptr);
  }
}

absl::StatusOr<Onboarded> TemplateOnboarding::Onboard(const OnboardRequest& request,
                                                      const StepFn& step) {
  if (!serving_ || request.to_version != target_) return replay_.Onboard(request, step);
  // A claim from the pool: a rename, so nothing is copied while the tenant waits.
  for (std::string pooled = TakeFromPool(); !pooled.empty(); pooled = TakeFromPool()) {
    const absl::Time start = clock_->Now();
    absl::Status st = databases_.Claim(pooled, request.tenant);
    if (st.ok()) {
      step(absl::StrFormat("claimed %s from the warm pool in %.1f ms", pooled,
                           absl::ToDoubleMilliseconds(clock_->Now() - start)));
      return ProveOnboarded(admin_, request.tenant, "warm_pool", reference_);
    }
    if (absl::IsAlreadyExists(st)) return replay_.Onboard(request, step);  // it exists: finish it
    if (!absl::IsNotFound(st)) return st;
  }
  const absl::Time start = clock_->Now();
  absl::Status st = CloneFromTemplate(request.tenant, step);
  // Created before a crash, then never recorded ready: the migrator finishes what it lacks.
  if (absl::IsAlreadyExists(st)) return replay_.Onboard(request, step);
  if (!st.ok()) return st;
  step(absl::StrFormat("cloned from %s (%s) in %.1f ms", kTemplateDatabase,
                       strategy_ == CloneStrategy::kFileCopy ? "FILE_COPY" : "WAL_LOG",
                       absl::ToDoubleMilliseconds(clock_->Now() - start)));
  return ProveOnboarded(admin_, request.tenant, "template", reference_);
}

void TemplateOnboarding::Replenish(const StepFn& step, const absl::Notification* stop) {
  if (!serving_) return;
  auto pool = databases_.List(kPoolPrefix);
  if (!pool.ok()) {
    step(absl::StrCat("warm pool: cannot list it: ", pool.status().message()));
    return;
  }
  std::set<std::string> taken;
  int ready = 0;
  for (const auto& db : *pool) {
    taken.insert(db.name);
    const bool current = db.mark.has_value() && *db.mark == mark_;
    if (current && ready < options_.warm_pool) {
      ++ready;
      continue;
    }
    step(absl::StrCat("warm pool: dropping ", db.name,
                      !db.mark.has_value() ? " (half-built)"
                      : current            ? " (more than warm_pool asks for)"
                                           : " (built from another revision)"));
    if (auto st = databases_.Drop(db.name); !st.ok()) {
      step(absl::StrCat("warm pool: cannot drop ", db.name, ": ", st.message()));
      return;
    }
  }
  for (int n = 1; ready < options_.warm_pool; ++n) {
    if (stop != nullptr && stop->HasBeenNotified()) return;
    const std::string name = absl::StrCat(kPoolPrefix, n);
    if (taken.count(name) != 0) continue;
    const absl::Time start = clock_->Now();
    absl::Status st = CloneFromTemplate(name, step);
    // Marked once whole: a crash between the two leaves it unmarked, to be dropped next time.
    if (st.ok()) st = databases_.SetMark(name, mark_);
    if (!st.ok()) {
      step(absl::StrCat("warm pool: cannot clone ", name, ": ", st.message()));
      return;
    }
    taken.insert(name);
    ++ready;
    {
      absl::MutexLock lock(&mu_);
      pool_.push_back(name);  // claimable at once
    }
    step(absl::StrFormat("warm pool: %s ready (%d of %d) in %.0f ms", name, ready,
                         options_.warm_pool, absl::ToDoubleMilliseconds(clock_->Now() - start)));
  }
}

}  // namespace tether::agent
