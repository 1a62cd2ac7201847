// Select's commit protocol, after Go's runtime/select.go.
//
//   1. Poll order: a uniformly random permutation of the cases, so among
//      cases ready at the same moment each is equally likely to win. Pass 0
//      draws it one position at a time (PollOrder), as it goes.
//   2. Pass 0: in poll order, each case that looks ready (a lock-free hint)
//      tries to complete under its own channel's lock alone; the first that
//      does wins. It is the same order pass 1 would use, so a ready case is
//      as likely to win here as there, and a select whose first ready case
//      is found here takes one lock instead of all of them.
//   3. Lock order: the cases' channels sorted by address, each locked once
//      (a channel named by several cases is locked once). Pass 1: with every
//      lock held, the first case in poll order that can complete does so (it
//      moves a value, or observes a close) and wins.
//   4. Otherwise, with a default case: release the locks and take default.
//   5. Otherwise pass 2: open one wait (Parker::prepare) and enqueue a waiter
//      for every case, all sharing the one ticket; release the locks; park,
//      with the timeout case's deadline if there is one.
//   6. Whoever claims the ticket (a sender, a receiver, close(), the timer,
//      the unwinder) decides the outcome in one CAS; a channel waker writes
//      the winning case into the SelectRecord and completes the transfer
//      under that channel's lock. The losers' waiters are still queued: pass
//      3 relocks every channel and dequeues them (a waker that meets one
//      before that fails its claim and skips it). A waker whose move of the
//      value throws (T's move) sends the select back instead (SelectRecord::
//      retry): nothing ran, and the select starts over at 1.
//   7. The winning case's handler runs after every lock is released.
//
// The protocol is written once, in select_commit(), over a "case set" (see
// below). Two sets exist: StaticCases, the arguments of the variadic
// goro::select, dispatched statically with every array sized at compile
// time; and SpanCases (dynamic_case.hpp), the runtime-sized list of the span
// form, dispatched through goro::SelectCase's erased hooks.
//
// A send case's value is moved only by the one transfer that wins. Nothing
// here allocates for a static set: waiters, order and lock arrays live on the
// stack. A runtime set keeps them on the stack up to kInlineCases cases and
// allocates the two arrays beyond that.
//
// Invariant: at most one case completes per select call, and it is the one
// reported. A poll that throws (T's move) completes nothing and releases
// every lock before the exception leaves select.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../channel/chan.hpp"
#include "../scheduler.hpp"
#include "../parker.hpp"
#include "../unwind.hpp"

