// The M:N work-stealing scheduler, after Go's runtime/proc.go.
//
// Shape. N workers (OS threads). Each owns a LocalRunQueue and a `runnext`
// slot; a GlobalRunQueue takes wake-ups from plain threads and overflow. A
// fiber that blocks picks the next runnable fiber itself and switches to it
// directly (one context switch); only when nothing is runnable does it switch
// to its worker's root context, which spins, steals, and finally sleeps on a
// futex until it is woken or the next timer is due.
//
// runnext. A fiber woken by the running fiber goes to `runnext`, so a
// producer/consumer pair hands the CPU back and forth without queueing. The
// slot is bounded: after kRunnextStreak runs in a row from it, the worker
// pushes it to the back of the queue so the ring is not starved. Pushing to
// runnext does not wake an idle worker (the fiber will run here within one
// switch); pushing to the ring or the global queue does.
//
// Migration. Started fibers migrate: thieves take them from other workers'
// rings. goro's thread-local state is reached through GORO_NOINLINE accessors
// and never held across a switch. User code must treat thread_local variables
// and thread-affine locks (std::mutex) as not surviving a blocking goro call.
//
// Stealing is patient: a worker steals from another only work that has
// waited there a grace period (or a deep queue), so communicating fibers
// stay on one worker while it keeps up (Runtime::spin_for_work). A fiber
// that finds nothing local switches to its worker's root, which steals.
//
// Spinning and idling (no lost wake-ups). At most half the busy workers spin
// looking for work. A worker that stops spinning decrements n_spinning_ and
// then re-checks every queue; one going idle registers in idle_ (under
// idle_mutex_) and then re-checks every queue. make_runnable() publishes the
// fiber first and then looks at n_spinning_/n_idle_. All of these are
// seq_cst, so either the waker sees the idler or the idler sees the work.
//
// Switch handoff. A switch passes a Handoff naming the context left behind
// and what to do with it; the code that lands after the switch (on the new
// context, same thread) stores the left context's fcontext and carries out
// the action: finish parking it, requeue it (yield), or free it (exit). That
// way no fiber is published as runnable while its stack is still in use.
//
// Lock order: registry shard lock -> nothing; idle_mutex_ -> nothing;
// run-thread mutex_ -> nothing. No scheduler lock is held across a switch.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "../errors.hpp"
#include "config.hpp"
#include "execution_context.hpp"
#include "fiber.hpp"
#include "fiber_block.hpp"
#include "futex.hpp"
#include "overflow.hpp"
#include "parker.hpp"
#include "run_queue.hpp"
#include "spin_lock.hpp"
#include "stack.hpp"
#include "steal_gate.hpp"
#include "timer_heap.hpp"
#include "unwind.hpp"

