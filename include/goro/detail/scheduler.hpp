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
// Lock order: registry shard lock (several only in the unwinder, in index
// order) -> UnwindOrder's lock -> a wait's claim lock, a channel's say (the
// unwinder's claims); idle_mutex_ -> registry shard lock (the deadlock
// report); run-thread mutex_ -> registry shard lock (the unwinder's count).
// No scheduler lock is held across a switch.
//
// Files. This header declares the Runtime, its workers and the thread-local
// state; the definitions are in scheduler/, one part per concern:
//   parking.hpp    the Parker's scheduler side (plain threads, fibers, stopping)
//   lifecycle.hpp  start, stop, unwinding, deadlock and leak reports
//   spawn.hpp      fiber blocks, ids, stacks and the registry
//   wake.hpp       making fibers runnable, waking idle workers
//   find_work.hpp  local queues, stealing, spinning, idling, the deadlock check
//   switch.hpp     the worker loop, switching, parking/yielding/exiting fibers
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
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
#include <system_error>
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
#include "unwind_order.hpp"

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

// RegistryFreeze holds every registry shard lock, taken in index order, so
// that no fiber registers or leaves the registry while it lives.
class RegistryFreeze {
 public:
  explicit RegistryFreeze(std::vector<RegistryShard>& shards) noexcept : shards_(shards) {
    for (RegistryShard& shard : shards_) shard.lock.lock();
  }
  ~RegistryFreeze() {
    for (auto it = shards_.rbegin(); it != shards_.rend(); ++it) it->lock.unlock();
  }
  RegistryFreeze(const RegistryFreeze&) = delete;
  RegistryFreeze& operator=(const RegistryFreeze&) = delete;

  // for_each_registered() calls fn on every registered fiber, exited or
  // not; for_each_fiber() on those that have not exited.
  template <class Fn>
  void for_each_registered(Fn&& fn) const {
    for (RegistryShard& shard : shards_) {
      for (Fiber* f = shard.head; f; f = f->reg_next) fn(*f);
    }
  }
  template <class Fn>
  void for_each_fiber(Fn&& fn) const {
    for_each_registered([&fn](Fiber& f) {
      if (!f.exited.load(std::memory_order_relaxed)) fn(&f);
    });
  }

 private:
  std::vector<RegistryShard>& shards_;
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
  // prefetch_upcoming() asks for this many cache lines of the next fiber's
  // stack: a fiber parked in a channel receive sits 464 bytes below its
  // stack's top.
  static constexpr std::size_t kResumePrefetchLines = 8;
  static constexpr std::int64_t kStealGraceNs = 10'000;
  static constexpr std::int64_t kLookIntervalNs = 5'000;
  static constexpr std::int64_t kIdleSpinNs = 5'000;
  static constexpr std::int64_t kBusySpinNs = 500'000;
  // kIdlePollNs: how often an idle worker looks for unannounced work while
  // another is busy (sleep_idle()).
  static constexpr std::int64_t kIdlePollNs = 10'000'000;

  explicit Runtime(const RuntimeConfig& config);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // spawn() creates a fiber running `fn` and makes it runnable.
  template <class Fn>
  Fiber* spawn(Fn&& fn, bool is_main = false);

  // start_workers() creates the worker threads, which wait at a gate: if
  // one cannot be created, it joins the others and throws std::system_error
  // before anything ran. open_gate() lets them run; a runtime destroyed
  // with its gate still closed (spawning main threw) joins them unstarted.
  // wait_and_stop() blocks until main returns (or a fiber fails, or a
  // deadlock), unwinds what is left, joins the workers and throws what run()
  // must throw.
  void start_workers();
  void open_gate() noexcept;
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
  // may_have_spawned_live() says fibers `f` spawned may still be alive and
  // refer to its frame, so the unwinder ends it after them (unwind_all()).
  bool may_have_spawned_live(const Fiber& f) const noexcept {
    return f.spawned.load(std::memory_order_relaxed) ||
           (f.is_main && spawned_outside_.load(std::memory_order_relaxed));
  }
  bool seeded() const noexcept { return config_.sched_seed != 0; }
  // seeded_random() is the deterministic mode's generator (one worker, so
  // only ever called from that worker).
  std::uint32_t seeded_random() noexcept { return workers_[0]->next_random(); }
  std::size_t worker_count() const noexcept { return workers_.size(); }
  std::size_t live_fibers() noexcept;

  [[noreturn]] static void fiber_entry(fctx::transfer_t t) noexcept;

 private:
  friend struct RuntimeTestAccess;

  void worker_main(Worker* w) noexcept;
  void run_fiber_from_root(Worker* w, Fiber* f) noexcept;
  Fiber* find_local(Worker* w, bool may_run_timers = true) noexcept;
  Fiber* find_local_housekeeping(Worker* w, std::uint32_t tick, bool may_run_timers) noexcept;
  Fiber* take_local(Worker* w, LocalRunQueue::PopOrder order) noexcept;
  void prefetch_upcoming(Worker* w, LocalRunQueue::PopOrder order) noexcept;
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
  void sleep_idle(Worker* w, std::int64_t until) noexcept;
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
  void place_in_spawn_tree(Fiber* f, Worker* w) noexcept;
  void register_fiber(Fiber* f, Worker* w) noexcept;
  void unregister_exited(Worker* w) noexcept;
  void fail(std::exception_ptr e) noexcept;
  void unwind_all() noexcept;
  // What one pass of unwind_all() saw: fibers that may still move on their
  // own, and fibers parked in a shielded wait (a destructor's).
  struct UnwindPass {
    std::size_t moving = 0;
    std::size_t shielded = 0;   // destructors' waits
    std::size_t relocking = 0;  // StopRule::relock waits
    std::size_t withheld = 0;   // spawners left until deeper fibers are gone
  };
  UnwindPass unwind_pass(bool claim_one_relock = false) noexcept;
  void release_withheld() noexcept;
  bool wait_for_unwinding(std::chrono::steady_clock::time_point next_pass) noexcept;
  static bool parked_in_destructor(const Fiber& f) noexcept;
  static bool parked_in_open_wait(Fiber& f, Parker::Ticket& t) noexcept;
  static void claim_to_unwind(Fiber& f, Parker::Ticket t, WakeList& wake) noexcept;
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
  // The workers' start gate (start_workers()): kGateClosed until
  // open_gate(), or kGateAbandoned when the runtime gives up before it.
  static constexpr std::uint32_t kGateClosed = 0, kGateOpen = 1, kGateAbandoned = 2;
  std::atomic<std::uint32_t> gate_{kGateClosed};
  void abandon_workers() noexcept;

  std::atomic<bool> stopping_{false};
  std::atomic<bool> unwind_stuck_{false};
  // A fiber spawned outside any fiber counts as main's (place_in_spawn_tree).
  std::atomic<bool> spawned_outside_{false};
  UnwindOrder unwind_order_;

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

}  // namespace goro::detail

#include "scheduler/parking.hpp"
#include "scheduler/lifecycle.hpp"
#include "scheduler/spawn.hpp"
#include "scheduler/wake.hpp"
#include "scheduler/find_work.hpp"
#include "scheduler/switch.hpp"
