// goro::Mutex: Go's sync.Mutex, a mutual-exclusion lock that parks fibers
// (and blocks plain threads) instead of blocking worker threads. It meets the
// standard Lockable requirements, so std::lock_guard, std::unique_lock and
// std::scoped_lock work with it.
//
// Design (after Go's sync/mutex.go). The whole lock is one state word plus a
// FIFO of parked waiters:
//
//   kLocked    the mutex is held.
//   kWoken     an unlocker woke a waiter that is now on its way to compete
//              for the lock, so further unlockers need not wake another.
//   kStarving  starvation mode: the lock passes from the unlocker straight to
//              the waiter at the front of the queue.
//   kWaiters   the wait queue is non-empty.
//
// Normal mode. Waiters queue FIFO, but a woken waiter does not own the lock:
// it competes with lockers that are arriving right now (and are running, so
// usually win). That barging keeps throughput high. A woken waiter that loses
// keeps its place at the head of the queue.
// Starvation mode. A waiter that has waited more than 1 ms and still loses
// switches the mutex to starvation mode. Then unlock() hands ownership to the
// front waiter directly, newcomers neither take the lock nor spin but queue at
// the tail, and the mutex returns to normal mode once a waiter that receives
// it waited less than 1 ms or was the last one. No waiter starves.
//
// Fast paths: lock() is one load and one CAS setting kLocked whenever the
// mutex is free and not starving, and unlock() one load and one CAS clearing
// it whenever nobody needs waking; both read the state first, so queued
// waiters or a woken one do not send them to the slow path. Anything else
// goes through `lock_`. lock() and try_lock() also make a plain thread
// known to the deadlock detector (a thread-local check, no atomic): a
// thread that holds a Mutex fibers wait for must not look absent, or the
// detector would report those fibers as deadlocked.
//
// Invariants.
//   - kWaiters is set exactly when `waiting_` is non-empty; both change only
//     under `lock_`.
//   - While kLocked is set, lockers change only kWaiters and kStarving
//     (under `lock_`) and kWoken (a spinner, below); only the holder clears
//     kLocked (unlock()), or kStarving when a hand-off made it the owner.
//   - At most one locker is woken-and-competing: the one kWoken speaks for
//     (a waiter unlock() woke, or a spinner that claimed it so that unlock()
//     wakes nobody). It clears kWoken when it takes the lock or parks.
//   - In starvation mode kLocked stays set from unlock() to the new owner, so
//     no one can slip in between.
// Lock order: `lock_` is a leaf (only Parker claims happen under it) and is
// never held across park(). (Handing it to the switch, as channels do, was
// tried: it delays every unlocker by a switch, which made starvation-mode
// hand-off measurably less fair under TSan.)
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "detail/parker.hpp"
#include "detail/spin_lock.hpp"
#include "detail/unwind.hpp"
#include "detail/wait_list.hpp"
#include "runtime.hpp"

namespace goro {

class Once;
class Cond;

// Mutex is a mutual-exclusion lock for fibers and threads. The zero state is
// unlocked; a Mutex must not be copied or moved. Unlike std::mutex it is not
// owned by a thread or fiber: like Go's, it may be unlocked by another fiber
// or thread than the one that locked it.
//
// Thread-safety: every member is safe from any fiber or thread. Misuse
// (unlock() of an unlocked mutex) throws std::logic_error.
class Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  // lock() blocks until the mutex is acquired: a fiber parks, a plain thread
  // sleeps. Not recursive: locking a mutex the caller holds deadlocks.
  void lock();
  // try_lock() acquires the mutex if that needs no waiting and returns
  // whether it did. It never takes the lock away from a starving waiter.
  bool try_lock() noexcept;
  // unlock() releases the mutex and wakes (or, in starvation mode, hands the
  // lock to) the next waiter. Throws std::logic_error if the mutex is not
  // locked. Not noexcept for that reason: in a destructor (std::lock_guard)
  // the misuse ends in std::terminate with the same message.
  void unlock();

 private:
  friend class Once;
  friend class Cond;

