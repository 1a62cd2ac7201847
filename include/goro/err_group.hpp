// goro::ErrGroup: Go's golang.org/x/sync/errgroup. A WaitGroup whose
// functions can fail, with the first failure reported by wait(), and an
// optional Context cancelled on that failure.
//
//   auto [group, ctx] = goro::ErrGroup::with_context(parent);
//   for (auto& url : urls) group.go([ctx = ctx, url] { return fetch(ctx, url); });
//   if (std::error_code e = group.wait()) ...;   // or wait() rethrows
//
// Design. An ErrGroup is a handle on shared state (copies name the same
// group), so the functions it runs keep the state alive even if the handle
// that started them is gone. The first failure (an exception, or a non-zero
// std::error_code returned) is recorded under `lock`; later ones are dropped,
// as in Go. set_limit() puts a Semaphore in front of go(); `active` counts
// every go() and try_go() from before it takes a slot until its function
// ends, so set_limit() never swaps the Semaphore while a slot is held.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

#include "context.hpp"
#include "detail/spin_lock.hpp"
#include "detail/unwind.hpp"
#include "runtime.hpp"
#include "semaphore.hpp"
#include "wait_group.hpp"

namespace goro {

// ErrGroup runs functions on fibers and waits for them all, keeping the
// first failure. Functions return void or std::error_code; a thrown
// exception is a failure too.
//
// Thread-safety: every member is safe from any fiber or thread; copies share
// one group. Misuse (set_limit() while functions run, or while a go() waits
// for a slot) throws std::logic_error.
class ErrGroup {
 public:
  // ErrGroup() is an empty group with no context and no limit.
  ErrGroup();
  // Copies name the same group. A move copies too, so a moved-from handle
  // still names its group: no handle is ever empty.
  ErrGroup(const ErrGroup&) = default;
  ErrGroup& operator=(const ErrGroup&) = default;

  // with_context() returns a group and a child of `parent` that is cancelled
  // when a function of the group first fails, or when wait() returns. The
  // first failure is the context's cause (goro::cause(ctx)): the exception
  // itself, or a std::system_error holding the error_code.
  static std::pair<ErrGroup, Context> with_context(const Context& parent);

  // go() runs f on a new fiber. With a limit set, it first blocks until
  // fewer than the limit of the group's functions are running (parking the
  // caller).
  template <class F>
  void go(F&& f);
  // try_go() is go() that never blocks: false, without running f, if the
  // limit is reached.
  template <class F>
  bool try_go(F&& f);

  // wait() blocks until every function started so far has returned, then
  // rethrows the first failure if it was an exception, or returns the first
  // error_code failure, or {} if nothing failed.
  std::error_code wait();

  // set_limit() bounds how many functions may run at once; negative means no
  // limit, 0 makes go() block for good (and try_go() fail), as in Go. Throws
  // std::logic_error, changing nothing, if functions of the group are
  // running or a go() or try_go() has not returned yet: a go() blocked
  // waiting for a slot counts (Go panics there too). A go() blocked by a
  // limit of 0 does not: it stays blocked, as in Go.
  void set_limit(std::ptrdiff_t n);

 private:
  struct State {
    WaitGroup running;
    // go()/try_go() calls and functions, from before a slot is taken until
    // the function ends; raised only under `lock`, so that set_limit() sees
    // every one that read the old limit.
    std::atomic<std::int64_t> active{0};
    detail::SpinLock lock;
    bool failed = false;           // guarded by lock
    std::exception_ptr exception;  // the first failure, if it was an exception; guarded by lock
    std::error_code error;         // the first failure, if it was an error_code; guarded by lock
    CancelCauseFunc cancel;        // with_context's; set before any function runs
    std::ptrdiff_t limit = -1;              // guarded by lock; changed only while active == 0
    std::shared_ptr<Semaphore> slots;       // guarded by lock; null: no limit (or limit 0)

    // enter() counts a go() or try_go() in `active` and hands it the
    // Semaphore to take its slot from (null: no limit), both under `lock`;
    // false, counting nothing, if the limit is 0.
    bool enter(std::shared_ptr<Semaphore>& sem) {
      std::lock_guard guard(lock);
      if (limit == 0) return false;
      sem = slots;
      active.fetch_add(1, std::memory_order_relaxed);
      return true;
    }
    // leave() undoes enter(), after releasing the slot if one was taken.
    void leave(Semaphore* taken) {
      if (taken) taken->release();
      active.fetch_sub(1, std::memory_order_release);
    }

    void fail(std::exception_ptr e, std::error_code ec) {
      {
        std::lock_guard guard(lock);
        if (failed) return;
        failed = true;
        exception = e;
        error = ec;
      }
      if (e) cancel(std::move(e));
      else cancel(ec);
    }
  };

  // start() runs f; the caller did enter() and took its slot from `sem`.
  template <class F>
  void start(F&& f, std::shared_ptr<Semaphore> sem);

