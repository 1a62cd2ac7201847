// goro::Cond: Go's sync.Cond, a condition variable bound to a goro::Mutex.
//
// Design. Waiters queue FIFO in `waiting_` under `lock_`. wait() enqueues
// itself *before* it releases the mutex, so a signal() sent between the
// unlock and the park finds the waiter and is not lost (its claim makes the
// later park() return at once). signal() wakes the longest waiter,
// broadcast() all current waiters; waiters that arrive later are not woken.
//
// wait() always returns, or throws, with the mutex held again, as
// std::condition_variable does: callers hold it through a std::unique_lock
// or lock_guard whose destructor will unlock it. That holds even while the
// runtime unwinds the fiber (see Mutex::lock_during_unwind).
//
// Lock order: Cond's lock_ is a leaf; it is never taken with the Mutex's
// internal lock held, and neither is held across park().
#pragma once

#include <concepts>
#include <mutex>
#include <stdexcept>

#include "detail/parker.hpp"
#include "detail/spin_lock.hpp"
#include "detail/unwind.hpp"
#include "detail/wait_list.hpp"
#include "mutex.hpp"

namespace goro {

// Cond lets fibers wait for a condition guarded by a Mutex:
//
//   std::unique_lock lk(mu);
//   while (!ready) cond.wait();      // or: cond.wait([&] { return ready; });
//
// Thread-safety: every member is safe from any fiber or thread; wait()
// requires the caller to hold the mutex. signal() and broadcast() may be
// called with or without it held. Misuse (wait() without the mutex locked)
// throws std::logic_error.
//
// Lifetime: as with std::condition_variable, a Cond may be destroyed once
// every waiter has been woken by signal() or broadcast(), even before those
// waiters have re-locked the mutex and returned from wait(): a woken wait()
// touches nothing of the Cond. The Mutex must outlive the waiters' re-lock.
// Destroying a Cond that still has waiters not woken so (including waiters
// the runtime unwinds when it stops) is undefined, and so is calling wait()
// again on it: wait(pred) does when pred is still false.
class Cond {
 public:
  explicit Cond(Mutex& mutex) noexcept : mutex_(mutex) {}
  Cond(const Cond&) = delete;
  Cond& operator=(const Cond&) = delete;

  // wait() atomically unlocks the mutex and parks until signal() or
  // broadcast() wakes it, then locks the mutex again before returning. As
  // in Go, a woken waiter must re-check its condition: another fiber may
  // have changed it before the mutex was re-acquired. Once woken it uses
  // only the mutex, not the Cond (see Lifetime above).
  void wait();
  // wait(pred) is `while (!pred()) wait();`.
  template <class Predicate>
    requires std::predicate<Predicate&>
  void wait(Predicate pred) {
    while (!pred()) wait();
  }
  // There is no wait(lock): unlike std::condition_variable, a Cond is bound
  // to its Mutex, as Go's is to c.L. This overload only turns that mistake
  // into one message.
  template <class Lock>
    requires(!std::predicate<Lock&>)
  void wait(Lock&) {
    static_assert(std::predicate<Lock&>,
                  "goro::Cond::wait takes no lock: a Cond is bound to the Mutex it was made with (Go's c.L); "
                  "hold that mutex and call cond.wait() or cond.wait(pred)");
  }
  // signal() wakes the longest-waiting waiter, if any.
  void signal() noexcept;
  // broadcast() wakes every waiter.
  void broadcast() noexcept;

  // mutex() is the Mutex this Cond was made with (Go's c.L).
  Mutex& mutex() const noexcept { return mutex_; }

 private:
  Mutex& mutex_;
  detail::SpinLock lock_;
  detail::WaitList waiting_;  // guarded by lock_
};

// ---------------------------------------------------------------------------

inline void Cond::wait() {
  // Once signal() or broadcast() has woken us, the Cond may already be
  // destroyed (see the class comment), so what is needed after park() is
  // copied out of it first.
  Mutex& mutex = mutex_;
  if (!mutex.locked()) throw std::logic_error("goro::Cond: wait() called without holding its mutex");
  detail::Parker& self = detail::Parker::current();
  detail::WaitList::Node node;
  {
    std::lock_guard guard(lock_);
    node.ticket = self.prepare("sync.Cond.Wait");
    waiting_.push(&node);
  }
  try {
    mutex.unlock();
  } catch (...) {  // the mutex was unlocked under us: undo the wait
    {
      std::lock_guard guard(lock_);
      waiting_.remove(&node);
    }
    self.close_own(node.ticket);
    throw;
  }
  const detail::WakeReason reason = self.park();
  if (reason == detail::WakeReason::unwind) {
    // The runtime is stopping: its unwinder, not signal() or broadcast(),
    // won our wait's one claim, so no notifier woke us and the destroy rule
    // (class comment) still keeps the Cond alive: we may take its lock to
    // leave the queue. (A notifier racing the stop may have popped our node
    // and lost the claim; the rule leaves waiters the runtime unwinds out,
    // so the Cond must outlive them too.)
    std::lock_guard guard(lock_);
    waiting_.remove(&node);
  }
  // From here on nothing of *this is touched.
  mutex.lock_during_unwind();
  if (reason == detail::WakeReason::unwind) throw detail::FiberUnwind{};
}

inline void Cond::signal() noexcept {
  detail::note_goro_use();
  detail::WakeList wake;  // declared first: unparks after lock_ is released
  std::lock_guard guard(lock_);
  waiting_.claim_one(wake);
}

inline void Cond::broadcast() noexcept {
  detail::note_goro_use();
  detail::WakeList wake;
  std::lock_guard guard(lock_);
  waiting_.claim_all(wake);
}

}  // namespace goro
