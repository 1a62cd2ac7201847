// goro::WaitGroup: Go's sync.WaitGroup.
#pragma once

#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "detail/parker.hpp"
#include "detail/spin_lock.hpp"
#include "detail/unwind.hpp"
#include "detail/wait_list.hpp"
#include "runtime.hpp"

namespace goro {

// WaitGroup waits for a collection of fibers (or threads) to finish.
// `add(n)` raises the counter, `done()` lowers it, and `wait()` blocks until
// it is zero. `go(f)` adds one, runs f on a new fiber and calls done() when f
// ends (normally or by exception), once f's copy and its captures are
// destroyed.
//
// Thread-safety: every member is safe from any fiber or thread. A WaitGroup
// may be destroyed as soon as wait() returns: done() touches nothing of it
// after waking the waiters.
//
// Design. `state_` holds the counter and the number of parked waiters in one
// word (Go's layout), so the done() that reaches zero learns in the same
// atomic step whether anyone waits. That done() is the waker: under `lock_`
// it pops and claims every waiter, releases `lock_`, and only then, as its
// last touch of the WaitGroup, subtracts their number from `state_`; the
// claimed waiters are unparked after that. wait() returns only when it sees
// the state at zero, counter and waiters both: a counter of zero with
// waiters still counted is a waker in flight, which wait() yields to. So
// whatever wait() returns, no done() is still inside the WaitGroup.
// Invariants: the waiter count changes only under `lock_` (wait() adds
// itself, an unwound waiter removes itself), except for the waker's final
// subtraction of the waiters it popped; the counter changes only by add()'s
// compare-and-swap, which never publishes a value out of range.
class WaitGroup {
 public:
  WaitGroup() = default;
  WaitGroup(const WaitGroup&) = delete;
  WaitGroup& operator=(const WaitGroup&) = delete;

  // add() adds `delta` (which may be negative) to the counter and wakes the
  // waiters when it reaches zero. The counter is 32-bit, as Go's. Throws,
  // leaving the counter unchanged, std::logic_error if it would go negative
  // and std::overflow_error if it would pass 2^31 - 1.
  void add(std::ptrdiff_t delta = 1);
  // done() is add(-1).
  void done() { add(-1); }
  // wait() blocks until the counter is zero. If the runtime stops and
  // unwinds the waiting fiber, wait() throws only once the counter is zero
  // or nothing but such waits can move any more: the fibers it waits for
  // unwind (and call done()) before the waiter's frame is destroyed.
  void wait();
  // go() is add(1) followed by goro::go(f) with a done() when f ends. It
  // decay-copies f and calls the copy once, as an rvalue; done() runs after
  // that copy (with all it captured) is destroyed, so once wait() returns no
  // destructor of f's captures is still running. If goro::go() throws, go()
  // calls done() and rethrows.
  template <class F>
  void go(F&& f);

  // count() is the counter now (for diagnostics and tests).
  std::int64_t count() const noexcept { return counter_of(state_.load(std::memory_order_acquire)); }

 private:
  static std::int32_t counter_of(std::uint64_t s) noexcept { return static_cast<std::int32_t>(s >> 32); }
  static std::uint32_t waiters_of(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s); }
  // throw_out_of_range() reports an add(delta) to a counter at `before`
  // that would leave the 32-bit counter's range.
  [[noreturn]] static void throw_out_of_range(std::int64_t delta, std::int64_t before);

  // wake_all() is the waker's part of add() (see Design).
  void wake_all() noexcept;
  // park_until_zero() is wait()'s wait, opened with `stop_rule`: true once
  // the counter is zero (and no waker is still inside), false if the runtime
  // unwound the wait (we left the queue).
  bool park_until_zero(detail::Parker& self, detail::StopRule stop_rule);

  // (counter << 32) | waiters (see Design).
  std::atomic<std::uint64_t> state_{0};
  detail::SpinLock lock_;
  detail::WaitList waiting_;  // guarded by lock_; its size is the waiter count
};

inline void WaitGroup::add(std::ptrdiff_t delta) {
  detail::note_goro_use();
  if (delta > INT32_MAX || delta < INT32_MIN) throw_out_of_range(delta, count());
  const std::uint64_t step = static_cast<std::uint64_t>(delta) << 32;
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    const std::int64_t counter = static_cast<std::int64_t>(counter_of(s)) + delta;
    if (counter < 0 || counter > INT32_MAX) throw_out_of_range(delta, counter_of(s));
    if (state_.compare_exchange_weak(s, s + step, std::memory_order_acq_rel, std::memory_order_relaxed)) break;
  }
  s += step;
  if (counter_of(s) == 0 && waiters_of(s) != 0) wake_all();
}

