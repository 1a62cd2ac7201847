// Finding work: the worker's own queues (with the deterministic and
// migration debug modes), the global queue, patient stealing, spinning,
// going idle, and the deadlock check made by the last worker to go idle.
//
// Part of the scheduler: included at the end of ../scheduler.hpp, which
// declares Runtime and states the invariants and lock order.
#pragma once

#include "../scheduler.hpp"

namespace goro::detail {

// requeue() puts a fiber that was woken while it parked back to run here.
inline void Runtime::requeue(Worker* w, Fiber* f) noexcept {
  if (!special_mode_) [[likely]] {
    w->runq.push(f, global_);
  } else if (seeded()) {
    w->seeded.push_back(f);
  } else {
    global_.push(f);
    wake_idle_worker();
  }
}

// pick_seeded() is the deterministic mode's scheduler: one worker, and the
// next fiber is drawn from all runnable ones by the seeded generator, so a
// seed names one interleaving and replays it.
inline Fiber* Runtime::pick_seeded(Worker* w) noexcept {
  while (Fiber* f = global_.pop()) w->seeded.push_back(f);  // from plain threads, timers
  if (w->seeded.empty()) return nullptr;
  std::size_t i = w->next_random() % w->seeded.size();
  Fiber* f = w->seeded[i];
  w->seeded[i] = w->seeded.back();
  w->seeded.pop_back();
  if (trace_.size() < kMaxScheduleTrace) trace_.push_back(f->id);
  return f;
}

// pick_migrating() serves the forced-migration mode: every runnable fiber
// is in the global queue, and a worker never resumes one that left it.
inline Fiber* Runtime::pick_migrating(Worker* w) noexcept {
  for (std::size_t tries = global_.size(); tries > 0; --tries) {
    Fiber* f = global_.pop();
    if (!f) return nullptr;
    if (f->last_worker != w->index) return f;
    global_.push(f);  // someone else's turn
    wake_idle_worker();
  }
  return nullptr;
}

// find_local() picks the next fiber from this worker's queues. A parking
// fiber that still holds the lock of a Publish::after_switch wait passes
// may_run_timers = false: firing a timer could need that very lock. It runs
// on every switch, so all that is rare (timers, the global queue's turn,
// the deterministic and migration modes) lives out of line.
GORO_NOINLINE inline Fiber* Runtime::find_local(Worker* w, bool may_run_timers) noexcept {
  const std::uint32_t tick = w->tick.load(std::memory_order_relaxed) + 1;
  w->tick.store(tick, std::memory_order_relaxed);  // read by thieves (steal_from_others)
  if (housekeeping_due(tick) || special_mode_) [[unlikely]] {
    return find_local_housekeeping(w, tick, may_run_timers);
  }
  return take_local(w, LocalRunQueue::PopOrder::newest_spawn_first);
}

GORO_NOINLINE inline Fiber* Runtime::find_local_housekeeping(Worker* w, std::uint32_t tick,
                                                           bool may_run_timers) noexcept {
  if (housekeeping_due(tick) && !timers().empty()) {
    // Deferred rather than skipped: with every switch a channel park (a
    // ping-pong on one worker), skipping would starve the timers for good.
    if (may_run_timers) timers().run_due(now_ns());
    else w->timers_deferred = true;
  }
  if (seeded()) return pick_seeded(w);
  if (config_.force_migration) return pick_migrating(w);
  const bool fairness_turn = tick % kGlobalFairnessTicks == 0;
  if (fairness_turn) {
    if (Fiber* f = global_.pop()) return f;
  }
  return take_local(w, fairness_turn && head_stalled(w) ? LocalRunQueue::PopOrder::oldest_first
                                                        : LocalRunQueue::PopOrder::started_head_first);
}

// head_stalled() says whether the ring's head has stayed in place for
// kStalledHeadTicks or more, asked every kGlobalFairnessTicks: then its
// oldest fiber gets a turn even if it is a spawn that never ran, which the
// newest-spawn-first order would otherwise leave for as long as the fibers
// above it keep spawning. It keeps saying so at every check until the head
// moves (a runnext fiber may take the pick it was meant for). Called on
// fairness turns.
inline bool Runtime::head_stalled(Worker* w) noexcept {
  const std::uint32_t head = w->runq.head_index();
  if (head != w->stalled_head || w->runq.empty()) {
    w->stalled_head = head;
    w->stalled_checks = 0;
    return false;
  }
  if (w->stalled_checks < kStalledHeadTicks / kGlobalFairnessTicks) ++w->stalled_checks;
  return w->stalled_checks == kStalledHeadTicks / kGlobalFairnessTicks;
}

// take_local() takes the runnext fiber (at most kRunnextStreak times in a
// row), else one from the ring in `order`, else a share of the global
// queue. The runnext slot is read and emptied inside the worker's
// StealGate: no locked instruction unless a thief is inside.
inline Fiber* Runtime::take_local(Worker* w, LocalRunQueue::PopOrder order) noexcept {
  if (w->runnext.load(std::memory_order_relaxed)) {
    Fiber* f = nullptr;
    {
      StealGate::OwnerSection section(w->runnext_gate);
      f = w->runnext.load(std::memory_order_relaxed);
      w->runnext.store(nullptr, std::memory_order_relaxed);
    }
    if (f && w->runnext_streak < kRunnextStreak) {
      ++w->runnext_streak;
      return f;
    }
    if (f) w->runq.push(f, global_);  // past its streak: let the ring have its turn
  }
  w->runnext_streak = 0;
  if (Fiber* f = w->runq.pop(order)) {
    prefetch_upcoming(w, order);
    return f;
  }
  return refill_from_global(w);
}

// prefetch_upcoming() asks for the memory the fiber the ring serves next
// will touch first, while the one just taken runs: the top of its stack (the
// frames it parked in, or, for a first run, the stack its worker will give
// it; its block was prefetched when it was spawned) and its block. Resuming
// one of thousands of parked fibers otherwise misses on each frame in turn
// as it returns through them. The counts are fixed, so the prefetches are
// straight-line code; the lines past a shallow stack's top fall on the next
// stack's guard page or on memory of no use here: a prefetch never faults.
inline void Runtime::prefetch_upcoming(Worker* w, LocalRunQueue::PopOrder order) noexcept {
  const LocalRunQueue::Upcoming next = w->runq.upcoming(order);
  if (!next.fiber) return;
  if (next.resume_at == LocalRunQueue::kFirstRun) {
    if (!w->stack_cache.empty()) {
      prefetch_lines_for_write<kResumePrefetchLines>(w->stack_cache.back().top() -
                                                     kResumePrefetchLines * kCacheLineBytes);
    }
    return;
  }
  prefetch_lines_for_write<lines_spanned(sizeof(Fiber))>(next.fiber);
  if (next.resume_at != LocalRunQueue::kUnknown) {
    prefetch_lines_for_write<kResumePrefetchLines>(reinterpret_cast<const void*>(next.resume_at));
  }
}

// refill_from_global() moves a fair share of the global queue into this
// worker's (empty) ring with one lock, and returns the first.
GORO_NOINLINE inline Fiber* Runtime::refill_from_global(Worker* w) noexcept {
  std::array<Fiber*, LocalRunQueue::kCapacity / 2> share;
  const std::size_t fair = global_.size() / workers_.size() + 1;
  const std::size_t taken = global_.pop_some(share.data(), std::min(fair, share.size()));
  if (taken == 0) return nullptr;
  for (std::size_t i = 1; i < taken; ++i) w->runq.push(share[i], global_);
  return share[0];
}

// take_runnext_of() empties another worker's runnext slot, inside its
// StealGate; null if the slot is empty or another thief holds the gate.
inline Fiber* Runtime::take_runnext_of(Worker* victim) noexcept {
  StealGate& gate = victim->runnext_gate;
  if (!gate.thief_try_enter()) return nullptr;
  Fiber* f = victim->runnext.load(std::memory_order_acquire);
  if (f) victim->runnext.store(nullptr, std::memory_order_relaxed);
  gate.thief_exit();
  return f;
}

// steal_from_others() takes half of another worker's ring, or its runnext
// fiber, when that work is owed to a thief (see spin_for_work), and tells in
// `others_have_work` whether any other worker has anything queued at all.
inline Fiber* Runtime::steal_from_others(Worker* w, bool& others_have_work) noexcept {
  const std::int64_t now = now_ns();
  const bool graced = now - w->victims_marked_at >= kStealGraceNs;
  if (graced) w->victims_marked_at = now;
  const std::size_t n = workers_.size();
  others_have_work = false;
  std::size_t start = w->next_random() % n;
  for (std::size_t i = 0; i < n; ++i) {
    Worker* victim = workers_[(start + i) % n].get();
    if (victim == w) continue;
    VictimMark& m = w->victim_marks[victim->index];
    const bool ring_waited = graced && victim->runq.waited_since(m.ring_tail);
    if (ring_waited || victim->runq.size() >= kDeepQueue) {
      if (Fiber* f = victim->runq.steal_into(w->runq)) return f;
    }
    // The same runnext fiber and no scheduling round in between: its worker
    // has been running one fiber since the last mark.
    Fiber* next = victim->runnext.load(std::memory_order_relaxed);
    const std::uint32_t tick = victim->tick.load(std::memory_order_relaxed);
    if (graced && next && next == m.runnext && tick == m.tick) {
      if (Fiber* f = take_runnext_of(victim)) return f;
    }
    if (graced) m = {victim->runq.mark(), tick, next};
    others_have_work = others_have_work || next || !victim->runq.empty();
  }
  return nullptr;
}

inline bool Runtime::any_work_visible() noexcept {
  if (!global_.empty()) return true;
  for (auto& w : workers_) {
    if (!w->runq.empty() || w->runnext.load(std::memory_order_seq_cst)) return true;
    if (seeded() && !w->seeded.empty()) return true;  // one worker: its own vector
  }
  return timers().earliest() <= now_ns();
}

inline void Runtime::stop_spinning(Worker* w) noexcept {
  if (!w->spinning) return;
  w->spinning = false;
  n_spinning_.fetch_sub(1, std::memory_order_seq_cst);
}

// spin_for_work() looks around for a while before the worker sleeps.
//
// Patient stealing. A thief takes another worker's fibers at once only from
// a deep queue (kDeepQueue); otherwise only fibers that have waited a whole
// grace period (kStealGraceNs) without their worker getting to them. A
// worker that cycles through a few fibers faster than that is keeping up,
// and moving them here would trade its warm cache for two cores contending
// on whatever those fibers share: a channel-fed pool of 6 fibers ran at
// ~200 ns a job on 2 workers with eager stealing, ~75 on one worker
// (docs/performance.md). CPU-bound fibers are stolen one grace later.
//
// While another worker has work queued the spinner keeps looking, up to
// kBusySpinNs: as long as it spins, the workers queueing fibers do not pay a
// futex wake (tens of microseconds on a VM) to bring an idle worker back.
inline Fiber* Runtime::spin_for_work(Worker* w) noexcept {
  const std::uint32_t busy = static_cast<std::uint32_t>(workers_.size()) -
                             n_idle_.load(std::memory_order_seq_cst);
  if (!w->spinning && 2 * n_spinning_.load(std::memory_order_seq_cst) >= busy) return nullptr;
  if (!w->spinning) {
    w->spinning = true;
    n_spinning_.fetch_add(1, std::memory_order_seq_cst);
  }
  const std::int64_t start = now_ns();
  for (;;) {
    timers().run_due(now_ns());
    if (Fiber* f = find_local(w)) return f;
    bool others_have_work = false;
    if (workers_.size() > 1) {
      if (Fiber* f = steal_from_others(w, others_have_work)) return f;
    }
    const std::int64_t looked = now_ns();
    if (looked - start > (others_have_work ? kBusySpinNs : kIdleSpinNs)) return nullptr;
    // Look again later: every look reads cache lines the other workers write.
    do {
      for (int i = 0; i < 32; ++i) GORO_CPU_RELAX();
    } while (global_.empty() && now_ns() - looked < kLookIntervalNs);
  }
}

// go_idle() sleeps until woken or the next timer is due.
inline void Runtime::go_idle(Worker* w) noexcept {
  stop_spinning(w);
  // Before anyone can see this worker idle: the deadlock check and the
  // unwinder count and list the registry, which must not hold our exits.
  if (w->exited) unregister_exited(w);
  {
    std::lock_guard guard(idle_mutex_);
    w->wake_word.store(0, std::memory_order_relaxed);
    w->idle = true;
    w->next_idle = idle_head_;
    idle_head_ = w;
    n_idle_.fetch_add(1, std::memory_order_seq_cst);
    if (any_work_visible() || quit_.load(std::memory_order_seq_cst)) {
      // Undo: take ourselves off the idle list.
      for (Worker** p = &idle_head_; *p; p = &(*p)->next_idle) {
        if (*p == w) {
          *p = w->next_idle;
          break;
        }
      }
      w->idle = false;
      n_idle_.fetch_sub(1, std::memory_order_seq_cst);
      return;
    }
    check_deadlock_locked();
  }
  // A worker idle for kScavengeDelayNs gives pooled stack memory back (Go's
  // scavenger, paced by idleness rather than run in the middle of a burst).
  constexpr std::int64_t kScavengeDelayNs = 50'000'000;
  const bool may_scavenge =
      StackPool::instance().has_excess() || FiberBlockPool::instance().has_excess();
  std::int64_t earliest = timers().earliest();
  std::int64_t timeout = earliest == INT64_MAX ? -1 : std::max<std::int64_t>(earliest - now_ns(), 0);
  if (may_scavenge && (timeout < 0 || timeout > kScavengeDelayNs)) timeout = kScavengeDelayNs;
  const std::int64_t slept_from = now_ns();
  if (timeout != 0) {  // a "forever" deadline is saturated near INT64_MAX: no overflow
    sleep_idle(w, timeout < 0 || timeout > INT64_MAX - slept_from ? INT64_MAX : slept_from + timeout);
  }
  if (may_scavenge && w->wake_word.load(std::memory_order_acquire) == 0 &&
      now_ns() - slept_from >= kScavengeDelayNs) {
    StackPool::instance().scavenge();
    FiberBlockPool::instance().trim();
  }
  std::lock_guard guard(idle_mutex_);
  if (w->idle) {  // woken by a timeout or a timer_added() nudge, not by wake_idle_worker
    for (Worker** p = &idle_head_; *p; p = &(*p)->next_idle) {
      if (*p == w) {
        *p = w->next_idle;
        break;
      }
    }
    w->idle = false;
    n_idle_.fetch_sub(1, std::memory_order_seq_cst);
  }
}

// sleep_idle() sleeps idle worker `w` until it is woken (wake_word set: work
// handed to it, a new earliest timer, the runtime quitting) or `until`.
// While another worker is busy it also wakes every kIdlePollNs to look for
// work nobody announced: a fiber woken into a busy worker's runnext slot
// wakes no idle worker (make_runnable, to keep handoffs cheap), and if the
// fiber that woke it never blocks again, it would wait there for good (a
// Mutex waiter behind a holder relocking in a loop never got its turn, even
// to mark itself starving). Go's sysmon looks at the run queues the same way.
inline void Runtime::sleep_idle(Worker* w, std::int64_t until) noexcept {
  for (;;) {
    std::int64_t wait = until == INT64_MAX ? -1 : until - now_ns();
    if (wait == 0 || wait < -1) return;
    if (n_idle_.load(std::memory_order_seq_cst) < workers_.size() && (wait < 0 || wait > kIdlePollNs)) {
      wait = kIdlePollNs;
    }
    futex_wait(&w->wake_word, 0, wait);
    if (w->wake_word.load(std::memory_order_acquire) != 0 || now_ns() >= until) return;
    if (any_work_visible()) return;
  }
}

// check_deadlock_locked() runs with idle_mutex_ held by the last worker to
// go idle: if no fiber can run, no timer is pending and no registered plain
// thread is active, nothing can ever move again.
inline void Runtime::check_deadlock_locked() noexcept {
  if (!config_.detect_deadlock || stopping() || !nothing_can_move_locked()) return;
  std::string report = "all fibers are asleep - deadlock!\n\n" + describe_blocked(true);
  std::lock_guard guard(mutex_);
  if (main_done_ || deadlock_) return;
  deadlock_ = true;
  deadlock_report_ = std::move(report);
  cv_.notify_all();
}

// nothing_can_move_locked() runs with idle_mutex_ held: every worker is idle,
// no fiber is runnable, no timer is pending or firing and no registered
// plain thread is active, so no fiber can ever be woken again.
inline bool Runtime::nothing_can_move_locked() noexcept {
  if (n_idle_.load(std::memory_order_seq_cst) != workers_.size()) return false;
  if (g_active_threads.load(std::memory_order_seq_cst) != 0) return false;
  return timers().settled() && !any_work_visible();
}

inline bool Runtime::nothing_can_move() noexcept {
  std::lock_guard guard(idle_mutex_);
  return nothing_can_move_locked();
}

}  // namespace goro::detail
