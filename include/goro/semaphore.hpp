// goro::Semaphore: a weighted semaphore, Go's golang.org/x/sync/semaphore.
//
// Design. `size_` permits, `held_` of them taken, and a FIFO of waiters, each
// wanting `weight` permits, all under one SpinLock. Grants are strictly
// FIFO: release() serves waiters from the front while the front one fits,
// and stops at the first that does not, so a large request is not starved by
// a stream of small ones (and acquire() queues behind any waiter, even when
// its own request would fit). A granted waiter is counted in `held_` by the
// releaser before it is unparked (`granted` tells it so).
//
// The context-aware acquire puts the same ticket in two places: the
// semaphore's queue and the context's waiter list (detail::CancelNode). The
// first to claim it wins: a grant, or the cancellation; the loser's claim
// fails and it skips the waiter.
//
// Lock order: lock_ -> a context's lock (registering the waiter). A context
// never takes lock_. acquire(n) still holds lock_ when it switches away (its
// park's commit releases it); the context-aware acquire releases both first.
#pragma once

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>

#include "context.hpp"
#include "detail/parker.hpp"
#include "detail/spin_lock.hpp"
#include "detail/unwind.hpp"
#include "detail/wait_list.hpp"

namespace goro {

// Semaphore bounds access to a resource of `n` units. acquire(k) takes k
// units, waiting (parking the fiber) until they are free; release(k) gives
// them back.
//
// Thread-safety: every member is safe from any fiber or thread. Misuse
// throws std::logic_error: releasing more than is held, a negative count,
// or a blocking acquire of more than the semaphore's size (it could never
// succeed).
class Semaphore {
 public:
  // Semaphore(n) has n units, all free. n must not be negative.
  explicit Semaphore(std::int64_t n);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // acquire() takes n units, blocking until they are free and every earlier
  // waiter has been served. Throws std::logic_error if n < 0 or n > size().
  void acquire(std::int64_t n = 1);
  // try_acquire() takes n units only if that needs no waiting (they are free
  // and nobody waits); returns whether it did.
  bool try_acquire(std::int64_t n = 1);
  // acquire(ctx, n) is acquire(n) that gives up when ctx is done: it returns
  // {} once the units are taken, or ctx.err() (taking nothing) if the
  // context was cancelled first. As in Go, n > size() waits for ctx and
  // fails. Throws std::logic_error if n < 0.
  std::error_code acquire(const Context& ctx, std::int64_t n = 1);
  // release() gives back n units and wakes the waiters they satisfy. Throws
  // std::logic_error, changing nothing, if more units would be released than
  // are held.
  void release(std::int64_t n = 1);

  // size() is the number of units the semaphore was made with.
  std::int64_t size() const noexcept { return size_; }
  // available() is the number of free units now (a snapshot).
  std::int64_t available();

 private:
  struct Waiter : detail::WaitList::Node {
    bool granted = false;  // the releaser counted our weight in held_
  };

  static void check_count(std::int64_t n, const char* what);
  // serve_waiters_locked() grants the front waiters while they fit.
  void serve_waiters_locked(detail::WakeList& wake) noexcept;
  // forget_waiter_locked() removes a waiter that gave up; if it was blocking
  // the queue's front, the ones behind it may fit now.
  void forget_waiter_locked(Waiter* w, detail::WakeList& wake) noexcept;