  static constexpr std::uint32_t kLocked = 1;
  static constexpr std::uint32_t kWoken = 2;
  static constexpr std::uint32_t kStarving = 4;
  static constexpr std::uint32_t kWaiters = 8;
  static constexpr std::int64_t kStarvationThresholdNs = 1'000'000;  // 1 ms, as Go
  static constexpr int kMaxSpins = 4;
  static constexpr int kPausesPerSpin = 30;

  struct Waiter : detail::WaitList::Node {
    bool handed_off = false;  // starvation mode: the unlocker made us the owner
  };

  // How lock_slow() reacts to the runtime unwinding the fiber.
  enum class OnUnwind { throw_unwind, acquire_anyway };

  // lock_slow() is the contended path; `what` names the wait in deadlock
  // reports ("sync.Mutex.Lock", or Once/Cond's own name). It loops over the
  // steps below, which share one Contender, as Go's lockSlow loops over its
  // states.
  void lock_slow(const char* what, OnUnwind on_unwind);
  // Contender is one lock_slow() call's state.
  struct Contender {
    Waiter node;
    detail::Parker* self = nullptr;
    std::int64_t wait_start = 0;  // 0: never queued yet
    bool starving = false;        // we have waited more than the threshold
    bool awoke = false;           // we hold kWoken: an unlocker woke us, or we claimed it spinning
    int spins = 0;
  };
  // compete() tries to take the mutex, seen as `old`, if it is free and not
  // reserved for a starving waiter (leaving the queue if we were in it):
  // true if we took it. `old` is reloaded when the CAS fails.
  bool compete(Contender& c, std::uint32_t& old);
  // spin() spins once, claiming kWoken on the way, if the holder may be
  // about to release the mutex; false if spinning is not worth it.
  bool spin(Contender& c, std::uint32_t old) noexcept;
  // enqueue() marks us waiting and queues us (prepared to park) unless the
  // mutex came free meanwhile: false then, and we compete again. Takes lock_.
  bool enqueue(Contender& c, const char* what, OnUnwind on_unwind);
  // park_queued() parks until an unlocker wakes us: true if it handed us the
  // lock (starvation mode) or the unwinder made us adopt it, false if we
  // must compete again. Throws FiberUnwind for an unwound throw_unwind wait.
  bool park_queued(Contender& c, OnUnwind on_unwind);
  // take_if_free() is every fast path: it takes the mutex if it is free and
  // not reserved for a starving waiter, whatever its other bits say, as
  // lock_slow() would. It reads the state before its CAS: a CAS guessing 0
  // fails whenever waiters are queued, and a failed CAS costs as much as one
  // that works (contended mutex on two workers: 38 -> 25 ns an increment
  // with unlock()'s matching change).
  bool take_if_free() noexcept {
    std::uint32_t old = state_.load(std::memory_order_relaxed);
    while ((old & (kLocked | kStarving)) == 0) {
      if (state_.compare_exchange_weak(old, old | kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void lock_as(const char* what) {
    detail::note_goro_use();
    if (!take_if_free()) lock_slow(what, OnUnwind::throw_unwind);
  }
  // lock_during_unwind() acquires the mutex even while the runtime unwinds
  // the calling fiber: Cond::wait() must return (or throw) with the lock
  // held, or the caller's unique_lock would unlock a mutex it does not hold.
  // Its wait is a StopRule::relock one: if the runtime finds that nothing
  // can release the mutex any more (its holder was unwound, or main
  // returned, without unlocking), it returns with the mutex still locked,
  // adopting that abandoned hold; the caller's guard then releases it.
  void lock_during_unwind();
  void unlock_slow();
  bool locked() const noexcept { return state_.load(std::memory_order_relaxed) & kLocked; }

  // Queue maintenance; call with lock_ held.
  void dequeue_locked(Waiter* w) noexcept {
    if (waiting_.remove(w) && waiting_.empty()) state_.fetch_and(~kWaiters, std::memory_order_relaxed);
  }
  Waiter* pop_locked() noexcept {
    auto* w = static_cast<Waiter*>(waiting_.pop_front());
    if (w && waiting_.empty()) state_.fetch_and(~kWaiters, std::memory_order_relaxed);
    return w;
  }

  static bool can_spin() noexcept;

  std::atomic<std::uint32_t> state_{0};
  detail::SpinLock lock_;
  detail::WaitList waiting_;  // of Waiter; guarded by lock_
};

// ---------------------------------------------------------------------------

inline void Mutex::lock() { lock_as("sync.Mutex.Lock"); }

inline bool Mutex::try_lock() noexcept {
  detail::note_goro_use();
  return take_if_free();
}

inline void Mutex::unlock() {
  detail::note_goro_use();
  // Without lock_ when nobody needs waking: no waiters, or one is already
  // woken (or spinning) and will take the lock (normal mode only). The state
  // is read first rather than guessed (a CAS from kLocked): while waiters
  // queue, a guess fails, and a failed CAS costs as much as one that works.
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  for (;;) {
    if ((old & kLocked) == 0) throw std::logic_error("goro::Mutex: unlock of unlocked mutex");
    if ((old & kStarving) != 0 || ((old & kWoken) == 0 && (old & kWaiters) != 0)) break;
    if (state_.compare_exchange_weak(old, old & ~kLocked, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      return;
    }
  }
  unlock_slow();
}

// can_spin() says whether busy-waiting a little may pay off (Go's canSpin):
// only when another thread can be running the holder right now (not with
// one worker, or one CPU), and, for a fiber, only when its worker has no
// other fiber ready to run. A worker with work queued does better parking
// the fiber and running that work than burning its time slice and pulling
// the lock's cache line away from the holder: contended mutex on two
// workers, 1000 fibers, 23.6 -> 19.3 ns an increment (A/B 0.82, 21 runs);
// never spinning at all made two fibers with work between their locks
// 1.3-1.5x slower.
inline bool Mutex::can_spin() noexcept {
  static const unsigned cpus = std::thread::hardware_concurrency();
  if (cpus <= 1) return false;
  if (detail::current_fiber()) return goro::worker_count() > 1 && !detail::others_ready_here();
  return true;
}

inline void Mutex::lock_slow(const char* what, OnUnwind on_unwind) {
  Contender c;
  for (;;) {
    std::uint32_t old = state_.load(std::memory_order_relaxed);
    if ((old & (kLocked | kStarving)) == 0) {
      if (compete(c, old)) return;
      continue;
    }
    if (spin(c, old)) continue;
    if (!enqueue(c, what, on_unwind)) continue;  // came free: compete again (still speaking for kWoken)
    if (park_queued(c, on_unwind)) return;
  }
}

inline bool Mutex::compete(Contender& c, std::uint32_t& old) {
  std::uint32_t desired = old | kLocked;
  if (c.awoke) desired &= ~kWoken;
  if (!state_.compare_exchange_weak(old, desired, std::memory_order_acquire, std::memory_order_relaxed)) {
    return false;
  }
  if (c.wait_start != 0) {  // we were queued: leave the queue
    std::lock_guard guard(lock_);
    dequeue_locked(&c.node);
  }
  return true;
}

// Held in normal mode: the holder may be about to release it. While we spin,
// claim kWoken (if there are waiters and nobody has it) so that unlock()
// does not wake a parked waiter that would only lose to us.
inline bool Mutex::spin(Contender& c, std::uint32_t old) noexcept {
  if ((old & kStarving) != 0 || c.spins >= kMaxSpins || !can_spin()) return false;
  if (!c.awoke && (old & kWoken) == 0 && (old & kWaiters) != 0 &&
      state_.compare_exchange_weak(old, old | kWoken, std::memory_order_relaxed, std::memory_order_relaxed)) {
    c.awoke = true;
  }
  ++c.spins;
  for (int i = 0; i < kPausesPerSpin; ++i) GORO_CPU_RELAX();
  return true;
}

inline bool Mutex::enqueue(Contender& c, const char* what, OnUnwind on_unwind) {
  if (!c.self) c.self = &detail::Parker::current();
  {
    std::lock_guard guard(lock_);
    std::uint32_t old = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((old & (kLocked | kStarving)) == 0) return false;
      std::uint32_t desired = old | kWaiters;
      if (c.awoke) desired &= ~kWoken;
      // A long waiter that lost again: make the next unlock hand off.
      if (c.starving && (old & kLocked)) desired |= kStarving;
      if (state_.compare_exchange_weak(old, desired, std::memory_order_relaxed, std::memory_order_relaxed)) break;
    }
    c.awoke = false;
    c.node.handed_off = false;
    c.node.ticket = c.self->prepare(what, detail::Publish::before_switch,
                                    on_unwind == OnUnwind::acquire_anyway ? detail::StopRule::relock
                                                                          : detail::StopRule::unwind);
    // A woken waiter that lost is still queued, at its old place near the
    // head (Go requeues it LIFO for the same reason).
    if (!c.node.queued) waiting_.push(&c.node);
  }
  if (c.wait_start == 0) c.wait_start = detail::now_ns();
  return true;
}

inline bool Mutex::park_queued(Contender& c, OnUnwind on_unwind) {
  if (c.self->park() == detail::WakeReason::unwind) {
    {
      std::lock_guard guard(lock_);
      dequeue_locked(&c.node);
    }
    // The unwinder's claim beat any unlocker's, so we own nothing here.
    if (on_unwind == OnUnwind::throw_unwind) throw detail::FiberUnwind{};
    // A re-locking wait is claimed only once nothing could ever unlock the
    // mutex (Runtime::unwind_all): it is held by a lock that will never be
    // released, which we adopt (or, should it have come free, take).
    (void)take_if_free();
    return true;
  }
  if (!c.starving && detail::now_ns() - c.wait_start > kStarvationThresholdNs) c.starving = true;
  if (c.node.handed_off) {
    // Starvation mode gave us the lock (kLocked stayed set). Go back to
    // normal mode if the queue is empty or we did not wait long: normal
    // mode is much faster.
    if (!c.starving || (state_.load(std::memory_order_relaxed) & kWaiters) == 0) {
      state_.fetch_and(~kStarving, std::memory_order_relaxed);
    }
    return true;
  }
  c.awoke = true;
  c.spins = 0;
  return false;
}

inline void Mutex::lock_during_unwind() {
  if (!take_if_free()) lock_slow("sync.Mutex.Lock", OnUnwind::acquire_anyway);
}

// unlock_slow() releases the mutex when a waiter needs waking or, in
// starvation mode, the lock needs handing over; it takes lock_.
inline void Mutex::unlock_slow() {
  detail::WakeList wake;  // declared first: unparks after lock_ is released
  std::lock_guard guard(lock_);
  std::uint32_t old = state_.load(std::memory_order_relaxed);
  if ((old & kLocked) == 0) throw std::logic_error("goro::Mutex: unlock of unlocked mutex");
  if (old & kStarving) {
    // Hand the lock to the first waiter that can still take it; kLocked
    // stays set so nobody slips in between. Waiters whose claim fails were
    // unwound: they dequeue nothing of ours, we just drop them.
    while (Waiter* w = pop_locked()) {
      if (wake.add_if_claimed(w->ticket)) {
        w->handed_off = true;
        return;
      }
    }
    state_.fetch_and(~(kLocked | kStarving), std::memory_order_release);
    return;
  }
  if ((old & kWoken) == 0) {
    // Wake the first claimable waiter. It stays queued (keeping its place)
    // and competes for the lock once it runs.
    while (auto* w = static_cast<Waiter*>(waiting_.front())) {
      if (wake.add_if_claimed(w->ticket)) {
        while (!state_.compare_exchange_weak(old, (old & ~kLocked) | kWoken, std::memory_order_release,
                                             std::memory_order_relaxed)) {
        }
        return;
      }
      dequeue_locked(w);  // its owner was unwound
    }
  }
  state_.fetch_and(~kLocked, std::memory_order_release);
}

}  // namespace goro