namespace goro::detail {

class Runtime;
struct Worker;

// ---------------------------------------------------------------------------
// Thread-local state, reached only through out-of-line accessors.

struct ThreadState {
  Worker* worker = nullptr;  // set on goro's worker threads
  // A worker, goro's timer thread (never counted: timer_service.hpp), or
  // a plain thread the deadlock detector counts (see
  // note_goro_use()). Set before this thread runs any fiber and never
  // cleared while fibers run, so it is the one field read inline.
  bool registered = false;
};

// Read only through the GORO_NOINLINE accessors below (thread_state(),
// current_worker(), current_fiber()), so no inlined caller can keep this
// thread's address across a switch that lands it on another thread. Each
// accessor reads it directly: one call, no nested accessor. The exception
// is `registered`, read inline by note_goro_use(): a fiber that kept an old
// address reads a worker's copy, true on every worker for as long as any
// fiber runs, so a stale read gives the same answer.
inline thread_local ThreadState t_thread_state;

GORO_NOINLINE inline ThreadState& thread_state() noexcept { return t_thread_state; }

inline std::atomic<Runtime*> g_runtime{nullptr};
// Held by threads outside the runtime (plain threads, the TimerService) while
// they call into it, and by the runtime's destructor while it unpublishes
// itself, so such a call never reaches a runtime that is being destroyed.
inline std::mutex g_runtime_entry;

// ---------------------------------------------------------------------------

struct RuntimeConfig {
  std::size_t workers = 1;
  std::size_t stack_size = 256 * 1024;
  bool detect_deadlock = true;
  bool fail_on_leak = false;
  std::uint64_t sched_seed = 0;  // debug: deterministic schedule (forces one worker)
  bool force_migration = false;  // debug: every resumed fiber changes worker
};

// The fiber ids in the order a seeded runtime ran them (debug, see
// Runtime::pick_seeded); kept from the last seeded run() for tests.
inline std::vector<std::uint64_t> g_last_schedule_trace;
inline constexpr std::size_t kMaxScheduleTrace = 1 << 20;

enum class SwitchAction : std::uint8_t { none, park, yield, exit };

struct Handoff {
  ExecutionContext* from;  // the context just left
  Fiber* fiber;            // the fiber it belongs to (null for a worker root)
  SwitchAction action;
  Worker* worker;          // the worker both contexts run on during the switch
  ParkCommit commit;       // park: run once `from` is switched out, if set
};

// VictimMark is what a spinning worker saw of another worker's queues at
// its last mark: a fiber still queued since then has waited ever since.
struct VictimMark {
  std::uint32_t ring_tail = 0;
  std::uint32_t tick = 0;
  Fiber* runnext = nullptr;
};

struct alignas(64) Worker {
  static constexpr std::size_t kStackCache = 256;
  static_assert(StackCache::kCapacity == kStackCache + 1, "one push past kStackCache, then a trim");
  static constexpr std::size_t kBlockCache = 256;
  static_assert(FiberBlockCache::kCapacity == kBlockCache + 1, "one push past kBlockCache, then a trim");

  Runtime* rt = nullptr;
  std::uint32_t index = 0;
  LocalRunQueue runq;
  std::atomic<Fiber*> runnext{nullptr};
  // Excludes thieves while the owner takes or replaces runnext (filling an
  // empty slot needs no gate: thieves only empty it).
  StealGate runnext_gate;
  std::uint32_t runnext_streak = 0;
  // The ring's head at the last fairness check and how many checks in a row
  // found it there (Runtime::head_stalled).
  std::uint32_t stalled_head = 0;
  std::uint32_t stalled_checks = 0;
  // A pick that was due to fire timers while its parking fiber still held a
  // commit lock leaves them to land(), which runs once that lock is free.
  bool timers_deferred = false;
  std::atomic<std::uint32_t> tick{0};  // scheduling rounds; written by the owner only
  std::uint64_t rng = 0;
  bool spinning = false;  // counted in Runtime::n_spinning_
  std::vector<VictimMark> victim_marks;  // one per worker, see Runtime::spin_for_work
  std::int64_t victims_marked_at = 0;    // now_ns() of the marks
  ExecutionContext root;  // the worker thread's own stack
  ThreadSwitchState thread_switch_state;  // of the worker thread
  Fiber* current = nullptr;  // fiber running on this worker, null in root
  std::atomic<std::uint32_t> wake_word{0};
  Worker* next_idle = nullptr;  // guarded by Runtime::idle_mutex_
  bool idle = false;            // guarded by Runtime::idle_mutex_
  StackCache stack_cache;
  FiberBlockCache block_cache;  // free fiber blocks, LIFO
  // Fibers that exited here but are still in their registry shards, linked
  // by next_runnable; unregistered in batches (Runtime::unregister_exited).
  static constexpr std::uint32_t kExitBatch = 64;
  Fiber* exited = nullptr;
  std::uint32_t exited_count = 0;
  static constexpr std::uint64_t kFiberIdBlock = 256;
  std::uint64_t next_fiber_id = 0;  // ids [next_fiber_id, fiber_id_end) are this worker's
  std::uint64_t fiber_id_end = 0;
  std::vector<Fiber*> seeded;  // deterministic mode: the run queue, picked from by the seed
  AltSignalStack alt_stack;
  std::thread thread;

