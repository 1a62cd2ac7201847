// The Parker's scheduler side: parking and waking plain threads and fibers,
// registering plain threads with the deadlock detector, and leaving a wait
// once the runtime is stopping. Parker itself (the ticket protocol) is in
// ../parker.hpp; this part needs the Runtime, so it lives here.
//
// Part of the scheduler: included at the end of ../scheduler.hpp, which
// declares Runtime and states the invariants and lock order.
#pragma once

#include "../scheduler.hpp"

namespace goro::detail {

// threads_quiet() runs when the last active plain thread blocks or exits: if
// every worker is already idle, that may have completed a deadlock.
inline void threads_quiet() noexcept {
  std::lock_guard guard(g_runtime_entry);
  if (Runtime* rt = current_runtime()) rt->recheck_deadlock();
}

struct ThreadParker {
  Parker parker{nullptr};
  ThreadParker() noexcept { g_active_threads.fetch_add(1, std::memory_order_seq_cst); }
  ~ThreadParker() {
    if (g_active_threads.fetch_sub(1, std::memory_order_seq_cst) == 1) threads_quiet();
  }
};

GORO_NOINLINE inline Parker& thread_parker() noexcept {
  thread_local ThreadParker parker;
  return parker.parker;
}

inline WakeReason Parker::park_thread(std::int64_t deadline_ns) {
  // An untimed wait of a plain thread takes it out of the active count once;
  // its one unparker puts it back once. A timed wait keeps it counted, as a
  // pending timer keeps a fiber's timed wait from looking like a deadlock:
  // the thread will move again by itself. Its unparker still adds one, which
  // woke() takes back.
  const bool timed = deadline_ns >= 0;
  if (!timed && g_active_threads.fetch_sub(1, std::memory_order_seq_cst) == 1) threads_quiet();
  auto woke = [&] {
    if (timed) g_active_threads.fetch_sub(1, std::memory_order_seq_cst);  // never the last: we count
    return last_reason();
  };
  if (permit_.exchange(0, std::memory_order_acquire) == 1) return woke();
  bool timed_out = false;
  for (;;) {
    if (deadline_ns >= 0 && !timed_out) {
      std::int64_t left = deadline_ns - now_ns();
      if (left <= 0) {
        timed_out = true;
        // Self-claim; if it fails a waker won and its permit is on the way.
        std::uint64_t tok = token_.load(std::memory_order_acquire);
        if ((tok & 0xff) == 0 && claim(Ticket{this, tok >> 8}, WakeReason::timeout)) {
          return WakeReason::timeout;  // no unparker: the count is as it was
        }
        continue;
      }
      futex_wait(&permit_, 0, left);
    } else {
      futex_wait(&permit_, 0);
    }
    if (permit_.exchange(0, std::memory_order_acquire) == 1) return woke();
  }
}

// note_goro_use() makes a plain thread visible to the deadlock detector from
// its first goro call on (workers are goro's own and are not counted). After
// the first call it is one thread-local load and a branch: Mutex's
// uncontended lock pays it on every call.
GORO_NOINLINE inline void register_thread() noexcept {
  if (!current_worker()) thread_parker();
  thread_state().registered = true;
}

inline void note_goro_use() noexcept {
  if (!t_thread_state.registered) register_thread();
}

// yield_to_peer() lets another fiber or thread finish a step that never
// blocks and that the caller must wait out (a WaitGroup's waker between its
// last two writes): it yields the fiber, never throwing the unwind, or the
// plain thread.
inline void yield_to_peer() noexcept {
  if (Fiber* self = current_fiber()) {
    current_runtime()->yield_current(self);
  } else {
    std::this_thread::yield();
  }
}

inline Parker& Parker::current() {
  if (Fiber* f = current_fiber()) return f->parker;
  return thread_parker();
}

// warn_unwind_in_destructor() explains, before it happens, the
// std::terminate that follows when the unwind exception is about to leave a
// blocking call made inside a destructor (the exception cannot leave it).
// The unwinder claims such a wait only once nothing is left that could end
// it (Runtime::unwind_all).
GORO_NOINLINE inline void warn_unwind_in_destructor(const Fiber* f, const char* what) noexcept {
  std::fprintf(stderr,
               "goro: fiber %llu blocked (%s) in a destructor while the runtime unwinds its fibers (main "
               "returned, or run() is stopping), and nothing can wake it: every other fiber is blocked as "
               "well, and no timer or thread is left to move. The unwind exception cannot leave a "
               "destructor, so the program ends (std::terminate). A destructor may block during shutdown "
               "only on what other fibers' unwinding still does (docs/runtime.md).\n",
               static_cast<unsigned long long>(f->id), what ? what : "wait");
}



inline WakeReason Parker::park(ParkCommit commit) {
  if (!fiber_) {
    commit();
    return park_thread(-1);
  }
  Runtime* rt = current_runtime();
  if (rt->stopping()) [[unlikely]] return park_while_stopping(rt, commit);
  rt->park_current(fiber_, commit);
  // The unwinder may be about to lock this wait's claim lock (unwind_all):
  // while it runs, no fiber leaves a wait before the unwinder let go of it.
  AsymmetricFence::light();
  if (rt->stopping()) [[unlikely]] return leave_wait_while_stopping(rt);
  return last_reason();
}

// park_forever() blocks the caller on `what` until the runtime unwinds it
// (a nil channel, `select {}`), and throws FiberUnwind then.
[[noreturn]] inline void park_forever(const char* what) {
  Parker& self = Parker::current();
  self.prepare(what);
  self.park();  // only the unwinder can claim it
  throw FiberUnwind{};
}

GORO_NOINLINE inline WakeReason Parker::park_while_stopping(Runtime* rt, ParkCommit commit) noexcept {
  // A destructor's wait, or a mutex re-locked on the way out, may still
  // complete: other fibers' destructors run too. A spawner is unwound only
  // after the fibers it spawned, which may refer to its frame. The unwinder
  // decides when these end (Runtime::unwind_all).
  const bool left_to_unwinder = std::uncaught_exceptions() > 0 || stop_rule() == StopRule::relock ||
                                rt->may_have_spawned_live(*fiber_);
  if (left_to_unwinder && !rt->unwind_stuck()) {
    rt->park_current(fiber_, commit);
    return leave_wait_while_stopping(rt);
  }
  // Every other wait ends here: close it ourselves; if a waker won instead,
  // park to consume its unpark.
  Ticket t;
  if (open_ticket(t) && claim(t, WakeReason::unwind)) {
    commit();
    return leave_wait_while_stopping(rt);
  }
  rt->park_current(fiber_, commit);
  return leave_wait_while_stopping(rt);
}

// An unwound wait inside a destructor is one the unwinder gave up on
// (unwind_stuck(): every wait left was such a one), whether it began before
// the runtime started stopping or after.
GORO_NOINLINE inline WakeReason Parker::leave_wait_while_stopping(Runtime* rt) noexcept {
  rt->wait_out_unwinder(fiber_);
  WakeReason reason = last_reason();
  if (reason == WakeReason::unwind && std::uncaught_exceptions() > 0 && stop_rule() == StopRule::unwind) {
    warn_unwind_in_destructor(fiber_, waiting_on());
  }
  return reason;
}

inline WakeReason Parker::park_until(std::int64_t deadline_ns) {
  if (!fiber_) return park_thread(deadline_ns);
  TimerNode node;
  node.when = deadline_ns;
  node.expire = &expire_ticket;
  if (!open_ticket(node.ticket)) return park();  // already claimed: consume it
  if (timers().add(&node)) current_runtime()->timer_added();
  WakeReason reason = park();
  if (reason != WakeReason::timeout) timers().remove(&node);
  return reason;
}

inline void Parker::unpark() noexcept {
  if (!fiber_) {
    g_active_threads.fetch_add(1, std::memory_order_seq_cst);
    permit_.store(1, std::memory_order_release);
    futex_wake(&permit_);
    return;
  }
  Fiber* f = fiber_;
  if (publish_ == Publish::after_switch) {
    // Found through a structure the fiber published only after switching
    // away, so it is parked; only the unwinder, which finds tickets without
    // those locks, can get here first and wait out the switch.
    for (int spins = 0; f->state.load(std::memory_order_acquire) != FiberState::parked; ++spins) {
      if (spins < 64) GORO_CPU_RELAX(); else std::this_thread::yield();
    }
  } else if (f->state.exchange(FiberState::notified, std::memory_order_acq_rel) !=
             FiberState::parked) {
    return;  // the fiber has not switched away yet: its switch will requeue it
  }
  f->state.store(FiberState::running, std::memory_order_relaxed);
  if (Worker* w = current_worker()) {
    w->rt->make_runnable(f, w);
  } else {
    std::lock_guard guard(g_runtime_entry);  // see g_runtime_entry
    current_runtime()->make_runnable(f);
  }
}

}  // namespace goro::detail
