// Making fibers runnable and waking workers: runnext, the local ring, the
// global queue, and the idle or spinning worker that must see the new work
// (the no-lost-wake-up argument is in ../scheduler.hpp, "Spinning and idling").
//
// Part of the scheduler: included at the end of ../scheduler.hpp, which
// declares Runtime and states the invariants and lock order.
#pragma once

#include "../scheduler.hpp"

namespace goro::detail {

inline void Runtime::make_runnable(Fiber* f) noexcept { make_runnable(f, current_worker()); }

// The common case, a fiber waking another on its own worker with runnext
// empty, is inline: the rest needs a frame of saved registers (about 14
// instructions per wake-up on ping-pong's path).
GORO_ALWAYS_INLINE void Runtime::make_runnable(Fiber* f, Worker* w) noexcept {
  if (w && w->rt == this && !special_mode_ && w->current &&
      !w->runnext.load(std::memory_order_relaxed)) {
    // Only this worker fills its runnext (thieves only empty it), so an
    // empty slot stays empty until this store: no exchange needed.
    w->runnext.store(f, std::memory_order_release);
    return;  // it will run here on the next switch
  }
  make_runnable_queued(f, w);
}

GORO_NOINLINE inline void Runtime::make_runnable_queued(Fiber* f, Worker* w) noexcept {
  if (special_mode_ && w && w->rt == this && seeded()) [[unlikely]] {
    w->seeded.push_back(f);
    return;
  }
  if (w && w->rt == this && !special_mode_) {
    if (w->current) {  // runnext is taken (make_runnable): kick its fiber to the ring
      Fiber* kicked = nullptr;
      {
        StealGate::OwnerSection section(w->runnext_gate);
        kicked = w->runnext.load(std::memory_order_relaxed);
        w->runnext.store(f, std::memory_order_release);
      }
      if (!kicked) return;  // a thief emptied the slot meanwhile
      // A kicked fiber that never ran (a spawn's sibling) may be taken back
      // newest-first; see run_queue.hpp.
      w->runq.push(kicked, global_, /*lifo=*/!kicked->started());
    } else {
      w->runq.push(f, global_);
    }
  } else {
    global_.push(f);
  }
  wake_idle_worker();
}

// wake_idle_worker() hands work to an idle worker unless one is already
// spinning or none is idle, the two checks every queued wake-up makes inline.
GORO_ALWAYS_INLINE void Runtime::wake_idle_worker() noexcept {
  if (n_spinning_.load(std::memory_order_seq_cst) != 0) return;
  if (n_idle_.load(std::memory_order_seq_cst) == 0) return;
  wake_idle_worker_slow();
}

GORO_NOINLINE inline void Runtime::wake_idle_worker_slow() noexcept {
  std::uint32_t zero = 0;
  if (!n_spinning_.compare_exchange_strong(zero, 1, std::memory_order_seq_cst)) return;
  Worker* w = nullptr;
  {
    std::lock_guard guard(idle_mutex_);
    w = idle_head_;
    if (w) {
      idle_head_ = w->next_idle;
      w->idle = false;
      w->spinning = true;  // it inherits our n_spinning_ increment
      n_idle_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }
  if (!w) {
    n_spinning_.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  w->wake_word.store(1, std::memory_order_release);
  futex_wake(&w->wake_word);
}

inline void Runtime::timer_added() noexcept {
  // An idle worker may be sleeping past the new earliest deadline.
  if (n_idle_.load(std::memory_order_seq_cst) == 0) return;
  Worker* w = nullptr;
  {
    std::lock_guard guard(idle_mutex_);
    w = idle_head_;
  }
  if (w) {
    w->wake_word.store(1, std::memory_order_release);
    futex_wake(&w->wake_word);
  }
}

}  // namespace goro::detail
