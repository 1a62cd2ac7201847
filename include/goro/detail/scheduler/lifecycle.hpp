// Runtime: construction, start, and the end of a run: waiting for main,
// stopping, unwinding the fibers still blocked (with the std::terminate
// handler that explains an unwind that cannot leave a destructor), and the
// deadlock and leak reports.
//
// Part of the scheduler: included at the end of ../scheduler.hpp, which
// declares Runtime and states the invariants and lock order.
#pragma once

#include "../scheduler.hpp"

namespace goro::detail {

// UnwindTerminateHandler is std::terminate's handler while the runtime
// unwinds its fibers (Runtime::unwind_all). An unwind exception that reaches
// std::terminate met a function it cannot leave without the runtime seeing
// it coming: a destructor that was blocked at its scope's normal exit (no
// exception in flight, so nothing marks the wait as a destructor's), or
// another noexcept function. The handler names the fiber and its wait, then
// hands over to the handler it replaced. A terminate with an exception still
// in flight left a wait shielded inside that exception's unwinding, which
// warn_unwind_in_destructor() already named. Installed and removed by
// Runtime::wait_and_stop(); a handler the program installs meanwhile wins.
class UnwindTerminateHandler {
 public:
  // The handler to chain to is recorded before ours is published: a worker
  // may call ours as soon as set_terminate() stores it.
  UnwindTerminateHandler() noexcept {
    previous() = std::get_terminate();
    std::set_terminate(&explain);
  }
  ~UnwindTerminateHandler() {
    if (std::get_terminate() == &explain) std::set_terminate(previous());
  }
  UnwindTerminateHandler(const UnwindTerminateHandler&) = delete;
  UnwindTerminateHandler& operator=(const UnwindTerminateHandler&) = delete;

 private:
  static std::terminate_handler& previous() noexcept {
    static std::terminate_handler handler = nullptr;
    return handler;
  }
  [[noreturn]] static void explain() noexcept;
};

inline void UnwindTerminateHandler::explain() noexcept {
  const Fiber* f = current_fiber();
  bool unwinding = false;
  std::exception_ptr e = std::current_exception();
  if (e && f && std::uncaught_exceptions() == 0) {
    try {
      std::rethrow_exception(e);
    } catch (const FiberUnwind&) {
      unwinding = true;
    } catch (...) {
    }
  }
  if (unwinding) {
    const char* what = f->parker.waiting_on();
    std::fprintf(stderr,
                 "goro: fiber %llu was blocked (%s) in a destructor, or another function that cannot throw, "
                 "when the runtime began unwinding its fibers (main returned, or run() is stopping). The "
                 "unwind exception cannot leave such a function, so the program ends (std::terminate). A "
                 "destructor's wait is left to complete only while an exception propagates through it; let "
                 "fibers that wait in destructors finish before main returns (docs/runtime.md).\n",
                 static_cast<unsigned long long>(f->id), what ? what : "wait");
  }
  if (std::terminate_handler next = previous()) next();
  std::abort();
}


inline Runtime::Runtime(const RuntimeConfig& config) : config_(config), shards_(config.workers + 1) {
  // Published (g_runtime) first, to refuse a second runtime before any work,
  // but built under g_runtime_entry: a plain thread that finds this runtime
  // (goro::go, a wake-up, after_func) holds that lock, so it sees it whole.
  std::lock_guard entry(g_runtime_entry);
  Runtime* expected = nullptr;
  if (!g_runtime.compare_exchange_strong(expected, this, std::memory_order_acq_rel)) {
    throw std::logic_error(
        "goro::run: a runtime is already running in this process (one at a time)");
  }
  install_overflow_handler();
  AsymmetricFence::init();  // before any worker runs
  if (config_.sched_seed) config_.workers = 1;
  if (config_.workers < 2) config_.force_migration = false;  // nowhere to migrate to
  special_mode_ = config_.sched_seed != 0 || config_.force_migration;
  std::uint64_t seed = static_cast<std::uint64_t>(now_ns()) | 1;
  for (std::size_t i = 0; i < config_.workers; ++i) {
    auto w = std::make_unique<Worker>();
    w->rt = this;
    w->index = static_cast<std::uint32_t>(i);
    w->victim_marks.resize(config_.workers);
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    w->rng = config_.sched_seed ? (config_.sched_seed * 0x9E3779B97F4A7C15ULL) | 1 : seed | 1;
    workers_.push_back(std::move(w));
  }
}

inline Runtime::~Runtime() {
  if (gate_.load(std::memory_order_relaxed) == kGateClosed) abandon_workers();
  for (auto& w : workers_) {
    for (Stack& s : w->stack_cache) StackPool::instance().release(s);
    FiberBlockPool::instance().give_back(w->block_cache, w->block_cache.size());
  }
  StackPool::instance().scavenge();
  FiberBlockPool::instance().trim();
  std::lock_guard guard(g_runtime_entry);
  g_runtime.store(nullptr, std::memory_order_release);
}

inline void Runtime::start_workers() {
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    Worker* worker = workers_[i].get();
    try {
      worker->thread = std::thread([this, worker] {
        std::uint32_t gate;
        while ((gate = gate_.load(std::memory_order_acquire)) == kGateClosed) futex_wait(&gate_, kGateClosed);
        if (gate == kGateOpen) worker_main(worker);
      });
    } catch (const std::system_error& e) {
      abandon_workers();
      throw std::system_error(e.code(), "goro::run: cannot start worker thread " + std::to_string(i + 1) +
                                            " of " + std::to_string(workers_.size()));
    } catch (...) {  // std::bad_alloc
      abandon_workers();
      throw;
    }
  }
}

