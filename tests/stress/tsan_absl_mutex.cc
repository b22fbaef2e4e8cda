// Lets ThreadSanitizer see absl::Mutex. Debian's Abseil is not compiled with TSan, so a lock is
// atomics and futex calls TSan never observes, and every access guarded by an absl::Mutex
// would be reported as a race. The stress test is linked with --wrap=SYMBOL for each Mutex entry
// point below (tests/CMakeLists.txt), so our instrumented code's calls land here; each tells
// TSan through its mutex annotations what the real function does, then calls it. Abseil's calls
// to itself are not wrapped: what synchronises only through Notification or BlockingCounter
// stays invisible, so the stress test synchronises through neither. Condition functions run
// inside the annotated region, where TSan ignores memory accesses: they read guarded state from
// whichever thread Abseil evaluates them on.
#include <sanitizer/tsan_interface.h>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

// The mangled name of absl::<inline namespace>::SUFFIX, with __real_ or __wrap_ before it.
// TETHER_ABSL_MANGLED_NS ("7debian3" for Debian's Abseil) comes from tests/CMakeLists.txt.
#define TETHER_PASTE4(a, b, c, d) a##b##c##d
#define TETHER_ABSL_SYMBOL(prefix, ns, suffix) TETHER_PASTE4(prefix, _ZN4absl, ns, suffix)
#define TETHER_REAL(suffix) TETHER_ABSL_SYMBOL(__real_, TETHER_ABSL_MANGLED_NS, suffix)
#define TETHER_WRAP(suffix) TETHER_ABSL_SYMBOL(__wrap_, TETHER_ABSL_MANGLED_NS, suffix)

namespace {

using absl::Condition;
using absl::Mutex;

constexpr unsigned kWrite = 0;
constexpr unsigned kRead = __tsan_mutex_read_lock;

// Around a call that takes the lock: TSan ignores what the real function does in between.
void BeforeLock(Mutex* mu, unsigned flags) { __tsan_mutex_pre_lock(mu, flags); }
void AfterLock(Mutex* mu, unsigned flags) { __tsan_mutex_post_lock(mu, flags, 0); }

// A try-lock: taken only if the real call says so.
bool AfterTryLock(Mutex* mu, unsigned flags, bool taken) {
  flags |= __tsan_mutex_try_lock | (taken ? 0 : __tsan_mutex_try_lock_failed);
  __tsan_mutex_post_lock(mu, flags, 0);
  return taken;
}

void BeforeUnlock(Mutex* mu, unsigned flags) { __tsan_mutex_pre_unlock(mu, flags); }
void AfterUnlock(Mutex* mu, unsigned flags) { __tsan_mutex_post_unlock(mu, flags); }

// Await and CondVar::Wait release the lock and take it again before they return: to TSan, an
// unlock before the call and a lock after it, with everything in between ignored.
void BeforeWait(Mutex* mu) {
  BeforeUnlock(mu, kWrite);
  AfterUnlock(mu, kWrite);
  BeforeLock(mu, kWrite);
}
void AfterWait(Mutex* mu) { AfterLock(mu, kWrite); }

}  // namespace

extern "C" {

void TETHER_REAL(5Mutex4LockEv)(Mutex* mu);
void TETHER_WRAP(5Mutex4LockEv)(Mutex* mu) {
  BeforeLock(mu, kWrite);
  TETHER_REAL(5Mutex4LockEv)(mu);
  AfterLock(mu, kWrite);
}

void TETHER_REAL(5Mutex6UnlockEv)(Mutex* mu);
void TETHER_WRAP(5Mutex6UnlockEv)(Mutex* mu) {
  BeforeUnlock(mu, kWrite);
  TETHER_REAL(5Mutex6UnlockEv)(mu);
  AfterUnlock(mu, kWrite);
}

bool TETHER_REAL(5Mutex7TryLockEv)(Mutex* mu);
bool TETHER_WRAP(5Mutex7TryLockEv)(Mutex* mu) {
  BeforeLock(mu, kWrite | __tsan_mutex_try_lock);
  return AfterTryLock(mu, kWrite, TETHER_REAL(5Mutex7TryLockEv)(mu));
}

void TETHER_REAL(5Mutex10ReaderLockEv)(Mutex* mu);
void TETHER_WRAP(5Mutex10ReaderLockEv)(Mutex* mu) {
  BeforeLock(mu, kRead);
  TETHER_REAL(5Mutex10ReaderLockEv)(mu);
  AfterLock(mu, kRead);
}

void TETHER_REAL(5Mutex12ReaderUnlockEv)(Mutex* mu);
void TETHER_WRAP(5Mutex12ReaderUnlockEv)(Mutex* mu) {
  BeforeUnlock(mu, kRead);
  TETHER_REAL(5Mutex12ReaderUnlockEv)(mu);
  AfterUnlock(mu, kRead);
}

bool TETHER_REAL(5Mutex13ReaderTryLockEv)(Mutex* mu);
bool TETHER_WRAP(5Mutex13ReaderTryLockEv)(Mutex* mu) {
  BeforeLock(mu, kRead | __tsan_mutex_try_lock);
  return AfterTryLock(mu, kRead, TETHER_REAL(5Mutex13ReaderTryLockEv)(mu));
}

void TETHER_REAL(5Mutex8LockWhenERKNS0_9ConditionE)(Mutex* mu, const Condition& cond);
void TETHER_WRAP(5Mutex8LockWhenERKNS0_9ConditionE)(Mutex* mu, const Condition& cond) {
  BeforeLock(mu, kWrite);
  TETHER_REAL(5Mutex8LockWhenERKNS0_9ConditionE)(mu, cond);
  AfterLock(mu, kWrite);
}

bool TETHER_REAL(5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE)(
    Mutex* mu, const Condition& cond, absl::Duration timeout);
bool TETHER_WRAP(5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE)(
    Mutex* mu, const Condition& cond, absl::Duration timeout) {
  BeforeLock(mu, kWrite);
  const bool met =
      TETHER_REAL(5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE)(mu, cond, timeout);
  AfterLock(mu, kWrite);  // held whether or not the condition came true
  return met;
}

void TETHER_REAL(5Mutex5AwaitERKNS0_9ConditionE)(Mutex* mu, const Condition& cond);
void TETHER_WRAP(5Mutex5AwaitERKNS0_9ConditionE)(Mutex* mu, const Condition& cond) {
  BeforeWait(mu);
  TETHER_REAL(5Mutex5AwaitERKNS0_9ConditionE)(mu, cond);
  AfterWait(mu);
}

bool TETHER_REAL(5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE)(
    Mutex* mu, const Condition& cond, absl::Duration timeout);
bool TETHER_WRAP(5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE)(
    Mutex* mu, const Condition& cond, absl::Duration timeout) {
  BeforeWait(mu);
  const bool met =
      TETHER_REAL(5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE)(mu, cond, timeout);
  AfterWait(mu);
  return met;
}

bool TETHER_REAL(5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE)(
    Mutex* mu, const Condition& cond, absl::Time deadline);
bool TETHER_WRAP(5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE)(
    Mutex* mu, const Condition& cond, absl::Time deadline) {
  BeforeWait(mu);
  const bool met =
      TETHER_REAL(5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE)(mu, cond, deadline);
  AfterWait(mu);
  return met;
}

}  // extern "C"
