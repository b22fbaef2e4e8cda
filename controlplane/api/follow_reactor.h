// FollowReactor: a server stream on gRPC's callback API that sends what a source holds after a
// cursor, then more each time the ChangeBus says there may be more — so a hundred followers
// (`events --follow`, `logs --follow`) hold no thread and poll nothing. Reads run on the
// blocking pool, one at a time per stream; a read starts only once the last one's items are
// written, so a slow reader holds at most one batch. The bus subscription is made before the
// first read: a change that lands while that read runs marks the stream dirty and causes
// another, so nothing falls between the two.
//
// Subclasses keep their cursor and say what to read (Fetch) and which changes matter (Wakes).
// Lifetime: owned by gRPC until OnDone; deleted by whichever comes last of OnDone and the end
// of a pool job (jobs_ counts them). All state is under mu_.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc/status.h"
#include "common/work_pool.h"
#include "controlplane/fanout/change_bus.h"

namespace tether::controlplane {

template <typename Item>
class FollowReactor : public grpc::ServerWriteReactor<Item> {
 public:
  struct Batch {
    std::vector<Item> items;
    bool more = false;  // the source had more than one batch: read again without waiting
    bool end = false;   // after these items the stream ends with OK
  };

 protected:
  FollowReactor(ChangeBus* bus, common::WorkPool* pool) : bus_(bus), pool_(pool) {}
  ~FollowReactor() override = default;

  // Starts the stream: `authorize` runs first on the pool (it reads the database); a non-OK
  // status ends the stream with it. Call once, at the end of the subclass's constructor.
  void Start(std::function<absl::Status()> authorize) {
    subscription_ = bus_->Subscribe([this](const Change& change) {
      if (change.kind == Change::Kind::kShutdown) {
        absl::MutexLock lock(&mu_);
        CloseLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "mothership is shutting down"));
      } else if (Wakes(change)) {
        Pump();
      }
    });
    absl::MutexLock lock(&mu_);
    fetching_ = true;
    ++jobs_;
    pool_->Submit([this, authorize = std::move(authorize)] {
      absl::Status st = authorize();
      bool last;
      {
        absl::MutexLock lock(&mu_);
        fetching_ = false;
        if (!st.ok()) {
          CloseLocked(common::ToGrpcStatus(st));
        } else {
          FetchLocked();
        }
        last = EndJobLocked();
      }
      if (last) delete this;
    });
  }

  // On the pool, never two at once: the items after the subclass's cursor (which it advances).
  virtual absl::StatusOr<Batch> Fetch() = 0;
  // Whether `change` may mean there is more to send. Called on the publisher's thread.
  virtual bool Wakes(const Change& change) = 0;

 private:
  // A change arrived: read again, now or once the read or writes under way are done.
  void Pump() {
    absl::MutexLock lock(&mu_);
    if (closing_) return;
    if (fetching_ || writing_) {
      dirty_ = true;
      return;
    }
    FetchLocked();
  }

  void FetchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closing_) return;
    dirty_ = false;
    fetching_ = true;
    ++jobs_;
    pool_->Submit([this] {
      absl::StatusOr<Batch> batch = Fetch();
      bool last;
      {
        absl::MutexLock lock(&mu_);
        fetching_ = false;
        if (!batch.ok()) {
          CloseLocked(common::ToGrpcStatus(batch.status()));
        } else {
          for (auto& item : batch->items) out_.push_back(std::move(item));
          end_ = end_ || batch->end;
          dirty_ = dirty_ || batch->more;
          NextLocked();
        }
        last = EndJobLocked();
      }
      if (last) delete this;
    });
  }

  // Writes the next item, or — with nothing left to write — ends, or reads again.
  void NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closing_) return;
    if (!out_.empty()) {
      writing_ = true;
      this->StartWrite(&out_.front());
      return;
    }
    if (end_) {
      CloseLocked(grpc::Status::OK);
    } else if (dirty_) {
      FetchLocked();
    }
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!out_.empty()) out_.pop_front();
    if (!ok) {
      CloseLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed"));
      return;
    }
    if (closing_) {
      MaybeFinishLocked();
      return;
    }
    NextLocked();
  }

  void OnCancel() override {
    absl::MutexLock lock(&mu_);
    CloseLocked(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  void OnDone() override {
    // After Unsubscribe returns no bus handler runs, nor will: nothing reaches us but pool jobs.
    bus_->Unsubscribe(subscription_);
    bool last;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      last = jobs_ == 0;
    }
    if (last) delete this;
  }

  void CloseLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (closing_) return;
    closing_ = true;
    final_ = status;
    MaybeFinishLocked();
  }

  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!closing_ || writing_ || finished_) return;
    finished_ = true;
    this->Finish(final_);
  }

  bool EndJobLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    --jobs_;
    return done_ && jobs_ == 0;
  }

  ChangeBus* bus_;
  common::WorkPool* pool_;
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  std::deque<Item> out_ ABSL_GUARDED_BY(mu_);
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool dirty_ ABSL_GUARDED_BY(mu_) = false;
  bool end_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int jobs_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
};

}  // namespace tether::controlplane