inline void Runtime::open_gate() noexcept {
  // The thread inside run() is blocked in a goro call for deadlock purposes,
  // from before the first fiber runs until wait_and_stop() returns.
  thread_parker();
  g_active_threads.fetch_sub(1, std::memory_order_seq_cst);
  gate_.store(kGateOpen, std::memory_order_release);
  futex_wake(&gate_, INT_MAX);
}

// abandon_workers() ends the worker threads before the gate opened: they
// return without running anything.
inline void Runtime::abandon_workers() noexcept {
  gate_.store(kGateAbandoned, std::memory_order_release);
  futex_wake(&gate_, INT_MAX);
  for (auto& w : workers_) {
    if (w->thread.joinable()) w->thread.join();
  }
}

inline void Runtime::main_finished(std::exception_ptr failure) noexcept {
  std::lock_guard guard(mutex_);
  main_done_ = true;
  main_failure_ = std::move(failure);
  cv_.notify_all();
}

inline void Runtime::fail(std::exception_ptr e) noexcept {
  std::lock_guard guard(mutex_);
  if (!fiber_failure_) fiber_failure_ = std::move(e);
  cv_.notify_all();
}

inline void Runtime::wait_and_stop() {
  std::string leak_report;
  std::size_t leaked = 0;
  {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [&] { return main_done_ || fiber_failure_ || deadlock_; });
  }
  if (config_.fail_on_leak) {
    leak_report = settled_leak_report(leaked);
  }
  {
    // Under g_runtime_entry: a plain thread's spawn (goro::go, after_func)
    // checks stopping() and spawns under that lock, so its fiber is either
    // registered before this store, and unwind_all() waits for it, or refused.
    std::lock_guard guard(g_runtime_entry);
    stopping_.store(true, std::memory_order_seq_cst);
  }
  {
    UnwindTerminateHandler explain_unwind_terminate;
    unwind_all();
  }
  quit_.store(true, std::memory_order_seq_cst);
  for (auto& w : workers_) {
    w->wake_word.store(1, std::memory_order_release);
    futex_wake(&w->wake_word);
  }
  for (auto& w : workers_) w->thread.join();
  if (seeded()) g_last_schedule_trace = std::move(trace_);
  // Timers created by fibers (Timer, Ticker, after, context deadlines) may
  // outlive the runtime: the TimerService thread keeps firing them, once it
  // looks at the heap again (it may be asleep on a fiber's old deadline).
  timers().wake_service();
  g_active_threads.fetch_add(1, std::memory_order_seq_cst);

  std::unique_lock lock(mutex_);
  if (main_failure_) std::rethrow_exception(main_failure_);
  if (fiber_failure_) std::rethrow_exception(fiber_failure_);
  if (deadlock_) throw deadlock_error(deadlock_report_);
  // A main fiber that finished has already left the registry.
  if (config_.fail_on_leak && leaked > 0) {
    throw leak_error("goro: " + std::to_string(leaked) +
                     " fiber(s) still alive when main returned (unwound):\n" + leak_report);
  }
}