  std::shared_ptr<State> state_;
};

// ---------------------------------------------------------------------------

inline ErrGroup::ErrGroup() : state_(std::make_shared<State>()) {}

inline std::pair<ErrGroup, Context> ErrGroup::with_context(const Context& parent) {
  auto [ctx, cancel] = with_cancel_cause(parent);
  ErrGroup group;
  group.state_->cancel = std::move(cancel);
  return {std::move(group), std::move(ctx)};
}

inline void ErrGroup::set_limit(std::ptrdiff_t n) {
  detail::note_goro_use();
  State& s = *state_;
  // Allocated, and the old one freed, outside the lock.
  std::shared_ptr<Semaphore> slots =
      n > 0 ? std::make_shared<Semaphore>(n) : nullptr;
  std::int64_t active;
  {
    std::lock_guard guard(s.lock);
    active = s.active.load(std::memory_order_acquire);
    if (active == 0) {
      s.limit = n < 0 ? -1 : n;
      s.slots.swap(slots);
    }
  }
  if (active != 0) {
    throw std::logic_error("goro::ErrGroup: set_limit() while " + std::to_string(active) +
                           " functions of the group are still running or waiting to start");
  }
}

template <class F>
void ErrGroup::go(F&& f) {
  State& s = *state_;
  std::shared_ptr<Semaphore> slots;
  if (!s.enter(slots)) {
    // Go's SetLimit(0): no function may ever start. Block like Go does (the
    // deadlock detector names this wait), until the runtime unwinds us.
    detail::Parker& self = detail::Parker::current();
    self.prepare("errgroup.Group.Go (limit 0)");
    self.park();
    throw detail::FiberUnwind{};
  }
  if (slots) {
    try {
      slots->acquire();
    } catch (...) {  // unwound while waiting: we hold no slot
      s.leave(nullptr);
      throw;
    }
  }
  start(std::forward<F>(f), std::move(slots));
}

template <class F>
bool ErrGroup::try_go(F&& f) {
  State& s = *state_;
  std::shared_ptr<Semaphore> slots;
  if (!s.enter(slots)) return false;
  if (slots && !slots->try_acquire()) {  // try_acquire(1) cannot throw
    s.leave(nullptr);
    return false;
  }
  start(std::forward<F>(f), std::move(slots));
  return true;
}

template <class F>
void ErrGroup::start(F&& f, std::shared_ptr<Semaphore> sem) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_invocable_v<Fn>,
                "goro::ErrGroup::go: f must be callable with no arguments (as an rvalue copy, as with goro::go)");
  using Result = std::invoke_result_t<Fn>;
  static_assert(std::is_void_v<Result> || std::is_same_v<Result, std::error_code>,
                "goro::ErrGroup::go: f must return void or std::error_code");
  State& s = *state_;
  try {
    s.running.add(1);
  } catch (...) {
    s.leave(sem.get());
    throw;
  }
  // Finish runs when f's fiber lets go of it, however f ended (unwinding
  // included), or when goro::go() throws and the callable is dropped: it
  // frees the slot, to the Semaphore it was taken from, then counts f out.
  // Move-only, so exactly one copy acts.
  struct Finish {
    std::shared_ptr<State> state;
    std::shared_ptr<Semaphore> sem;
    Finish(std::shared_ptr<State> st, std::shared_ptr<Semaphore> se) noexcept
        : state(std::move(st)), sem(std::move(se)) {}
    Finish(Finish&& other) noexcept = default;  // leaves `other` empty
    Finish(const Finish&) = delete;
    ~Finish() {
      if (!state) return;
      state->leave(sem.get());
      state->running.done();
    }
  };
  // Task holds `finish` before `fn`, so f's copy, with everything it
  // captured, is destroyed before the slot is freed and wait() can return.
  // (A struct, not a lambda: the order of a closure's captures is
  // unspecified.)
  struct Task {
    Finish finish;
    Fn fn;
    void operator()() {
      State& st = *finish.state;
      try {
        if constexpr (std::is_void_v<Result>) {
          std::invoke(std::move(fn));
        } else {
          if (std::error_code e = std::invoke(std::move(fn))) st.fail(nullptr, e);
        }
      } catch (const detail::FiberUnwind&) {
        throw;  // the runtime is stopping this fiber: not a failure of f
      } catch (...) {
        st.fail(std::current_exception(), {});
      }
    }
  };
  goro::go(Task{Finish(state_, std::move(sem)), Fn(std::forward<F>(f))});
}

inline std::error_code ErrGroup::wait() {
  State& s = *state_;
  s.running.wait();
  s.cancel();  // Go cancels the group's context when Wait returns
  std::lock_guard guard(s.lock);
  if (s.exception) std::rethrow_exception(s.exception);
  return s.error;
}

}  // namespace goro
