// The worker loop and switching: a worker's root context, landing after a
// switch (the Handoff in ../scheduler.hpp), parking, yielding and exiting
// the current fiber, and a fiber's entry point.
//
// Part of the scheduler: included at the end of ../scheduler.hpp, which
// declares Runtime and states the invariants and lock order.
#pragma once

#include "../scheduler.hpp"

namespace goro::detail {

inline void Runtime::worker_main(Worker* w) noexcept {
  thread_state().worker = w;
  thread_state().registered = true;
  w->root.adopt_thread();
  w->thread_switch_state = ThreadSwitchState::of_this_thread();
  w->alt_stack.install();
  while (!quit_.load(std::memory_order_acquire)) {
    Fiber* f = find_local(w);
    if (!f) f = spin_for_work(w);
    if (f) {
      if (w->spinning) {
        stop_spinning(w);
        wake_idle_worker();  // we were the last spinner: there may be more work
      }
      run_fiber_from_root(w, f);
      continue;
    }
    go_idle(w);
  }
  stop_spinning(w);
  if (w->exited) unregister_exited(w);
  w->alt_stack.remove();
  thread_state().worker = nullptr;
  thread_state().registered = false;
}

inline void Runtime::run_fiber_from_root(Worker* w, Fiber* f) noexcept {
  about_to_run(w, f);
  Handoff h{&w->root, nullptr, SwitchAction::none, w, {}};
  land(switch_context(w->thread_switch_state, w->root, f->ctx, &h));
}

// land() finishes a switch on the context that was switched to.
inline void Runtime::land(fctx::transfer_t t) noexcept {
  Handoff h = *static_cast<Handoff*>(t.data);  // copy: it lives on the left stack
  h.from->fctx = t.fctx;
  if (h.fiber && h.action != SwitchAction::exit && h.fiber->stack.overflowed(t.fctx)) {
    report_overflow_and_die(h.fiber->id, h.fiber->stack.size,
                            h.fiber->stack.guarded ? OverflowSeen::guard_page : OverflowSeen::switch_below_stack);
  }
  Worker* w = h.worker;
  switch (h.action) {
    case SwitchAction::none:
      break;
    case SwitchAction::park:
      if (h.commit) {  // Publish::after_switch: no waker can have come yet
        h.fiber->state.store(FiberState::parked, std::memory_order_release);
        h.commit();
        if (w->timers_deferred) [[unlikely]] {
          w->timers_deferred = false;
          timers().run_due(now_ns());
        }
      } else if (h.fiber->state.exchange(FiberState::parked, std::memory_order_acq_rel) ==
                 FiberState::notified) {
        h.fiber->state.store(FiberState::running, std::memory_order_relaxed);
        requeue(w, h.fiber);
      }
      break;
    case SwitchAction::yield:
      // Behind everything queued here (Go's Gosched uses the global queue;
      // the local ring's tail is as fair to this worker's fibers and needs
      // no lock; the global queue is still polled every 64 rounds).
      requeue(w, h.fiber);
      break;
    case SwitchAction::exit:
      release_fiber(w, h.fiber);
      break;
  }
}

// switch_away() leaves `self` (running on this worker) for the next runnable
// fiber, or the worker's root if there is none, and returns when `self` is
// resumed (unless action is exit). With a `commit` (park only), `self` still
// holds a lock its wakers need: until the commit runs on the other side, this
// path takes only leaf locks (the global run queue's) and fires no timers.
inline void Runtime::switch_away(Fiber* self, SwitchAction action, ParkCommit commit) noexcept {
  Worker* w = self->worker;
  self->last_worker = w->index;
  Fiber* next = find_local(w, !commit);  // stealing is the root's job: see spin_for_work
  w->current = next;
  if (next) about_to_run(w, next);
  ExecutionContext& to = next ? next->ctx : w->root;
  Handoff h{&self->ctx, self, action, w, commit};
  land(switch_context(w->thread_switch_state, self->ctx, to, &h,
                      action == SwitchAction::exit));
}

inline void Runtime::park_current(Fiber* self, ParkCommit commit) noexcept {
  if (commit) {
    switch_away(self, SwitchAction::park, commit);
    return;  // the waker set the state back to running
  }
  if (self->state.load(std::memory_order_acquire) == FiberState::notified) {
    self->state.store(FiberState::running, std::memory_order_relaxed);
    return;  // woken before we got to sleep
  }
  switch_away(self, SwitchAction::park);
  self->state.store(FiberState::running, std::memory_order_relaxed);
}

inline void Runtime::yield_current(Fiber* self) noexcept {
  Worker* w = self->worker;
  if (special_mode_) {
    switch_away(self, SwitchAction::yield);
    return;
  }
  if (w->runq.empty() && global_.empty() && !w->runnext.load(std::memory_order_relaxed)) {
    if (!timers().empty()) timers().run_due(now_ns());
    if (w->runq.empty() && global_.empty() && !w->runnext.load(std::memory_order_relaxed))
      return;  // nothing else to run here
  }
  switch_away(self, SwitchAction::yield);
}

inline void Runtime::exit_current(Fiber* self) noexcept {
  switch_away(self, SwitchAction::exit);
  __builtin_unreachable();
}

inline void Runtime::fiber_entry(fctx::transfer_t t) noexcept {
  Fiber* self = current_fiber();
  finish_switch(self->ctx);
  Runtime* rt = current_runtime();
  rt->land(t);
  std::exception_ptr failure;
  try {
    self->invoke(self->callable);
  } catch (const FiberUnwind&) {
  } catch (...) {
    failure = std::current_exception();
  }
  self->destroy(self->callable, self->callable_on_heap);
  if (self->is_main) {
    rt->main_finished(std::move(failure));
  } else if (failure) {
    rt->fail(std::move(failure));
  }
  failure = nullptr;
  rt->exit_current(self);
}

}  // namespace goro::detail
