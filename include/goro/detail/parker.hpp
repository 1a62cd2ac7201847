// The parking primitive: goro's counterpart of Go's sudog + gopark/goready.
// Every blocking call in goro (channels, select, locks, WaitGroup, timers)
// blocks through a Parker, and every wake-up goes through one. A fiber parks
// by switching away (its worker runs other fibers); a plain thread parks on a
// futex. The primitive built on top never needs to know which one it has.
//
// Protocol.
//   1. The blocking side calls `prepare(what)` on its own Parker, which opens a
//      new wait and returns a Ticket naming it, then publishes the Ticket where
//      wakers will find it (a channel's wait queue, a timer, a wait list), under
//      that structure's lock, and calls `park()`.
//   2. A waker calls `claim(ticket, reason)`. Exactly one claim per wait
//      succeeds: the token is CASed from (generation, waiting) to (generation,
//      reason), and a claim with a stale generation fails. The winner adds the
//      Parker to a WakeList, which unparks it once the waker has released its
//      locks. Claims usually happen under the lock that guards the queue the
//      ticket sits in, so a loser (say, a select case that lost to a timeout)
//      can be skipped and left for its owner to dequeue.
//      A wait prepared with Publish::after_switch is instead published under
//      a lock the fiber still holds when it calls `park(commit)`; `commit`
//      releases that lock only after the fiber has switched away (Go's
//      gopark unlockf). A waker that finds the ticket through that lock
//      therefore finds the fiber fully parked and makes it runnable without
//      the FiberState handshake (two locked instructions saved per wait).
//      The fiber must not take any other lock between prepare and the switch
//      except leaf locks (the run queues'): see Runtime::switch_away.
//      A wait prepared with `prepare_locked(what, lock)` (a plain channel
//      send or receive) goes one step further: every claimer holds `lock`,
//      so wakers claim it with `claim_locked()`, a load and a store instead
//      of a compare-and-swap. The one claimer that finds waits without their
//      locks, the unwinder, takes `lock` for these (Runtime::unwind_all says
//      why that lock is still alive when it does).
//   3. `park()` returns the reason once the Parker is unparked. A wait that
//      ends without parking (a re-check found the resource ready) must still
//      be closed: the owner claims its own ticket; if that fails, somebody else
//      won and will unpark, so the owner parks to consume the wake-up.
//
// Invariants.
//   - A Parker has at most one open wait; every open wait is unparked exactly
//     once, by its one successful claimer.
//   - A claimed Parker stays alive until it is unparked: its fiber or thread
//     cannot run past park() before that. So a WakeList may hold Parkers after
//     the structures they waited on are gone (WaitGroup's destroy-after-wait
//     rule rests on this).
//   - When the runtime stops, the unwinder claims every open fiber wait with
//     WakeReason::unwind, and a fiber that prepares a wait after that claims it
//     itself; the blocking call then dequeues its ticket and throws FiberUnwind.
//     Two kinds of wait are left to their wakers instead, for as long as
//     anything else can move (Runtime::unwind_all): a destructor's, and one
//     opened with StopRule::relock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

#include "config.hpp"
#include "futex.hpp"

namespace goro::detail {

struct Fiber;
class Runtime;
class SpinLock;

enum class WakeReason : std::uint8_t {
  waiting = 0,   // not claimed yet
  signaled = 1,  // the awaited event happened
  timeout = 2,   // the deadline passed first
  unwind = 3,    // the runtime is stopping: throw FiberUnwind
};

// ParkCommit is what park(commit) runs once the fiber has switched away (a
// plain thread runs it before it blocks): typically, unlock the lock under
// which the wait's ticket was published.
struct ParkCommit {
  void (*run)(void* arg) noexcept = nullptr;
  void* arg = nullptr;

  explicit operator bool() const noexcept { return run != nullptr; }
  // operator() runs the commit, if there is one.
  void operator()() const noexcept {
    if (run) run(arg);
  }

  // unlock(lock) is the commit that releases `lock`.
  template <class Lock>
  static ParkCommit unlock(Lock& lock) noexcept {
    return {[](void* l) noexcept { static_cast<Lock*>(l)->unlock(); }, &lock};
  }
};

// StopRule says what becomes of a fiber's wait when the runtime stops.
enum class StopRule : std::uint8_t {
  unwind,  // claimed with WakeReason::unwind at once: the call throws FiberUnwind
  // A mutex re-locked on the way out of a wait the runtime unwound
  // (Cond::wait): left to the mutex's unlockers while anything else can
  // move; then claimed with `unwind`, one such wait at a time, and the caller
  // adopts the hold nobody is left to release (Mutex::lock_during_unwind).
  // WaitGroup::wait() uses it too, once unwound: it waits for the fibers it
  // waits for to unwind and call done() before its frame is destroyed.
  relock,
};

// Publish says when a wait's ticket becomes visible to wakers.
enum class Publish : std::uint8_t {
  before_switch,  // before park(): waker and switch settle it with FiberState
  after_switch,   // by park(commit), after the switch: no handshake needed
};

class Parker {
 public:
  struct Ticket {
    Parker* parker = nullptr;
    std::uint64_t generation = 0;
  };