// unwind_all() claims the open waits of parked fibers with `unwind`, pass
// after pass, until no fiber is left. Fibers that are running will park (and
// self-claim, Parker::park, or wait for a pass) or finish.
//
// Order: a fiber is unwound after the fibers it spawned. Their callables
// often refer to its frame (a lambda capturing by reference a Mutex, a
// channel handle, a vector), and its unwinding destroys that frame: a child
// unwound second would then lock, dequeue from or write to freed memory.
// Since a fiber's descendants are all deeper in the spawn tree than it is
// (Fiber::depth), and a spawner's children may outlive it (a dispatcher
// that returned), the rule is by depth: a parked fiber that ever spawned
// is withheld while any registered fiber is deeper than it (UnwindOrder,
// which releases it the moment the last one leaves). A fiber that never
// spawned has no descendants and is unwound at once, wherever it sits. A
// pass judges and claims with the whole registry frozen (RegistryFreeze): a
// fiber spawned after it descends from a fiber that was running, never from
// one the pass claimed. The order is a preference, never a cause of waiting
// forever: once nothing can move and only withheld spawners (and shielded
// waits) are left, the deepest of them are released (UnwindOrder's floor), layer
// by layer, before any re-locking or shielded wait is forced. Objects
// reached another way (a pointer sent over a channel) get no such order.
//
// Shielded waits. A fiber parked with an exception in flight is blocked in
// a destructor (or in what one calls): an unwind exception thrown from its
// wait could not leave that destructor. Such a wait is shielded, whether it
// began before the runtime started stopping (a user exception was
// propagating) or during the unwinding (Parker::park_while_stopping). The
// passes leave it to its wakers: it may wait on what other fibers'
// unwinding does (a RAII join, a Mutex a lock_guard releases). Once
// nothing_can_move() and the pass after it finds only shielded waits,
// nothing can end them: unwind_stuck_ is set and the next pass claims them
// too (their destructors then end the program after a message). A pass
// skips a fiber that has not finished parking, so it never judges a wait
// before the fiber's exception count was saved; a later pass finds it
// parked.
//
// Re-locking waits (StopRule::relock) are shielded too: a fiber leaving
// Cond::wait must hold the mutex again, since its guard will unlock it. When
// nothing can move and such waits are left, their mutexes are held by
// locks nobody will release (a fiber unwound, or main returned, holding one
// without a guard). Those are claimed one at a time, before any destructor's
// wait: the claimed fiber adopts the abandoned hold, and its guard's unlock
// then wakes the next waiter of that mutex in the ordinary way. (Claimed all
// at once, two waiters of one mutex would both think they hold it.)
// WaitGroup::wait(), once unwound, waits again with the same rule, for the
// fibers it waits for to unwind and call done() before its frame (often the
// WaitGroup's home) is destroyed; claimed, it gives up and throws.
//
// A wait opened with prepare_locked() is claimed under its lock, like its
// wakers do (they claim it without a compare-and-swap). That lock belongs to
// a channel the fiber may release once its wait is over, so the unwinder
// must not find a fiber's lock, lose the race to a waker, and then lock it
// after the fiber returned. Two rules exclude that:
//   - the unwinder (the unwinding thread, or a worker releasing withheld
//     spawners) reads a fiber's ticket and lock, and claims, holding the
//     fiber's registry shard lock; a fiber leaving a wait while `stopping_`
//     is set passes through that shard lock first (wait_out_unwinder());
//   - a fiber that read `stopping_` as false left its wait before the
//     unwinder's heavy fence below, so its claim was visible to the
//     unwinder's later read of its ticket (closed: its lock is not used).
//     This is an asymmetric Dekker (detail/steal_gate.hpp): the fiber's
//     side, on every park, is a compiler fence.
inline void Runtime::unwind_all() noexcept {
  AsymmetricFence::heavy();  // stopping_ is set
  {
    const RegistryFreeze frozen(shards_);
    unwind_order_.begin([&frozen](auto&& count) { frozen.for_each_registered(count); });
  }
  for (;;) {
    // Quiet first, then the pass: whatever could still wake a fiber the pass
    // sees parked (a running fiber, a timer firing, an active thread) was
    // visible to the quiet check, or had already closed that fiber's wait.
    const bool quiet = !unwind_stuck() && nothing_can_move();
    const auto pass_start = std::chrono::steady_clock::now();
    const UnwindPass pass = unwind_pass();
    if (quiet && pass.moving == 0 && pass.withheld > 0 && unwind_order_.release_deepest_withheld()) {
      continue;  // the next pass unwinds the deepest withheld spawners
    }
    if (quiet && pass.moving == 0 && pass.relocking > 0) {
      (void)unwind_pass(/*claim_one_relock=*/true);
      continue;
    }
    if (quiet && pass.moving == 0 && pass.shielded > 0) {
      unwind_stuck_.store(true, std::memory_order_seq_cst);
      continue;  // the next pass unwinds the shielded waits too
    }
    // A pass reads the whole registry and stops it meanwhile: the next one
    // comes after at least as long again, and 1 ms at least.
    const auto now = std::chrono::steady_clock::now();
    if (!wait_for_unwinding(now + std::max<std::chrono::steady_clock::duration>(now - pass_start,
                                                                               std::chrono::milliseconds(1)))) {
      return;
    }
  }
}