namespace goro::detail {

inline constexpr std::size_t kNoCase = static_cast<std::size_t>(-1);

// select_random() is a per-thread xorshift64*; only used between switches.
GORO_NOINLINE inline std::uint64_t select_random() noexcept {
  thread_local std::uint64_t state = 0;
  if (state == 0) state = static_cast<std::uint64_t>(now_ns()) * 0x9E3779B97F4A7C15ULL | 1;
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545F4914F6CDD1DULL;
}

// poll_random() draws the poll order: from the seeded generator in the
// deterministic schedule mode (so a seed replays selects too), else per thread.
inline std::uint64_t poll_random() noexcept {
  Runtime* rt = current_runtime();
  if (rt && rt->seeded() && current_worker()) {
    return std::uint64_t{rt->seeded_random()} << 32 | rt->seeded_random();
  }
  return select_random();
}

// Every case provides (see select.hpp; SelectCase forwards them):
//   ChanBase* channel()                    the lock to take, or null
//   Port* port()                           its channel side, a base of the case (see try_alone)
//   bool poll(WakeList&)                   lock held: complete now if possible
//   void enqueue(Ticket, SelectRecord*, i) lock held: park a waiter
//   void dequeue()                         lock held: remove that waiter
//   void finish()                          no lock: run the handler
//
// A case set is what select_commit() runs over:
//   static constexpr std::size_t kExtent   the case count, or std::dynamic_extent
//   std::size_t size()
//   std::size_t default_index()            kNoCase if there is none
//   std::size_t timeout_index()            kNoCase if there is none
//   std::int64_t deadline()                the timeout case's, or -1
//   for_each(f)                            f(case, i) for every case, in order
//   visit(i, f)                            f(case) for the i-th case
//   bool try_alone(i, wake, looked_ready)  pass 0's step for the i-th case
//   void finish(i)                         the i-th case's finish()
// A set checks its own misuse (two defaults, ...) before select_commit runs.

// try_alone<Port>(port, wake, looked_ready) is pass 0's step for one case,
// given its channel side, its "port" (RecvPort, SendPort or NoPort in
// select.hpp: channel(), maybe_ready() and poll(WakeList&)): if the case
// looks ready (a lock-free hint), it sets looked_ready and tries to complete
// the case under its own channel's lock alone; true if it did.
//
// Ports exist so that pass 0 can run the same code whichever case the
// random poll order drew: every recv case of one element type has the
// same port type, whatever its handler, and so has every send case of one
// (those that hold their value share another). When all of a select's
// cases share one port type, StaticCases indexes an array of ports instead
// of dispatching on the drawn index with a compare per case, a chain of
// branches the random order makes mispredict (performance.md, nineteenth
// round).
template <class Port>
GORO_ALWAYS_INLINE bool try_alone(void* p, WakeList& wake, bool& looked_ready) {
  Port& port = *static_cast<Port*>(p);
  if (!port.maybe_ready()) return false;
  looked_ready = true;
  std::lock_guard guard(port.channel()->lock);
  return port.poll(wake);
}

// kInlineCases: up to this many cases, a runtime-sized set keeps its poll
// order and lock set on the stack.
inline constexpr std::size_t kInlineCases = 64;

// ScratchArray<T, Extent>: per-call scratch of `n` Ts, uninitialized. A
// static extent is a plain std::array; a dynamic one is on the stack up to
// kInlineCases elements and on the heap beyond.
template <class T, std::size_t Extent>
class ScratchArray {
 public:
  explicit ScratchArray(std::size_t) noexcept {}
  T& operator[](std::size_t i) noexcept { return a_[i]; }
  T* data() noexcept { return a_.data(); }

 private:
  std::array<T, Extent> a_;
};

template <class T>
class ScratchArray<T, std::dynamic_extent> {
  static_assert(std::is_trivial_v<T>);

 public:
  explicit ScratchArray(std::size_t n) : data_(inline_) {
    if (n > kInlineCases) {
      heap_.reset(new T[n]);
      data_ = heap_.get();
    }
  }
  ScratchArray(const ScratchArray&) = delete;
  ScratchArray& operator=(const ScratchArray&) = delete;
  T& operator[](std::size_t i) noexcept { return data_[i]; }
  T* data() noexcept { return data_; }

 private:
  T inline_[kInlineCases];
  std::unique_ptr<T[]> heap_;
  T* data_;
};

// PollOrder: a uniformly random permutation of the n cases, drawn lazily
// (Fisher-Yates from the front): draw(k) fixes position k as a uniform pick
// among the cases not placed yet. Pass 0 draws each position just before it
// polls it, so a select whose first pick is ready draws one index, not n-1;
// when pass 0 fails it has drawn the whole permutation for pass 1.
//
// One 64-bit draw serves several steps: a step with `left` choices takes the
// high word of r * left as its pick and keeps the low word as the next r
// (Lemire's batched bounded integers), redrawing before the product of the
// bounds passes 2^32, so the bias stays below 2^-32. A select of up to 12
// cases draws once.
//
// The 64x64->128-bit product uses GCC's and clang's unsigned __int128, an
// extension: `__extension__` keeps -Wpedantic quiet about it in user code.
__extension__ typedef unsigned __int128 PollProduct;

template <std::size_t Extent>
class PollOrder {
 public:
  explicit PollOrder(std::size_t n) : order_(n), n_(n) {
    for (std::size_t i = 0; i < n; ++i) order_[i] = i;
  }
  PollOrder(const PollOrder&) = delete;
  PollOrder& operator=(const PollOrder&) = delete;

