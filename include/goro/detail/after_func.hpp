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
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "scheduler.hpp"

namespace goro::detail {

class CancelNode;

struct AfterFuncEntry {
  enum class State : std::uint8_t { pending, started, stopped, released };

  explicit AfterFuncEntry(std::function<void()> f) noexcept : fn(std::move(f)) {}

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
        if (s == State::pending) fn = nullptr;  // ours now; a released entry has none
        return true;
      }
    }
    return false;
  }

  std::atomic<State> state{State::pending};
  std::function<void()> fn;  // owned by whoever moved `state` out of pending
  std::weak_ptr<CancelNode> owner;

  // Links in owner's list and the list's reference, guarded by owner's lock.
  AfterFuncEntry* prev = nullptr;
  AfterFuncEntry* next = nullptr;
  std::shared_ptr<AfterFuncEntry> self;
};

// spawn_after_func() starts `task` as a fiber of the running runtime, if
// there is one that is not shutting down (a fiber spawned then might never
// run). Off the runtime's workers, g_runtime_entry keeps the runtime from
// being destroyed between the check and the spawn.
inline bool spawn_after_func(const std::shared_ptr<std::function<void()>>& task) {
  auto body = [task] { (*task)(); };
  if (Worker* w = current_worker()) {  // a worker's runtime lives while it runs
    if (w->rt->stopping()) return false;
    w->rt->spawn(body);
    return true;
  }
  std::lock_guard guard(g_runtime_entry);
  Runtime* rt = current_runtime();
  if (!rt || rt->stopping()) return false;
  rt->spawn(body);
  return true;
}

// launch_after_func() runs `f` in its own fiber, else its own thread, else
// (out of memory or threads) right here. noexcept: it runs inside cancel().
inline void launch_after_func(std::function<void()>&& f) noexcept {
  std::shared_ptr<std::function<void()>> task;
  try {
    task = std::make_shared<std::function<void()>>(std::move(f));
    if (spawn_after_func(task)) return;
    std::thread([task] { (*task)(); }).detach();
    return;
  } catch (...) {
  }
  if (task) (*task)(); else f();  // make_shared failed before moving f
}

}  // namespace goro::detail