// wait_for_unwinding() waits until `next_pass`, releasing withheld spawners
// as the fibers deeper than them leave (each exit wakes it); it returns
// false once no fiber is left.
inline bool Runtime::wait_for_unwinding(std::chrono::steady_clock::time_point next_pass) noexcept {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (live_fibers() == 0) return false;
    // Checked under mutex_, so an exit that makes one releasable after this
    // check notifies only once this thread waits.
    if (unwind_order_.has_releasable()) {
      lock.unlock();
      release_withheld();
      lock.lock();
      continue;
    }
    if (std::chrono::steady_clock::now() >= next_pass) return true;
    cv_.wait_until(lock, next_pass);
  }
}

// unwind_pass() claims, with `unwind`, the open wait of every parked fiber
// but the shielded ones and the withheld spawners (unless unwind_stuck()),
// and counts what it saw; with `claim_one_relock` it claims the first
// re-locking wait it meets too. A fiber that has not finished parking is
// left to a later pass: once parked it is claimed then, or it saw stopping_
// in park() and closed its own wait.
inline Runtime::UnwindPass Runtime::unwind_pass(bool claim_one_relock) noexcept {
  UnwindPass pass;
  const bool unwind_shielded = unwind_stuck();
  WakeList wake;  // declared first: unparks once the registry is let go
  const RegistryFreeze frozen(shards_);
  frozen.for_each_fiber([&](Fiber* f) {
    Parker::Ticket t;
    if (!parked_in_open_wait(*f, t)) {
      ++pass.moving;  // running, or being woken
      return;
    }
    if (!unwind_shielded && f->parker.stop_rule() == StopRule::relock) {
      if (!claim_one_relock) {
        ++pass.relocking;
        return;
      }
      claim_one_relock = false;  // this one, and no other
    } else if (!unwind_shielded && parked_in_destructor(*f)) {
      ++pass.shielded;
      return;
    } else if (!unwind_shielded && may_have_spawned_live(*f) && unwind_order_.withhold(*f)) {
      ++pass.withheld;
      return;
    }
    ++pass.moving;
    claim_to_unwind(*f, t, wake);
  });
  return pass;
}

// release_withheld() claims the withheld spawners that no registered fiber
// is deeper than any more; with none it leaves the registry alone. One that
// is not parked in an ordinary wait now (woken, or blocked in a destructor)
// is left to the next pass.
inline void Runtime::release_withheld() noexcept {
  if (!unwind_order_.has_releasable()) return;
  WakeList wake;  // declared first: unparks once the registry is let go
  const RegistryFreeze frozen(shards_);
  unwind_order_.release([&wake](Fiber* f) {
    Parker::Ticket t;
    if (parked_in_open_wait(*f, t) && f->parker.stop_rule() != StopRule::relock && !parked_in_destructor(*f)) {
      claim_to_unwind(*f, t, wake);
    }
  });
}