  // draw(k) requires positions 0..k-1 drawn; returns the case at position k.
  std::size_t draw(std::size_t k) noexcept {
    const std::size_t left = n_ - k;
    if (left > 1) {
      if (bounds_ * left > (std::uint64_t{1} << 32)) {
        r_ = poll_random();
        bounds_ = 1;
      }
      bounds_ *= left;
      const PollProduct m = static_cast<PollProduct>(r_) * left;
      std::swap(order_[k], order_[k + static_cast<std::size_t>(m >> 64)]);
      r_ = static_cast<std::uint64_t>(m);
    }
    return order_[k];
  }
  // operator[](k): the case at position k, once drawn.
  std::size_t operator[](std::size_t k) noexcept { return order_[k]; }

 private:
  ScratchArray<std::size_t, Extent> order_;
  std::size_t n_;
  std::uint64_t r_ = 0;
  std::uint64_t bounds_ = std::uint64_t{1} << 32;  // forces a draw first
};

// LockSet: the distinct channels of the cases in address order; lock() takes
// them in that order, unlock() releases them in reverse.
template <std::size_t Extent>
class LockSet {
 public:
  template <class Cases>
  explicit LockSet(Cases& cases) : locks_(cases.size()) {
    cases.for_each([&](auto& c, std::size_t) { add(c.channel()); });
    if constexpr (Extent == std::dynamic_extent) seal();
  }
  void lock() noexcept {
    for (std::size_t i = 0; i < count_; ++i) locks_[i]->lock.lock();
  }
  void unlock() noexcept {
    for (std::size_t i = count_; i-- > 0;) locks_[i]->lock.unlock();
  }

 private:
  // Up to this many channels, add() keeps locks_ sorted and free of
  // duplicates as they come (insertion: a select usually has a handful of
  // cases); a runtime-sized set appends the rest and seal() sorts them all.
  static constexpr std::size_t kInsertionLimit = 16;

  void add(ChanBase* c) noexcept {
    if (!c) return;
    if constexpr (Extent == std::dynamic_extent) {
      if (count_ >= kInsertionLimit) {
        locks_[count_++] = c;
        return;
      }
    }
    std::size_t i = count_;
    while (i > 0 && std::less<ChanBase*>{}(c, locks_[i - 1])) --i;
    if (i > 0 && locks_[i - 1] == c) return;
    for (std::size_t j = count_; j > i; --j) locks_[j] = locks_[j - 1];
    locks_[i] = c;
    ++count_;
  }
  void seal() noexcept {
    if (count_ <= kInsertionLimit) return;  // already sorted and deduplicated
    ChanBase** first = locks_.data();
    std::sort(first, first + count_, std::less<ChanBase*>{});
    count_ = static_cast<std::size_t>(std::unique(first, first + count_) - first);
  }

  ScratchArray<ChanBase*, Extent> locks_;
  std::size_t count_ = 0;
};

// StaticCases<Cs...>: the case set of the variadic select, its arguments.
// Each case is held by the address of its port (a base of the case, see
// try_alone), so pass 0 reads the drawn case's port from an array; the
// typed hooks cast back to the case. Everything but the deadline is known
// at compile time.
template <class... Cs>
class StaticCases {
  using Seq = std::index_sequence_for<Cs...>;
  template <std::size_t I>
  using Case = std::tuple_element_t<I, std::tuple<Cs...>>;
  template <std::size_t I>
  using Port = typename Case<I>::Port;
  static_assert((std::is_base_of_v<typename Cs::Port, Cs> && ...), "a case's port must be a base of the case");

  // find() is the index of the (only) default or timeout case, or kNoCase.
  template <std::size_t... I>
  static constexpr std::size_t find(bool want_default, std::index_sequence<I...>) {
    std::size_t found = kNoCase;
    (((want_default ? Case<I>::kIsDefault : Case<I>::kIsTimeout) ? (void)(found = I) : void()), ...);
    return found;
  }