inline void WaitGroup::wake_all() noexcept {
  detail::WakeList wake;  // flushed last: the waiters return only after our last touch
  std::size_t popped = 0;
  {
    std::lock_guard guard(lock_);
    if (counter_of(state_.load(std::memory_order_acquire)) != 0) return;  // re-added meanwhile
    popped = waiting_.claim_all(wake);
  }
  state_.fetch_sub(popped, std::memory_order_acq_rel);
  // From here on nothing of *this is touched: wait() may return and free it.
}

inline void WaitGroup::throw_out_of_range(std::int64_t delta, std::int64_t before) {
  if (delta < 0) {
    throw std::logic_error("goro::WaitGroup: negative counter (" + std::to_string(before + delta) +
                           "): done() or add() called more times than added");
  }
  throw std::overflow_error("goro::WaitGroup: counter overflow: add(" + std::to_string(delta) + ") to " +
                            std::to_string(before) + " passes 2147483647");
}

inline void WaitGroup::wait() {
  detail::note_goro_use();
  if (state_.load(std::memory_order_acquire) == 0) return;
  detail::Parker& self = detail::Parker::current();
  if (park_until_zero(self, detail::StopRule::unwind)) return;
  // The runtime is stopping and unwinds this fiber. The fibers we wait for
  // are being unwound too, and typically use what our frame holds (this
  // WaitGroup, captured by reference, first of all: go()'s done()). Leaving
  // now would destroy it under them, so first wait, as long as their
  // unwinding can still bring the counter to zero; a StopRule::relock wait
  // is left to its wakers until nothing else can move (a done() that the
  // unwinding skips never comes: then the runtime claims this wait too).
  (void)park_until_zero(self, detail::StopRule::relock);
  throw detail::FiberUnwind{};
}

inline bool WaitGroup::park_until_zero(detail::Parker& self, detail::StopRule stop_rule) {
  detail::WaitList::Node node;
  for (;;) {
    std::unique_lock guard(lock_);
    std::uint64_t s = state_.load(std::memory_order_acquire);
    do {
      if (s == 0) return true;
      if (counter_of(s) == 0) break;  // a waker in flight: wait until it is done
    } while (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel));
    if (counter_of(s) != 0) {
      node.ticket = self.prepare("sync.WaitGroup.Wait", detail::Publish::after_switch, stop_rule);
      waiting_.push(&node);
      guard.release();  // park's commit unlocks it
      break;
    }
    guard.unlock();
    detail::yield_to_peer();
  }
  if (self.park(detail::ParkCommit::unlock(lock_)) != detail::WakeReason::unwind) {
    return true;  // the waker dequeued us
  }
  std::lock_guard guard(lock_);
  if (waiting_.remove(&node)) state_.fetch_sub(1, std::memory_order_acq_rel);
  return false;
}

template <class F>
void WaitGroup::go(F&& f) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn>,
                "goro::WaitGroup::go: f must be callable with no arguments (as an rvalue copy, as with goro::go)");
  // Done calls done() when it is destroyed. Move-only, so exactly one copy
  // acts: the fiber's task's, or, if copying f or goro::go() throws, the one
  // dropped on the way out (done() then runs before the exception leaves
  // go()).
  struct Done {
    WaitGroup* wg;
    explicit Done(WaitGroup* w) noexcept : wg(w) {}
    Done(Done&& other) noexcept : wg(std::exchange(other.wg, nullptr)) {}
    Done(const Done&) = delete;
    ~Done() {
      if (wg) wg->done();
    }
  };
  // Task holds `done` before `fn`, so members being destroyed in reverse
  // order, f's copy (with everything it captured) is gone before done()
  // runs: a waiter that returns from wait() may free what those captures'
  // destructors use. The fiber destroys its task however f ended: returned,
  // threw, or was unwound by the runtime (detail::FiberUnwind). (A struct,
  // not a lambda: the order of a closure's captures is unspecified.)
  struct Task {
    Done done;
    Fn fn;
    void operator()() { std::invoke(std::move(fn)); }
  };
  add(1);
  goro::go(Task{Done(this), Fn(std::forward<F>(f))});
}

}  // namespace goro