  const std::int64_t size_;
  std::int64_t held_ = 0;  // guarded by lock_
  detail::SpinLock lock_;
  detail::WaitList waiting_;  // of Waiter; guarded by lock_
};

// ---------------------------------------------------------------------------

inline Semaphore::Semaphore(std::int64_t n) : size_(n) {
  if (n < 0) throw std::invalid_argument("goro::Semaphore: negative size " + std::to_string(n));
}

inline void Semaphore::check_count(std::int64_t n, const char* what) {
  if (n < 0) {
    throw std::invalid_argument(std::string("goro::Semaphore: ") + what + " of a negative count (" +
                                std::to_string(n) + ")");
  }
}

inline std::int64_t Semaphore::available() {
  detail::note_goro_use();
  std::lock_guard guard(lock_);
  return size_ - held_;
}

inline bool Semaphore::try_acquire(std::int64_t n) {
  detail::note_goro_use();
  check_count(n, "try_acquire");
  std::lock_guard guard(lock_);
  if (size_ - held_ < n || !waiting_.empty()) return false;
  held_ += n;
  return true;
}

inline void Semaphore::acquire(std::int64_t n) {
  detail::note_goro_use();
  check_count(n, "acquire");
  if (n > size_) {
    throw std::invalid_argument("goro::Semaphore: acquire(" + std::to_string(n) +
                                ") exceeds the semaphore's size (" + std::to_string(size_) +
                                ") and could never succeed");
  }
  detail::Parker* self = nullptr;
  Waiter node;
  {
    std::unique_lock guard(lock_);
    if (size_ - held_ >= n && waiting_.empty()) {
      held_ += n;
      return;
    }
    self = &detail::Parker::current();
    node.weight = n;
    node.ticket = self->prepare("semaphore.Acquire", detail::Publish::after_switch);
    waiting_.push(&node);
    guard.release();  // park's commit unlocks it
  }
  if (self->park(detail::ParkCommit::unlock(lock_)) != detail::WakeReason::unwind) {
    return;  // granted: the releaser counted us
  }
  {
    detail::WakeList wake;
    std::lock_guard guard(lock_);
    forget_waiter_locked(&node, wake);
  }
  throw detail::FiberUnwind{};
}

inline std::error_code Semaphore::acquire(const Context& ctx, std::int64_t n) {
  detail::note_goro_use();
  check_count(n, "acquire");
  if (std::error_code e = ctx.err()) return e;  // Go checks the context first
  detail::CancelNode* canceller = ctx.node()->canceller;
  detail::Parker& self = detail::Parker::current();
  Waiter node;
  detail::WaitList::Node cancel_node;  // our entry in the context's waiter list
  {
    std::lock_guard guard(lock_);
    if (n <= size_ && size_ - held_ >= n && waiting_.empty()) {
      held_ += n;
      return {};
    }
    node.weight = n;
    node.ticket = self.prepare("semaphore.Acquire");
    cancel_node.ticket = node.ticket;
    // A request larger than the semaphore can never be granted: wait for the
    // context only, and do not queue where it would block everyone behind.
    if (n <= size_) waiting_.push(&node);
  }
  if (canceller && !canceller->add_waiter(&cancel_node)) {
    // Cancelled meanwhile: withdraw, unless a grant already claimed us.
    bool granted;
    {
      detail::WakeList wake;
      std::lock_guard guard(lock_);
      forget_waiter_locked(&node, wake);
      granted = node.granted;
    }
    self.close_own(node.ticket);  // consumes a grant's wake-up if there was one
    return granted ? std::error_code{} : ctx.err();
  }
  detail::WakeReason reason = self.park();
  if (canceller) canceller->remove_waiter(&cancel_node);
  bool granted;
  {
    detail::WakeList wake;
    std::lock_guard guard(lock_);
    granted = node.granted;
    if (!granted) forget_waiter_locked(&node, wake);
  }
  if (granted) return {};  // even if the context was cancelled too (Go does the same)
  if (reason == detail::WakeReason::unwind) throw detail::FiberUnwind{};
  return ctx.err();
}

inline void Semaphore::release(std::int64_t n) {
  detail::note_goro_use();
  check_count(n, "release");
  detail::WakeList wake;  // declared first: unparks after lock_ is released
  std::lock_guard guard(lock_);
  if (n > held_) {
    throw std::logic_error("goro::Semaphore: released more than held (release(" + std::to_string(n) +
                           ") with " + std::to_string(held_) + " held)");
  }
  held_ -= n;
  serve_waiters_locked(wake);
}

inline void Semaphore::serve_waiters_locked(detail::WakeList& wake) noexcept {
  while (auto* w = static_cast<Waiter*>(waiting_.front())) {
    if (size_ - held_ < w->weight) return;  // strict FIFO: the front one waits for room
    waiting_.pop_front();
    if (wake.add_if_claimed(w->ticket)) {
      held_ += w->weight;
      w->granted = true;
    }
    // A failed claim: that waiter was cancelled, timed out or unwound and
    // will find itself dequeued.
  }
}

inline void Semaphore::forget_waiter_locked(Waiter* w, detail::WakeList& wake) noexcept {
  bool was_front = waiting_.front() == w;
  if (waiting_.remove(w) && was_front) serve_waiters_locked(wake);
}

}  // namespace goro