// parked_in_open_wait() says `f`, read under its shard lock, is parked in
// a wait nobody has claimed, whose ticket it stores in `t`. The ticket
// first: once it is seen open, `parked` can only be this wait's (the fiber
// cannot leave it unclaimed). Read the other way round, `parked` could be a
// finished wait's and the ticket a new one.
inline bool Runtime::parked_in_open_wait(Fiber& f, Parker::Ticket& t) noexcept {
  return f.parker.open_ticket(t) && f.state.load(std::memory_order_acquire) == FiberState::parked;
}

// claim_to_unwind() claims `f`'s wait `t` with `unwind`, under the wait's
// lock if it has one (see unwind_all()), for `wake` to unpark.
inline void Runtime::claim_to_unwind(Fiber& f, Parker::Ticket t, WakeList& wake) noexcept {
  std::unique_lock<SpinLock> claim_guard;  // held for a prepare_locked() wait
  if (SpinLock* lock = f.parker.claim_lock()) claim_guard = std::unique_lock(*lock);
  wake.add_if_claimed(t, WakeReason::unwind);
}

// parked_in_destructor() says `f`, seen parked by unwind_pass() under its
// shard lock, parked with an exception in flight. Its exception globals
// were saved when it switched out, before `parked` was published (acquire
// in the caller). It cannot switch out again, rewriting them, before it
// has left this wait, and a fiber leaving a wait while the runtime stops
// passes through the shard lock the caller holds (wait_out_unwinder()).
inline bool Runtime::parked_in_destructor(const Fiber& f) noexcept { return f.ctx.eh.uncaught_exceptions > 0; }

// wait_out_unwinder() returns once the unwinder holds no lock of `self`'s
// last wait: it takes and drops `self`'s registry shard lock (unwind_all).
inline void Runtime::wait_out_unwinder(Fiber* self) noexcept {
  std::lock_guard guard(shards_[self->shard].lock);
}

inline std::size_t Runtime::live_fibers() noexcept {
  std::size_t n = 0;
  for (RegistryShard& shard : shards_) {
    std::lock_guard guard(shard.lock);
    n += shard.count;
  }
  return n;
}

template <class Fn>
void Runtime::for_each_fiber(Fn&& fn) {
  for (RegistryShard& shard : shards_) {
    std::lock_guard guard(shard.lock);
    for (Fiber* f = shard.head; f; f = f->reg_next) {
      if (!f->exited.load(std::memory_order_relaxed)) fn(f);
    }
  }
}

// settled_leak_report() describes the fibers alive after main returned. A
// fiber found running may be on its way out (it signalled a WaitGroup and has
// not switched away for the last time): running fibers get up to kLeakGrace
// to exit or block before they are reported, as Go's goleak retries.
inline std::string Runtime::settled_leak_report(std::size_t& leaked) {
  constexpr auto kLeakGrace = std::chrono::milliseconds(100);
  const auto give_up = std::chrono::steady_clock::now() + kLeakGrace;
  for (;;) {
    std::size_t running = 0;
    std::string report = describe_blocked(false, &leaked, &running);
    if (running == 0 || std::chrono::steady_clock::now() >= give_up) return report;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

inline std::string Runtime::describe_blocked(bool include_main, std::size_t* count,
                                             std::size_t* running) {
  struct Entry {
    std::uint64_t id;
    bool is_main;
    const char* what;
  };
  std::vector<Entry> entries;
  std::size_t not_waiting = 0;
  for_each_fiber([&](Fiber* f) {
    if (!f->is_main || include_main) {
      Parker::Ticket t;
      const bool waiting = f->parker.open_ticket(t);
      const char* what = waiting ? f->parker.waiting_on() : "running";
      if (!waiting) ++not_waiting;
      entries.push_back({f->id, f->is_main, what ? what : "unknown"});
    }
  });
  if (running) *running = not_waiting;
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.id < b.id; });
  if (count) *count = entries.size();
  std::string out;
  for (const Entry& e : entries) {
    out += "  fiber " + std::to_string(e.id) + (e.is_main ? " (main)" : "") + " [" + e.what + "]\n";
  }
  return out;
}

}  // namespace goro::detail
