// The machinery behind goro::after_func (Go's context.AfterFunc).
//
// Registration. after_func() puts an AfterFuncEntry on the intrusive list of
// the context's canceller (a CancelNode, cancel_tree.hpp). While linked, the
// entry holds a reference to itself (`self`), which is the list's reference:
// the node never keeps an entry alive through a shared_ptr member, and the
// entry only holds a weak_ptr to the node, so a registration never keeps its
// context alive. The StopFunc holds the other reference.
//
// State. Exactly one party moves `state` out of `pending`, and only that
// party touches `fn` afterwards:
//   pending -> started   the context was cancelled: the canceller launches fn;
//   pending -> stopped   stop() won: fn is dropped, stop() returns true;
//   pending -> released  the context was destroyed uncancelled: fn is dropped
//                        at once (it can never run), and a later stop() still
//                        returns true, moving released -> stopped.
//
// Launching. f runs in a new fiber when a runtime is running (from any
// thread: the canceller may be a plain thread or goro's timer thread), else
// on a new detached std::thread. It never runs on the canceller itself,
// except as a last resort when neither a fiber nor a thread can be created:
// cancel() must not fail half-way through a tree because memory ran out.
//
// The function is held as an AfterFuncTask, a move-only erasure (C++23's
// std::move_only_function, which C++20 lacks), so f may own what it
// captures (a std::unique_ptr, a socket) as Go's closures do.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

#include "scheduler.hpp"

namespace goro::detail {

class CancelNode;

// AfterFuncTask holds one void() callable, move-only; calling it calls the
// callable once, as an rvalue. Not thread-safe: one owner at a time.
class AfterFuncTask {
 public:
  AfterFuncTask() noexcept = default;
  template <class F>
    requires(!std::is_same_v<std::decay_t<F>, AfterFuncTask>)
  explicit AfterFuncTask(F&& f) : held_(std::make_unique<Held<std::decay_t<F>>>(std::forward<F>(f))) {}

  explicit operator bool() const noexcept { return held_ != nullptr; }
  void operator()() { held_->run(); }
  // reset() destroys the callable now.
  void reset() noexcept { held_.reset(); }

 private:
  struct Base {
    virtual ~Base() = default;
    virtual void run() = 0;
  };
  template <class F>
  struct Held final : Base {
    template <class G>
    explicit Held(G&& g) : f(std::forward<G>(g)) {}
    void run() override { std::invoke(std::move(f)); }
    F f;
  };
  std::unique_ptr<Base> held_;
};

struct AfterFuncEntry {
  enum class State : std::uint8_t { pending, started, stopped, released };

  explicit AfterFuncEntry(AfterFuncTask f) noexcept : fn(std::move(f)) {}

  // claim() moves pending -> `to`; true if this caller now owns `fn`.
  bool claim(State to) noexcept {
    State expected = State::pending;
    return state.compare_exchange_strong(expected, to, std::memory_order_acq_rel);
  }
  // claim_stop() is stop()'s transition: true from pending or released.
  bool claim_stop() noexcept {
    State s = state.load(std::memory_order_acquire);
    while (s == State::pending || s == State::released) {
      if (state.compare_exchange_weak(s, State::stopped, std::memory_order_acq_rel)) {
        if (s == State::pending) fn.reset();  // ours now; a released entry has none
        return true;
      }
    }
    return false;
  }

  std::atomic<State> state{State::pending};
  AfterFuncTask fn;  // owned by whoever moved `state` out of pending
  std::weak_ptr<CancelNode> owner;

  // Links in owner's list and the list's reference, guarded by owner's lock.
  AfterFuncEntry* prev = nullptr;
  AfterFuncEntry* next = nullptr;
  std::shared_ptr<AfterFuncEntry> self;
};

// launch_after_func() runs `f` in its own fiber when a runtime is running
// and not shutting down (a fiber spawned then might never run), else in its
// own thread, else (out of memory or threads) right here. A failed spawn
// leaves `f` where it was. noexcept: it runs inside cancel().
inline void launch_after_func(AfterFuncTask&& f) noexcept {
  auto body = [task = std::move(f)]() mutable { task(); };
  std::shared_ptr<decltype(body)> shared;
  try {
    if (Worker* w = current_worker()) {  // a worker's runtime lives while it runs
      if (!w->rt->stopping()) {
        w->rt->spawn(std::move(body));
        return;
      }
    } else {
      auto spawn = [&](Runtime* rt) { rt->spawn(std::move(body)); };
      if (spawn_from_outside(/*join_deadlock_count=*/false, spawn) == OutsideSpawn::spawned) return;
    }
    // A thread that fails to start destroys what it was given: it gets a
    // reference, so the task survives for the last resort below.
    shared = std::make_shared<decltype(body)>(std::move(body));
    std::thread([shared] { (*shared)(); }).detach();
    return;
  } catch (...) {
  }
  if (shared) (*shared)(); else body();  // make_shared failed before moving body
}

}  // namespace goro::detail