 public:
  static constexpr std::size_t kExtent = sizeof...(Cs);

  explicit StaticCases(Cs&... cases) noexcept : ports_{static_cast<void*>(cases.port())...} {}

  static constexpr std::size_t size() noexcept { return kExtent; }
  static constexpr std::size_t default_index() noexcept { return find(true, Seq{}); }
  static constexpr std::size_t timeout_index() noexcept { return find(false, Seq{}); }
  std::int64_t deadline() noexcept {
    if constexpr (timeout_index() != kNoCase) return get<timeout_index()>().deadline();
    else return -1;
  }
  template <class F>
  void for_each(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(get<I>(), I), ...); }(Seq{});
  }
  template <class F>
  void visit(std::size_t i, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { ((i == I ? (void)f(get<I>()) : void()), ...); }(Seq{});
  }
  // When every case has the same port type (four recv cases of one T, say),
  // pass 0 runs try_alone on the drawn port, inlined, and the winner's
  // finish() is one indirect call through kFinish: no branch on the drawn
  // index. Cases of mixed kinds go through visit(), a compare per case: a
  // table of calls to their different try_alone functions measured 2-4%
  // slower for them.
  bool try_alone(std::size_t i, WakeList& wake, bool& looked_ready) {
    if constexpr (kOnePortType) {
      return detail::try_alone<Port<0>>(ports_[i], wake, looked_ready);
    } else {
      bool won = false;
      visit(i, [&](auto& c) { won = detail::try_alone<typename std::remove_reference_t<decltype(c)>::Port>(
                                  c.port(), wake, looked_ready); });
      return won;
    }
  }
  void finish(std::size_t i) {
    if constexpr (kOnePortType && kExtent > 1) {
      if (i < kExtent) kFinish[i](ports_[i]);  // as visit(): an index out of range reaches no case
    } else {
      visit(i, [](auto& c) { c.finish(); });
    }
  }

 private:
  // case_of<I>(port): the I-th case, given its port.
  template <std::size_t I>
  static Case<I>& case_of(void* port) noexcept {
    return *static_cast<Case<I>*>(static_cast<Port<I>*>(port));
  }
  template <std::size_t I>
  Case<I>& get() noexcept {
    return case_of<I>(ports_[I]);
  }
  template <std::size_t... I>
  static constexpr bool one_port_type(std::index_sequence<I...>) {
    return (std::is_same_v<Port<0>, Port<I>> && ...);
  }
  static constexpr bool kOnePortType = kExtent > 0 && one_port_type(Seq{});
  // kFinish[i](port) runs the i-th case's finish(), given its port.
  template <std::size_t... I>
  static constexpr std::array<void (*)(void*), kExtent> finish_table(std::index_sequence<I...>) {
    return {[](void* port) { case_of<I>(port).finish(); }...};
  }
  static constexpr std::array<void (*)(void*), kExtent> kFinish = finish_table(Seq{});

  std::array<void*, kExtent> ports_;
};

// select_block_forever(): `select {}`, a select with no case at all.
[[noreturn]] inline void select_block_forever() { park_forever("select (no cases)"); }

// poll_each_alone() is pass 0: drawing the poll order as it goes, the first
// case that looks ready and completes under its own channel's lock wins; its
// handler runs after that lock is released. Returns the winner, or kNoCase
// with the whole order drawn and `any_looked_ready` telling whether any case
// looked ready at all.
template <class Cases, class Order>
std::size_t poll_each_alone(Cases& cases, Order& order, bool& any_looked_ready) {
  WakeList wake;  // a failed poll adds nothing to it
  any_looked_ready = false;
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const std::size_t i = order.draw(k);
    if (cases.try_alone(i, wake, any_looked_ready)) {
      wake.flush();
      cases.finish(i);
      return i;
    }
  }
  return kNoCase;
}