  std::uint32_t next_random() noexcept {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return static_cast<std::uint32_t>(rng >> 32);
  }
};

// Registry shard: the fibers spawned on one worker, for deadlock reports,
// leak reports and unwinding. A fiber that exited stays listed, marked
// `exited`, until the worker it exited on unregisters a batch of them
// (Runtime::unregister_exited): its block is reused only after that, so a
// reader holding `lock` never sees a block change hands.
struct alignas(64) RegistryShard {
  SpinLock lock;
  Fiber* head = nullptr;
  std::size_t count = 0;
};

class Runtime {
 public:
  static constexpr std::uint32_t kRunnextStreak = 64;
  // Every kHousekeepingTicks-th pick (a power of two: a mask, not a
  // division, on every switch) fires due timers; every kGlobalFairnessTicks-th
  // takes from the global queue first, so it is never starved.
  static constexpr std::uint32_t kHousekeepingTicks = 16;
  static constexpr std::uint32_t kGlobalFairnessTicks = 64;
  // A ring head that has not moved for kStalledHeadTicks picks is served
  // next (head_stalled). Shorter periods cost fork-join trees dearly: each
  // turn starts an old subtree, the ring overflows to the global queue, and
  // its fairness turns start more (skynet 1M on one worker: 28,000 page
  // faults at 16,384 ticks, 466 at 65,536). Under TSan, where a fiber costs
  // about a millisecond, the period is shorter so that tests reach it.
  static constexpr std::uint32_t kStalledHeadTicks = GORO_TSAN ? 4096 : 65536;
  static constexpr bool housekeeping_due(std::uint32_t tick) noexcept {
    return (tick & (kHousekeepingTicks - 1)) == 0;
  }
  // Stealing and spinning (see spin_for_work).
  static constexpr std::uint32_t kDeepQueue = 32;
  // take_block() prefetches the block this many spawns ahead: about as many
  // spawns as one cross-core transfer takes (spawn+join on two workers: 0
  // ahead 287 ns a fiber, 2 ahead 264, 3 ahead 272, 6 ahead 282).
  static constexpr std::size_t kBlockPrefetchDistance = 2;
  static constexpr std::int64_t kStealGraceNs = 10'000;
  static constexpr std::int64_t kLookIntervalNs = 5'000;
  static constexpr std::int64_t kIdleSpinNs = 5'000;
  static constexpr std::int64_t kBusySpinNs = 500'000;

  explicit Runtime(const RuntimeConfig& config);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // spawn() creates a fiber running `fn` and makes it runnable.
  template <class Fn>
  Fiber* spawn(Fn&& fn, bool is_main = false);

  // start() launches the workers. wait_and_stop() blocks until main returns
  // (or a fiber fails, or a deadlock), unwinds what is left, joins the
  // workers and throws what run() must throw. `main_failure` is main's own
  // exception, if it had one.
  void start();
  void wait_and_stop();
  void main_finished(std::exception_ptr failure) noexcept;

  // Scheduling entry points used by parking and this_fiber.
  void make_runnable(Fiber* f) noexcept;
  // make_runnable(f, w): the same, for a caller that already knows its
  // worker (`w` is current_worker(): null on plain threads).
  void make_runnable(Fiber* f, Worker* w) noexcept;
  void park_current(Fiber* self, ParkCommit commit = {}) noexcept;
  // wait_out_unwinder(): see unwind_all().
  void wait_out_unwinder(Fiber* self) noexcept;
  void yield_current(Fiber* self) noexcept;
  [[noreturn]] void exit_current(Fiber* self) noexcept;
  void timer_added() noexcept;
  void recheck_deadlock() noexcept {
    std::lock_guard guard(idle_mutex_);
    check_deadlock_locked();
  }

