// Select's commit protocol, after Go's runtime/select.go.
//
//   1. Poll order: a uniformly random permutation of the cases, so among
//      cases ready at the same moment each is equally likely to win.
//   2. Lock order: the cases' channels sorted by address, each locked once
//      (a channel named by several cases is locked once).
//   3. Pass 1: with every lock held, the first case in poll order that can
//      complete does so (it moves a value, or observes a close) and wins.
//   4. Otherwise, with a default case: release the locks and take default.
//   5. Otherwise pass 2: open one wait (Parker::prepare) and enqueue a waiter
//      for every case, all sharing the one ticket; release the locks; park,
//      with the timeout case's deadline if there is one.
//   6. Whoever claims the ticket (a sender, a receiver, close(), the timer,
//      the unwinder) decides the outcome in one CAS; a channel waker writes
//      the winning case into the SelectRecord and completes the transfer
//      under that channel's lock. The losers' waiters are still queued: pass
//      3 relocks every channel and dequeues them (a waker that meets one
//      before that fails its claim and skips it).
//   7. The winning case's handler runs after every lock is released.
//
// A send case's value is moved only by the one transfer that wins. Nothing
// here allocates: cases, waiters, order and lock arrays live on the stack.
//
// Invariant: at most one case completes per select call, and it is the one
// reported.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <tuple>
#include <utility>

#include "../channel/chan.hpp"
#include "../scheduler.hpp"
#include "../parker.hpp"
#include "../unwind.hpp"

namespace goro::detail {

// select_random() is a per-thread xorshift; only used between switches.
GORO_NOINLINE inline std::uint32_t select_random() noexcept {
  thread_local std::uint64_t state = 0;
  if (state == 0) state = static_cast<std::uint64_t>(now_ns()) * 0x9E3779B97F4A7C15ULL | 1;
  state ^= state << 13;
  state ^= state >> 7;
  state ^= state << 17;
  return static_cast<std::uint32_t>(state >> 32);
}

// poll_random() draws the poll order: from the seeded generator in the
// deterministic schedule mode (so a seed replays selects too), else per thread.
inline std::uint32_t poll_random() noexcept {
  Runtime* rt = current_runtime();
  if (rt && rt->seeded() && current_worker()) return rt->seeded_random();
  return select_random();
}

// Every case type provides (see select.hpp):
//   ChanBase* channel()                    the lock to take, or null
//   bool maybe_ready()                     lock-free readiness hint
//   bool poll(WakeList&)                   lock held: complete now if possible
//   void enqueue(Ticket, SelectRecord*, i) lock held: park a waiter
//   void dequeue()                         lock held: remove that waiter
//   void finish()                          no lock: run the handler
// and the static flags kIsTimeout / kIsDefault.

template <std::size_t N>
class LockSet {
 public:
  template <class Tuple>
  explicit LockSet(Tuple& cases) {
    std::apply([&](auto&... c) { (add(c.channel()), ...); }, cases);
  }
  void lock() noexcept {
    for (std::size_t i = 0; i < count_; ++i) locks_[i]->lock.lock();
  }
  void unlock() noexcept {
    for (std::size_t i = count_; i-- > 0;) locks_[i]->lock.unlock();
  }

 private:
  // add() keeps locks_ sorted and free of duplicates (insertion sort: a
  // select has a handful of cases).
  void add(ChanBase* c) noexcept {
    if (!c) return;
    std::size_t i = count_;
    while (i > 0 && std::less<ChanBase*>{}(c, locks_[i - 1])) --i;
    if (i > 0 && locks_[i - 1] == c) return;
    for (std::size_t j = count_; j > i; --j) locks_[j] = locks_[j - 1];
    locks_[i] = c;
    ++count_;
  }
  std::array<ChanBase*, N> locks_{};
  std::size_t count_ = 0;
};

// for_case() calls f(case) on the i-th element of the tuple.
template <class Tuple, class F, std::size_t... I>
void for_case_impl(Tuple& t, std::size_t i, F&& f, std::index_sequence<I...>) {
  ((i == I ? (void)f(std::get<I>(t)) : void()), ...);
}
template <class Tuple, class F>
void for_case(Tuple& t, std::size_t i, F&& f) {
  for_case_impl(t, i, std::forward<F>(f), std::make_index_sequence<std::tuple_size_v<Tuple>>{});
}

template <class Tuple>
std::size_t select_commit(Tuple& cases) {
  constexpr std::size_t N = std::tuple_size_v<Tuple>;
  constexpr std::size_t kNone = static_cast<std::size_t>(-1);
  std::size_t default_index = kNone;
  std::size_t timeout_index = kNone;
  std::int64_t deadline = -1;
  std::apply(
      [&](auto&... c) {
        std::size_t i = 0;
        [[maybe_unused]] auto note = [&](auto& one) {
          using Case = std::remove_reference_t<decltype(one)>;
          if constexpr (Case::kIsDefault) default_index = i;
          if constexpr (Case::kIsTimeout) {
            timeout_index = i;
            deadline = one.deadline();
          }
          ++i;
        };
        (note(c), ...);
      },
      cases);

  if constexpr (N == 0) {
    Parker& self = Parker::current();
    self.prepare("select (no cases)");
    self.park();
    throw FiberUnwind{};
  } else {
    // 1. Random poll order.
    std::array<std::size_t, N> order;
    for (std::size_t i = 0; i < N; ++i) order[i] = i;
    for (std::size_t i = N; i > 1; --i) std::swap(order[i - 1], order[poll_random() % i]);

    // Non-blocking fast path: nothing looks ready, so default it is.
    if (default_index != kNone) {
      bool any = false;
      std::apply([&](auto&... c) { ((any = any || c.maybe_ready()), ...); }, cases);
      if (!any) {
        for_case(cases, default_index, [](auto& c) { c.finish(); });
        return default_index;
      }
    }

    LockSet<N> locks(cases);
    std::size_t winner = kNone;
    {
      WakeList wake;  // flushed after the locks are released
      locks.lock();
      // 3. Pass 1: the first ready case in poll order wins.
      for (std::size_t k = 0; k < N && winner == kNone; ++k) {
        for_case(cases, order[k], [&](auto& c) {
          if (c.poll(wake)) winner = order[k];
        });
      }
      if (winner == kNone && default_index != kNone) winner = default_index;
      if (winner != kNone) {
        locks.unlock();
        wake.flush();
        for_case(cases, winner, [](auto& c) { c.finish(); });
        return winner;
      }
    }

    // 5. Pass 2, still under the same locks: one ticket for all cases.
    Parker& self = Parker::current();
    SelectRecord record;
    const Parker::Ticket ticket =
        self.prepare(timeout_index != kNone ? "select (with timeout)" : "select");
    std::apply(
        [&](auto&... c) {
          std::size_t i = 0;
          (c.enqueue(ticket, &record, i++), ...);
        },
        cases);
    locks.unlock();
    const WakeReason reason = deadline >= 0 ? self.park_until(deadline) : self.park();

    // Pass 3: dequeue the waiters the winner's waker did not take.
    locks.lock();
    std::apply([&](auto&... c) { (c.dequeue(), ...); }, cases);
    locks.unlock();

    if (reason == WakeReason::unwind) throw FiberUnwind{};
    winner = reason == WakeReason::timeout ? timeout_index : record.winner;
    for_case(cases, winner, [](auto& c) { c.finish(); });
    return winner;
  }
}

}  // namespace goro::detail