  explicit Parker(Fiber* fiber) noexcept : fiber_(fiber) {}
  Parker(const Parker&) = delete;
  Parker& operator=(const Parker&) = delete;

  // current() is the Parker of the calling fiber, or of the calling plain
  // thread (registered with the deadlock detector on first use).
  static Parker& current();

  // prepare() opens a new wait; `what` names it in deadlock and leak reports.
  // Must be called by the Parker's own fiber or thread. A wait prepared with
  // Publish::after_switch must end in park(commit) or close_own().
  Ticket prepare(const char* what, Publish publish = Publish::before_switch,
                 StopRule stop_rule = StopRule::unwind) noexcept;
  // prepare_locked() opens a Publish::after_switch wait that is published
  // under `lock` and claimed only by holders of `lock` (claim_locked()).
  Ticket prepare_locked(const char* what, SpinLock& lock) noexcept;

  // claim() closes the wait named by `t` with `reason` and returns true, or
  // returns false when that wait was already closed. The winner must unpark
  // the Parker (WakeList::add) after releasing its locks.
  static bool claim(Ticket t, WakeReason reason) noexcept;
  // claim_locked() is claim() for a wait opened by prepare_locked(); the
  // caller holds that wait's lock, which orders it against every other claim.
  static bool claim_locked(Ticket t, WakeReason reason) noexcept;

  // park() blocks until the open wait is claimed and this Parker unparked.
  // A wait prepared with Publish::after_switch passes a `commit`: park is
  // called with the lock that guards the published ticket held, and `commit`
  // releases it once the fiber has switched away.
  WakeReason park(ParkCommit commit = {});
  // park_until() also claims the wait with WakeReason::timeout at `deadline`
  // (steady_clock nanoseconds) if nobody claimed it before.
  WakeReason park_until(std::int64_t deadline_ns);

  // close_own() ends a wait that did not need to park: claims it with
  // `signaled`, or, if a waker won, parks to consume that wake-up. Returns the
  // reason the wait ended with.
  WakeReason close_own(Ticket t);

  // unpark() makes the Parker run again. Only the successful claimer calls it.
  void unpark() noexcept;

  // open_ticket() returns the open wait, if any (for the unwinder).
  bool open_ticket(Ticket& out) const noexcept {
    std::uint64_t tok = token_.load(std::memory_order_seq_cst);
    if ((tok & 0xff) != 0) return false;
    out = Ticket{const_cast<Parker*>(this), tok >> 8};
    return true;
  }
  // stop_rule() is the StopRule of the open wait named by a ticket just read
  // with open_ticket().
  StopRule stop_rule() const noexcept { return stop_rule_.load(std::memory_order_relaxed); }
  // claim_lock() is the lock of the open wait named by a ticket just read
  // with open_ticket() (null unless it was opened by prepare_locked()).
  SpinLock* claim_lock() const noexcept { return claim_lock_.load(std::memory_order_relaxed); }
  WakeReason last_reason() const noexcept {
    return static_cast<WakeReason>(token_.load(std::memory_order_acquire) & 0xff);
  }
  const char* waiting_on() const noexcept { return what_.load(std::memory_order_relaxed); }
  Fiber* fiber() const noexcept { return fiber_; }

  Parker* wake_next = nullptr;  // link in a WakeList

 private:
  WakeReason park_thread(std::int64_t deadline_ns);
  // park_while_stopping() is park() once the runtime is stopping: a
  // destructor's wait parks, left to its wakers (Runtime::unwind_all); any
  // other wait ends at once with `unwind`.
  WakeReason park_while_stopping(Runtime* rt, ParkCommit commit) noexcept;
  // leave_wait_while_stopping() ends a fiber's park() once the runtime is
  // stopping: it waits until the unwinder let go of this wait, and warns if
  // an unwind is about to leave a destructor (std::terminate follows).
  WakeReason leave_wait_while_stopping(Runtime* rt) noexcept;
  // open_wait() is prepare()'s and prepare_locked()'s common part: it
  // releases the new ticket.
  Ticket open_wait(const char* what, Publish publish, StopRule stop_rule = StopRule::unwind) noexcept;