  bool stopping() const noexcept { return stopping_.load(std::memory_order_seq_cst); }
  // unwind_stuck() says the unwinding found only destructors' waits left and
  // nothing that could end them: it unwinds those too (unwind_all()).
  bool unwind_stuck() const noexcept { return unwind_stuck_.load(std::memory_order_seq_cst); }
  bool seeded() const noexcept { return config_.sched_seed != 0; }
  // seeded_random() is the deterministic mode's generator (one worker, so
  // only ever called from that worker).
  std::uint32_t seeded_random() noexcept { return workers_[0]->next_random(); }
  std::size_t worker_count() const noexcept { return workers_.size(); }
  std::size_t live_fibers() noexcept;

  static void fiber_entry(fctx::transfer_t t) noexcept;

 private:
  friend struct RuntimeTestAccess;

  void worker_main(Worker* w) noexcept;
  void run_fiber_from_root(Worker* w, Fiber* f) noexcept;
  Fiber* find_local(Worker* w, bool may_run_timers = true) noexcept;
  Fiber* find_local_housekeeping(Worker* w, std::uint32_t tick, bool may_run_timers) noexcept;
  Fiber* take_local(Worker* w, LocalRunQueue::PopOrder order) noexcept;
  bool head_stalled(Worker* w) noexcept;
  Fiber* take_runnext_of(Worker* victim) noexcept;
  Fiber* pick_seeded(Worker* w) noexcept;
  Fiber* refill_from_global(Worker* w) noexcept;
  Fiber* pick_migrating(Worker* w) noexcept;
  void requeue(Worker* w, Fiber* f) noexcept;
  Fiber* steal_from_others(Worker* w, bool& others_have_work) noexcept;
  Fiber* spin_for_work(Worker* w) noexcept;
  bool any_work_visible() noexcept;
  void go_idle(Worker* w) noexcept;
  void wake_idle_worker() noexcept;
  void wake_idle_worker_slow() noexcept;
  void stop_spinning(Worker* w) noexcept;
  void check_deadlock_locked() noexcept;
  void land(fctx::transfer_t t) noexcept;
  void switch_away(Fiber* self, SwitchAction action, ParkCommit commit = {}) noexcept;
  void release_fiber(Worker* w, Fiber* f) noexcept;
  Stack take_stack(Worker* w);
  void* take_block(Worker* w);
  std::uint64_t take_fiber_id(Worker* w) noexcept;
  void release_block(Worker* w, void* block) noexcept;
  void give_stack(Worker* w, Fiber* f) noexcept;
  void about_to_run(Worker* w, Fiber* f) noexcept;
  void register_fiber(Fiber* f, Worker* w) noexcept;
  void unregister_exited(Worker* w) noexcept;
  void fail(std::exception_ptr e) noexcept;
  void unwind_all() noexcept;
  // What one pass of unwind_all() saw: fibers that may still move on their
  // own, and fibers parked in a shielded wait (a destructor's).
  struct UnwindPass {
    std::size_t moving = 0;
    std::size_t shielded = 0;
  };
  UnwindPass unwind_pass() noexcept;
  static bool parked_in_destructor(const Fiber& f) noexcept;
  bool nothing_can_move() noexcept;
  bool nothing_can_move_locked() noexcept;
  void make_runnable_queued(Fiber* f, Worker* w) noexcept;
  // describe_blocked() lists the live fibers and what each waits on; `count`
  // gets how many, `running` how many of them wait on nothing.
  std::string describe_blocked(bool include_main, std::size_t* count = nullptr,
                               std::size_t* running = nullptr);
  std::string settled_leak_report(std::size_t& leaked);
  // for_each_fiber() calls fn on every fiber that has not exited, holding
  // that fiber's registry shard lock.
  template <class Fn>
  void for_each_fiber(Fn&& fn);

  RuntimeConfig config_;
  // The deterministic or the forced-migration mode: the scheduling paths
  // test this one flag before anything mode-specific.
  bool special_mode_ = false;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<RegistryShard> shards_;
  GlobalRunQueue global_;
  std::atomic<std::uint64_t> next_id_{1};

