// goro::Once: Go's sync.Once with std::call_once's rule on exceptions.
//
// Design. `done_` is the fast path: once it is set, call() is one acquire
// load. Until then callers serialize on a goro::Mutex, so concurrent callers
// park (a fiber never spins or blocks its worker) while the first one runs f.
// f runs with the mutex held; `done_` is set only if f returns normally, so
// if f throws, the exception reaches that caller, the mutex is released and
// the next caller (waiting or future) runs its own f.
//
// Invariant: `done_` goes false -> true once, after f returned, with release
// order, so whoever sees it set also sees everything f did.
#pragma once

#include <atomic>
#include <functional>
#include <stdexcept>
#include <utility>

#include "detail/parker.hpp"
#include "mutex.hpp"

namespace goro {

// Once runs a function exactly once, however many fibers or threads call it.
//
// Thread-safety: every member is safe from any fiber or thread. Calling
// call() on the same Once from inside its own function would deadlock; it
// throws std::logic_error instead.
class Once {
 public:
  Once() = default;
  Once(const Once&) = delete;
  Once& operator=(const Once&) = delete;

  // call() runs f(args...) if no call has completed yet; otherwise it
  // returns at once. Concurrent callers wait until the running f finishes.
  // If f throws, the exception propagates to its caller and the Once stays
  // not-done: the next caller runs its f (std::call_once's rule).
  template <class F, class... Args>
  void call(F&& f, Args&&... args);

  // done() reports whether a call has completed.
  bool done() const noexcept { return done_.load(std::memory_order_acquire); }

 private:
  template <class F, class... Args>
  void call_slow(F&& f, Args&&... args);

  std::atomic<bool> done_{false};
  // The Parker of the caller running f, to catch a call from inside f.
  std::atomic<const detail::Parker*> running_{nullptr};
  Mutex mutex_;
};

// ---------------------------------------------------------------------------

template <class F, class... Args>
void Once::call(F&& f, Args&&... args) {
  detail::note_goro_use();
  if (done_.load(std::memory_order_acquire)) return;
  call_slow(std::forward<F>(f), std::forward<Args>(args)...);
}

template <class F, class... Args>
void Once::call_slow(F&& f, Args&&... args) {
  const detail::Parker* me = &detail::Parker::current();
  if (running_.load(std::memory_order_relaxed) == me) {
    throw std::logic_error("goro::Once: call() re-entered from inside its own function (would deadlock)");
  }
  mutex_.lock_as("sync.Once.Do");
  struct Release {
    Once* once;
    ~Release() {
      once->running_.store(nullptr, std::memory_order_relaxed);
      once->mutex_.unlock();
    }
  } release{this};
  if (done_.load(std::memory_order_relaxed)) return;
  running_.store(me, std::memory_order_relaxed);
  std::invoke(std::forward<F>(f), std::forward<Args>(args)...);
  done_.store(true, std::memory_order_release);
}

}  // namespace goro