// kSelectAgain: select_round()'s answer when the waker that chose a case
// could not move its value (T's move threw) and sent the select back.
inline constexpr std::size_t kSelectAgain = kNoCase - 1;

// poll_locked() is pass 1: with every lock held, the first case in poll
// order that can complete does so. Returns it, or kNoCase. If a poll throws
// (only what T's move throws), every lock is released before it propagates.
template <class Cases, class Order, class Locks>
std::size_t poll_locked(Cases& cases, Order& order, Locks& locks, WakeList& wake) {
  std::size_t winner = kNoCase;
  try {
    for (std::size_t k = 0; k < cases.size() && winner == kNoCase; ++k) {
      cases.visit(order[k], [&](auto& c) {
        if (c.poll(wake)) winner = order[k];
      });
    }
  } catch (...) {
    locks.unlock();
    throw;
  }
  return winner;
}

// select_round() runs the protocol above once over a case set and returns
// the index of the case that ran, or kSelectAgain.
template <class Cases>
std::size_t select_round(Cases& cases) {
  constexpr std::size_t Extent = Cases::kExtent;
  const std::size_t n = cases.size();
  const std::size_t default_index = cases.default_index();
  const std::size_t timeout_index = cases.timeout_index();

  // 1 and 2. Pass 0, one channel at a time, drawing the random poll order.
  PollOrder<Extent> order(n);
  bool any_looked_ready = false;
  if (std::size_t winner = poll_each_alone(cases, order, any_looked_ready); winner != kNoCase) {
    return winner;
  }

  // Non-blocking: nothing looked ready in pass 0, so default it is.
  if (default_index != kNoCase && !any_looked_ready) {
    cases.finish(default_index);
    return default_index;
  }

  // 3. Lock order, then pass 1.
  LockSet<Extent> locks(cases);
  std::size_t winner = kNoCase;
  {
    WakeList wake;  // flushed after the locks are released
    locks.lock();
    winner = poll_locked(cases, order, locks, wake);
    // 4. Default.
    if (winner == kNoCase && default_index != kNoCase) winner = default_index;
    if (winner != kNoCase) {
      locks.unlock();
      wake.flush();
      cases.finish(winner);
      return winner;
    }
  }

  // 5. Pass 2, still under the same locks: one ticket for all cases.
  const std::int64_t deadline = cases.deadline();
  Parker& self = Parker::current();
  SelectRecord record;
  const Parker::Ticket ticket =
      self.prepare(timeout_index != kNoCase ? "select (with timeout)" : "select");
  cases.for_each([&](auto& c, std::size_t i) { c.enqueue(ticket, &record, i); });
  locks.unlock();
  const WakeReason reason = deadline >= 0 ? self.park_until(deadline) : self.park();

  // 6. Pass 3: dequeue the waiters the winner's waker did not take.
  locks.lock();
  cases.for_each([](auto& c, std::size_t) { c.dequeue(); });
  locks.unlock();

  // 7. The winner's handler, no lock held.
  if (reason == WakeReason::unwind) throw FiberUnwind{};
  if (record.retry) return kSelectAgain;  // the waker's move threw: nothing ran
  winner = reason == WakeReason::timeout ? timeout_index : record.winner;
  cases.finish(winner);
  return winner;
}

// select_commit() runs the protocol above over a case set, as many rounds as
// it takes, and returns the index of the case that ran.
template <class Cases>
std::size_t select_commit(Cases& cases) {
  note_goro_use();  // a plain thread's select counts it for the deadlock detector, as a channel call does
  if constexpr (Cases::kExtent == 0) {
    select_block_forever();
  } else {
    if (Cases::kExtent == std::dynamic_extent && cases.size() == 0) select_block_forever();
    for (;;) {
      const std::size_t winner = select_round(cases);
      if (winner != kSelectAgain) return winner;
    }
  }
}

// select_static() is the variadic select's entry point.
template <class... Cs>
std::size_t select_static(Cs&... cases) {
  StaticCases<Cs...> set(cases...);
  return select_commit(set);
}

}  // namespace goro::detail