  // (generation << 8) | WakeReason. Starts closed (reason "signaled").
  std::atomic<std::uint64_t> token_{static_cast<std::uint64_t>(WakeReason::signaled)};
  std::atomic<const char*> what_{nullptr};
  Fiber* const fiber_;                      // null for a plain thread
  // The open wait's Publish mode: written by prepare() before the ticket is
  // released, read by its one successful claimer.
  Publish publish_ = Publish::before_switch;
  // The open wait's lock if it came from prepare_locked(): written before the
  // ticket is released, read by the unwinder after it reads the ticket.
  std::atomic<SpinLock*> claim_lock_{nullptr};
  // The open wait's StopRule: written before the ticket is released, read by
  // the fiber itself and by the unwinder after it reads the ticket.
  std::atomic<StopRule> stop_rule_{StopRule::unwind};
  std::atomic<std::uint32_t> permit_{0};    // plain threads: the futex word
};

// WakeList collects Parkers claimed under a lock and unparks them when it is
// flushed or destroyed. Declare it before the lock guard so the wake-ups run
// after the lock is released. Not thread-safe: one per waker.
class WakeList {
 public:
  WakeList() = default;
  WakeList(const WakeList&) = delete;
  WakeList& operator=(const WakeList&) = delete;
  ~WakeList() { flush(); }

  void add(Parker* p) noexcept {
    p->wake_next = nullptr;
    if (tail_) tail_->wake_next = p; else head_ = p;
    tail_ = p;
  }
  // add_if_claimed() claims `t` with `reason` and queues its Parker on success.
  bool add_if_claimed(Parker::Ticket t, WakeReason reason = WakeReason::signaled) noexcept {
    if (!Parker::claim(t, reason)) return false;
    add(t.parker);
    return true;
  }
  // flush() is inline and usually finds the list empty; the loop lives out
  // of line, so an empty flush costs a load and a branch, not a function's
  // register saves (about 15 instructions, twice per buffered item).
  void flush() noexcept {
    if (head_) unpark_all();
  }
  bool empty() const noexcept { return head_ == nullptr; }

 private:
  GORO_NOINLINE void unpark_all() noexcept {
    Parker* p = head_;
    head_ = tail_ = nullptr;
    while (p) {
      Parker* next = p->wake_next;  // read before unpark: p may be gone after
      p->unpark();
      p = next;
    }
  }

  Parker* head_ = nullptr;
  Parker* tail_ = nullptr;
};

inline std::int64_t now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Deadlock accounting for plain threads (see Runtime::check_deadlock): the
// number of registered plain threads not blocked in a goro call.
inline std::atomic<std::int64_t> g_active_threads{0};

inline Parker::Ticket Parker::prepare(const char* what, Publish publish, StopRule stop_rule) noexcept {
  if (claim_lock_.load(std::memory_order_relaxed)) claim_lock_.store(nullptr, std::memory_order_relaxed);
  return open_wait(what, publish, stop_rule);
}

inline Parker::Ticket Parker::prepare_locked(const char* what, SpinLock& lock) noexcept {
  claim_lock_.store(&lock, std::memory_order_relaxed);  // before the ticket: see claim_lock()
  return open_wait(what, Publish::after_switch);
}

inline Parker::Ticket Parker::open_wait(const char* what, Publish publish, StopRule stop_rule) noexcept {
  what_.store(what, std::memory_order_relaxed);
  publish_ = publish;
  if (stop_rule_.load(std::memory_order_relaxed) != stop_rule) stop_rule_.store(stop_rule, std::memory_order_relaxed);
  std::uint64_t gen = (token_.load(std::memory_order_relaxed) >> 8) + 1;
  // Release suffices: the unwinder rescans every millisecond until every
  // fiber is gone, so it needs no store-load ordering with `stopping`.
  token_.store(gen << 8, std::memory_order_release);
  return Ticket{this, gen};
}

// No compare-and-swap: every other claim of this wait holds the same lock.
// That lock's release orders the store before the next holder's load.
inline bool Parker::claim_locked(Ticket t, WakeReason reason) noexcept {
  const std::uint64_t open = t.generation << 8;
  std::atomic<std::uint64_t>& token = t.parker->token_;
  if (token.load(std::memory_order_relaxed) != open) return false;
  token.store(open | static_cast<std::uint64_t>(reason), std::memory_order_release);
  return true;
}

inline bool Parker::claim(Ticket t, WakeReason reason) noexcept {
  std::uint64_t expected = t.generation << 8;
  return t.parker->token_.compare_exchange_strong(
      expected, expected | static_cast<std::uint64_t>(reason), std::memory_order_acq_rel,
      std::memory_order_relaxed);
}

inline WakeReason Parker::close_own(Ticket t) {
  if (claim(t, WakeReason::signaled)) return WakeReason::signaled;
  return park();
}

}  // namespace goro::detail