  std::atomic<std::uint32_t> n_spinning_{0};
  std::atomic<std::uint32_t> n_idle_{0};
  std::mutex idle_mutex_;
  Worker* idle_head_ = nullptr;  // guarded by idle_mutex_
  std::atomic<bool> quit_{false};

  std::atomic<bool> stopping_{false};
  std::atomic<bool> unwind_stuck_{false};

  // The thread inside run() waits on these.
  std::mutex mutex_;
  std::condition_variable cv_;
  bool main_done_ = false;              // guarded by mutex_
  bool deadlock_ = false;               // guarded by mutex_
  std::exception_ptr main_failure_;     // guarded by mutex_
  std::exception_ptr fiber_failure_;    // guarded by mutex_
  std::string deadlock_report_;         // guarded by mutex_
  std::vector<std::uint64_t> trace_;    // deterministic mode: the worker's run order
};

// ---------------------------------------------------------------------------
// Accessors

GORO_NOINLINE inline Worker* current_worker() noexcept { return t_thread_state.worker; }

GORO_NOINLINE inline Fiber* current_fiber() noexcept {
  Worker* w = t_thread_state.worker;
  return w ? w->current : nullptr;
}

inline Runtime* current_runtime() noexcept { return g_runtime.load(std::memory_order_acquire); }

// others_ready_here() says whether the calling worker has other fibers
// waiting to run (false on a plain thread). A hint: thieves may empty the
// queue at any moment.
inline bool others_ready_here() noexcept {
  Worker* w = current_worker();
  return w && (!w->runq.empty() || w->runnext.load(std::memory_order_relaxed));
}

inline FiberIdentity current_fiber_identity() noexcept {
  Fiber* f = current_fiber();
  return f ? FiberIdentity{&f->stack, f->id} : FiberIdentity{nullptr, 0};
}

// ---------------------------------------------------------------------------
// Parker pieces that need the scheduler.

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

GORO_NOINLINE inline WakeReason Parker::park_while_stopping(Runtime* rt, ParkCommit commit) noexcept {
  if (std::uncaught_exceptions() > 0 && !rt->unwind_stuck()) {
    // A destructor's wait may still complete: other fibers' destructors run
    // too. The unwinder leaves it to its wakers (Runtime::unwind_all).
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
  if (reason == WakeReason::unwind && std::uncaught_exceptions() > 0) {
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

// ---------------------------------------------------------------------------
// Runtime: construction and lifecycle

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
  for (auto& w : workers_) {
    for (Stack& s : w->stack_cache) StackPool::instance().release(s);
    FiberBlockPool::instance().give_back(w->block_cache, w->block_cache.size());
  }
  StackPool::instance().scavenge();
  FiberBlockPool::instance().trim();
  std::lock_guard guard(g_runtime_entry);
  g_runtime.store(nullptr, std::memory_order_release);
}

inline void Runtime::start() {
  // The thread inside run() is blocked in a goro call for deadlock purposes,
  // from before the first fiber runs until wait_and_stop() returns.
  thread_parker();
  g_active_threads.fetch_sub(1, std::memory_order_seq_cst);
  for (auto& w : workers_) {
    Worker* worker = w.get();
    worker->thread = std::thread([this, worker] { worker_main(worker); });
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
  // Timers created by fibers (Timer, Ticker, after) may outlive the runtime:
  // the TimerService thread keeps firing them.
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
// self-claim, Parker::park) or finish.
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
// A wait opened with prepare_locked() is claimed under its lock, like its
// wakers do (they claim it without a compare-and-swap). That lock belongs to
// a channel the fiber may release once its wait is over, so the unwinder
// must not find a fiber's lock, lose the race to a waker, and then lock it
// after the fiber returned. Two rules exclude that:
//   - the unwinder reads a fiber's ticket and lock, and claims, holding the
//     fiber's registry shard lock; a fiber leaving a wait while `stopping_`
//     is set passes through that shard lock first (wait_out_unwinder());
//   - a fiber that read `stopping_` as false left its wait before the
//     unwinder's heavy fence below, so its claim was visible to the
//     unwinder's later read of its ticket (closed: its lock is not used).
//     This is an asymmetric Dekker (detail/steal_gate.hpp): the fiber's
//     side, on every park, is a compiler fence.
inline void Runtime::unwind_all() noexcept {
  AsymmetricFence::heavy();  // stopping_ is set
  for (;;) {
    // Quiet first, then the pass: whatever could still wake a fiber the pass
    // sees parked (a running fiber, a timer firing, an active thread) was
    // visible to the quiet check, or had already closed that fiber's wait.
    const bool quiet = !unwind_stuck() && nothing_can_move();
    const UnwindPass pass = unwind_pass();
    if (quiet && pass.moving == 0 && pass.shielded > 0) {
      unwind_stuck_.store(true, std::memory_order_seq_cst);
      continue;  // the next pass unwinds the shielded waits too
    }
    std::unique_lock lock(mutex_);
    if (live_fibers() == 0) return;
    cv_.wait_for(lock, std::chrono::milliseconds(1));
  }
}

// unwind_pass() claims, with `unwind`, the open wait of every parked fiber
// but the shielded ones (unless unwind_stuck()), and counts what it saw. A
// fiber that has not finished parking is left to a later pass: once parked
// it is claimed then, or it saw stopping_ in park() and closed its own wait.
inline Runtime::UnwindPass Runtime::unwind_pass() noexcept {
  UnwindPass pass;
  const bool unwind_shielded = unwind_stuck();
  WakeList wake;
  for_each_fiber([&](Fiber* f) {  // under f's shard lock
    // The ticket first: once it is seen open, `parked` can only be this
    // wait's (the fiber cannot leave it unclaimed). Read the other way
    // round, `parked` could be a finished wait's and the ticket a new one.
    Parker::Ticket t;
    if (!f->parker.open_ticket(t) || f->state.load(std::memory_order_acquire) != FiberState::parked) {
      ++pass.moving;  // running, or being woken
      return;
    }
    if (parked_in_destructor(*f) && !unwind_shielded) {
      ++pass.shielded;
      return;
    }
    ++pass.moving;
    std::unique_lock<SpinLock> claim_guard;  // held for a prepare_locked() wait
    if (SpinLock* lock = f->parker.claim_lock()) claim_guard = std::unique_lock(*lock);
    wake.add_if_claimed(t, WakeReason::unwind);
  });
  return pass;
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

// ---------------------------------------------------------------------------
// Spawning

template <class Fn>
Fiber* Runtime::spawn(Fn&& fn, bool is_main) {
  using Callable = std::decay_t<Fn>;
  // The control block and a small callable share one fiber block; the stack
  // is reserved now (so running out of stacks fails here) but first touched
  // when the fiber first runs (give_stack).
  constexpr std::size_t kHeader = (sizeof(Fiber) + 15) & ~std::size_t{15};
  constexpr bool kInline = sizeof(Callable) <= kFiberBlockSize - kHeader && alignof(Callable) <= 16;
  static_assert(kHeader + 64 <= kFiberBlockSize, "a fiber block must leave room for a callable");
  Worker* w = current_worker();
  if (w && w->rt != this) w = nullptr;
  void* block = take_block(w);
  Stack stack;
  try {
    stack = take_stack(w);
  } catch (...) {
    release_block(w, block);
    throw;
  }
  Fiber* f = new (block) Fiber(stack, take_fiber_id(w));
  try {
    if constexpr (kInline) {
      f->callable = new (static_cast<char*>(block) + kHeader) Callable(std::forward<Fn>(fn));
    } else {
      f->callable = new Callable(std::forward<Fn>(fn));
      f->callable_on_heap = true;
    }
  } catch (...) {
    f->~Fiber();
    StackPool::instance().release(stack);
    release_block(w, block);
    throw;
  }
  f->invoke = [](void* c) { (*static_cast<Callable*>(c))(); };
  f->destroy = [](void* c, bool on_heap) noexcept {
    if (on_heap) delete static_cast<Callable*>(c);
    else static_cast<Callable*>(c)->~Callable();
  };
  f->is_main = is_main;
  register_fiber(f, w);
  make_runnable(f, w);
  return f;
}

// OutsideSpawn is what spawn_from_outside() did.
enum class OutsideSpawn : std::uint8_t { spawned, no_runtime, stopping };

// spawn_from_outside() calls `spawn(rt)` with the running runtime, from a
// thread that is not one of its workers (a plain thread, or goro's timer
// thread), unless no runtime is running or it is stopping: a thread spawning
// in a loop would keep a stopping runtime from ever finishing, and a fiber
// spawned after the unwinding would never run. g_runtime_entry keeps the
// runtime from being destroyed between the check and the spawn. With
// `join_deadlock_count` the calling thread counts as able to move before the
// fiber exists (the fiber may wait for it).
template <class SpawnOn>
OutsideSpawn spawn_from_outside(bool join_deadlock_count, SpawnOn&& spawn) {
  std::lock_guard guard(g_runtime_entry);
  Runtime* rt = current_runtime();
  if (!rt) return OutsideSpawn::no_runtime;
  if (rt->stopping()) return OutsideSpawn::stopping;
  if (join_deadlock_count) Parker::current();
  spawn(rt);
  return OutsideSpawn::spawned;
}

// about_to_run() readies `f`, which worker `w` is about to switch to: it
// records the worker and, on the first run, gives the fiber its stack.
inline void Runtime::about_to_run(Worker* w, Fiber* f) noexcept {
  w->current = f;
  f->worker = w;
  if (!f->started()) give_stack(w, f);
}

// give_stack() prepares a fiber's first run on worker `w`: it trades the
// stack reserved at spawn for the one this worker released last, which is
// still warm in cache, and builds the context on it.
inline void Runtime::give_stack(Worker* w, Fiber* f) noexcept {
  if (!w->stack_cache.empty()) std::swap(f->stack, w->stack_cache.back());
  StackPool::instance().first_run(f->stack);
#if GORO_ASAN
  // A pooled stack keeps the poisoned redzones of the frames its last fiber
  // never returned from.
  __asan_unpoison_memory_region(f->stack.base, f->stack.size);
#endif
  f->ctx.make(f->stack.base, f->stack.size, &Runtime::fiber_entry);
}

// take_stack() and take_block() serve `w` from its caches, refilled in
// batches; plain threads (w null) go to the pools directly.
inline Stack Runtime::take_stack(Worker* w) {
  if (!w) return StackPool::instance().acquire(config_.stack_size);
  if (w->stack_cache.empty()) {
    StackPool::instance().acquire_batch(config_.stack_size, Worker::kStackCache / 2, w->stack_cache);
  }
  return w->stack_cache.pop();
}

// take_fiber_id() hands out ids from a block reserved per worker, so
// spawning workers do not share the counter's cache line (and pay no locked
// add per fiber). Ids stay unique, not ordered across workers.
inline std::uint64_t Runtime::take_fiber_id(Worker* w) noexcept {
  if (!w) return next_id_.fetch_add(1, std::memory_order_relaxed);
  if (w->next_fiber_id == w->fiber_id_end) {
    w->next_fiber_id = next_id_.fetch_add(Worker::kFiberIdBlock, std::memory_order_relaxed);
    w->fiber_id_end = w->next_fiber_id + Worker::kFiberIdBlock;
  }
  return w->next_fiber_id++;
}

inline void* Runtime::take_block(Worker* w) {
  if (!w) return FiberBlockPool::instance().acquire();
  if (w->block_cache.empty()) FiberBlockPool::instance().refill(w->block_cache, Worker::kBlockCache / 2);
  // The next blocks were most likely freed on another core: ask for them
  // now, so their transfers overlap with filling this one (fiber_block.hpp).
  if (void* const* ahead = w->block_cache.upcoming(kBlockPrefetchDistance)) prefetch_block(*ahead);
  return w->block_cache.pop();
}

inline void Runtime::release_block(Worker* w, void* block) noexcept {
  if (!w) {
    FiberBlockPool::instance().release(block);
    return;
  }
  w->block_cache.push(block);
  if (w->block_cache.size() > Worker::kBlockCache) {
    FiberBlockPool::instance().give_back(w->block_cache, Worker::kBlockCache / 2);
  }
}

// register_fiber(), make_runnable(f, w) and wake_idle_worker()'s two checks
// are forced inline: GCC's inlining budget is per translation unit, and a
// program with more goro code in it (a large select) got them as calls,
// 24-41 instructions more per spawn (performance.md, twentieth round).
GORO_ALWAYS_INLINE void Runtime::register_fiber(Fiber* f, Worker* w) noexcept {
  f->shard = w ? w->index : static_cast<std::uint32_t>(workers_.size());
  RegistryShard& shard = shards_[f->shard];
  std::lock_guard guard(shard.lock);
  f->reg_prev = nullptr;
  f->reg_next = shard.head;
  if (shard.head) shard.head->reg_prev = f;
  shard.head = f;
  ++shard.count;
}

// unregister_exited() takes the fibers that exited on `w` out of their
// registry shards, one lock per shard for the whole batch, and frees their
// blocks. Deferring this from each exit to a batch matters because a fiber
// usually exits on another worker than the one that spawned it: one locked
// shard per exit bounced that shard's lock and the neighbouring fibers'
// links between the cores (spawn+join: 18% of its time).
inline void Runtime::unregister_exited(Worker* w) noexcept {
  Fiber* pending = w->exited;
  w->exited = nullptr;
  w->exited_count = 0;
  Fiber* freed = nullptr;
  while (pending) {
    const std::uint32_t index = pending->shard;
    RegistryShard& shard = shards_[index];
    std::lock_guard guard(shard.lock);
    for (Fiber** link = &pending; *link;) {
      Fiber* f = *link;
      if (f->shard != index) {
        link = &f->next_runnable;
        continue;
      }
      *link = f->next_runnable;
      if (f->reg_prev) f->reg_prev->reg_next = f->reg_next; else shard.head = f->reg_next;
      if (f->reg_next) f->reg_next->reg_prev = f->reg_prev;
      --shard.count;
      f->next_runnable = freed;
      freed = f;
    }
  }
  while (freed) {
    Fiber* next = freed->next_runnable;
    freed->~Fiber();
    release_block(w, freed);
    freed = next;
  }
}

// release_fiber() frees an exited fiber's resources; runs on another context.
// Its stack is reused at once; its block once unregister_exited() took it
// out of the registry (at once while the runtime stops, so the unwinder's
// count of live fibers falls as fibers finish).
inline void Runtime::release_fiber(Worker* w, Fiber* f) noexcept {
  if (!f) return;
  Stack stack = f->stack;
  f->ctx.release();
  f->exited.store(true, std::memory_order_relaxed);
  f->next_runnable = w->exited;
  w->exited = f;
  w->stack_cache.push(stack);  // room: trimmed below after every push
  if (w->stack_cache.size() > Worker::kStackCache) {
    StackPool::instance().release_batch(w->stack_cache, Worker::kStackCache / 2);
  }
  if (stopping()) {
    unregister_exited(w);
    std::lock_guard guard(mutex_);
    cv_.notify_all();
  } else if (++w->exited_count >= Worker::kExitBatch) {
    unregister_exited(w);
  }
}

// ---------------------------------------------------------------------------
// Making fibers runnable and waking workers

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

// ---------------------------------------------------------------------------
// Finding work

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
  if (Fiber* f = w->runq.pop(order)) return f;
  return refill_from_global(w);
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
  if (timeout != 0) futex_wait(&w->wake_word, 0, timeout);
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

// ---------------------------------------------------------------------------
// Worker loop and switching

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
    report_overflow_and_die(h.fiber->id, h.fiber->stack.size, h.fiber->stack.guarded);
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
