// Fiber stacks: virtual reservations whose pages the kernel commits on first
// touch, so a parked fiber that used little stack costs about one page.
//
// Guard markers (Linux 6.13 and later). madvise(MADV_GUARD_INSTALL) turns a
// page into a guard without a mapping of its own: the page-table entry
// itself faults. Where the kernel has it, every stack is guarded, and stacks
// are carved kSlabStacks at a time from one mapping, each slot a guard page
// below its stack: one mmap per 64 stacks and one cheap madvise per stack
// (about 0.5 us here, against 2 us for an mmap and an mprotect), and a
// million guarded stacks use 16,000 kernel mappings.
//
// The mapping budget (older kernels). There a guard page below a stack is a
// PROT_NONE mapping of its own, splitting the region: two kernel mappings
// per stack, and vm.max_map_count is 65530 by default, so one guarded stack
// per fiber cannot reach a million fibers. goro then guards stacks while
// the number of them alive stays under a quarter of max_map_count (16382 by
// default); stacks beyond that budget are carved from slabs without guards:
// the scheduler checks the saved stack pointer against the stack's bottom
// each time the fiber switches out. A guarded overflow is caught exactly by
// the SIGSEGV handler (detail/overflow.hpp); an unguarded one only if the
// fiber is still beyond its stack when it next switches, and it may already
// have scribbled on the neighbouring stack. (A canary word at the bottom
// would cost every fiber a second resident page.) GORO_GUARD_MARKERS=0 in
// the environment selects this scheme on any kernel.
//
// First pages. A new slab's guard markers go in with one batched call, and
// so do its stacks' top pages, committed ahead of their first run while
// fewer than kPopulatedIdleCap populated stacks wait for one, or while
// populated stacks are being run on (see populate_top_pages()). Both matter
// most under a hypervisor, where a first-touch fault costs 11-15 us and
// each madvise a TLB-flush interrupt.
//
// Reuse. Freed stacks go back to a pool, most recent first, with their
// committed pages (a respawned fiber touches warm memory). Above a watermark
// of kRetainWarm stacks, scavenge() -- run by idle workers and at the end of
// run(), like Go's background scavenger -- unmaps the stacks that have a
// mapping of their own and gives the pages of slab stacks back with
// MADV_DONTNEED, 64 stacks a call (their guard markers stay).
//
// Thread-safety: StackPool is safe from any thread; it is used by the
// workers' local caches (Scheduler) in batches.
#pragma once

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "bounded_lifo.hpp"
#include "spin_lock.hpp"

namespace goro::detail {

inline std::size_t page_size() noexcept {
  static const std::size_t size = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

// kMadvGuardInstall is Linux's MADV_GUARD_INSTALL, missing from older headers;
// kMadvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14).
inline constexpr int kMadvGuardInstall = 102;
inline constexpr int kMadvPopulateWrite = 23;

// advise_ranges() applies `advice` to the `n` (at most kMaxAdvisedRanges)
// ranges of `length` bytes at `starts`: with one process_madvise() call
// where the kernel accepts that advice there (Linux 6.18 does for guard
// markers, populating and giving pages back), else, if `one_by_one`, with
// one madvise() per range. It returns whether every range was advised.
// One call for 64 ranges matters: a madvise that changes page tables in a
// threaded process ends in a TLB flush on every CPU the process runs on,
// and under a hypervisor those interrupts cost microseconds apiece (giving
// back 64 stacks' pages here: 0.2 ms in one call, 3.6 ms in 64).
inline constexpr std::size_t kMaxAdvisedRanges = 64;
inline bool advise_ranges(char* const* starts, std::size_t n, std::size_t length, int advice,
                          bool one_by_one) noexcept {
  std::array<iovec, kMaxAdvisedRanges> ranges;
  if (n > ranges.size()) return false;
  for (std::size_t i = 0; i < n; ++i) ranges[i] = iovec{starts[i], length};
#if defined(SYS_process_madvise) && defined(SYS_pidfd_open)
  // PIDFD_SELF_THREAD names our own address space without a descriptor
  // (6.18 has it); older kernels answer EBADF and get a pidfd per call (a
  // cached one would name the parent after fork()).
  constexpr int kPidfdSelfThread = -10000;
  long done = ::syscall(SYS_process_madvise, kPidfdSelfThread, ranges.data(), n, advice, 0);
  if (done < 0 && errno == EBADF) {
    if (const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0)); pidfd >= 0) {
      done = ::syscall(SYS_process_madvise, pidfd, ranges.data(), n, advice, 0);
      ::close(pidfd);
    }
  }
  if (done == static_cast<long>(n * length)) return true;
#endif
  if (!one_by_one) return false;
  bool all = true;
  for (std::size_t i = 0; i < n; ++i) all = ::madvise(starts[i], length, advice) == 0 && all;
  return all;
}

// Stack is one fiber stack: [base, base + size) is usable and grows down from
// top(); a guarded stack has one faulting page just below base.
struct Stack {
  char* base = nullptr;
  std::size_t size = 0;
  bool guarded = false;
  bool in_slab = false;  // carved from a slab: never unmapped alone while pooled
  // populated: its top page was committed ahead and no fiber has run on it
  // yet (StackPool::populated_idle() counts these).
  bool populated = false;

  char* top() const noexcept { return base + size; }
  explicit operator bool() const noexcept { return base != nullptr; }
  // overflowed() says whether a saved stack pointer lies below the stack.
  bool overflowed(const void* sp) const noexcept { return static_cast<const char*>(sp) < base + 256; }
};

// StackCache is a worker's private LIFO of free stacks (bounded_lifo.hpp).
using StackCache = BoundedLifo<Stack, 257>;  // Worker::kStackCache + 1

class StackPool {
 public:
  static constexpr std::size_t kRetainWarm = 4096;
  static constexpr std::size_t kSlabStacks = 64;
  static constexpr std::size_t kPopulatedIdleCap = 4096;  // 16 MB of 4 KiB pages, as kRetainWarm
  static_assert(kSlabStacks <= kMaxAdvisedRanges, "a slab's guards are installed in one call");

  static StackPool& instance() {
    static StackPool pool;
    return pool;
  }

  // acquire() returns a stack of `size` usable bytes (rounded up to pages).
  // Throws std::system_error(ENOMEM) naming the size when the kernel refuses.
  Stack acquire(std::size_t size);
  // round_size() is the usable size acquire(size) gives.
  static std::size_t round_size(std::size_t size) noexcept {
    const std::size_t page = page_size();
    return std::max<std::size_t>((size + page - 1) / page * page, 4 * page);
  }
  // acquire_batch() appends up to `n` stacks (they must fit) to `out`,
  // taking the pool's lock once: the pool's, else one new stack. It throws
  // as acquire() does, and only when it appended none. release_batch()
  // returns the oldest `n` of `stacks`.
  void acquire_batch(std::size_t size, std::size_t n, StackCache& out);
  void release_batch(StackCache& stacks, std::size_t n) noexcept;
  // release() takes back a stack that no fiber runs on any more.
  void release(Stack stack) noexcept;
  // first_run() notes that a fiber is about to start on `s`: a populated
  // stack leaves the idle count and counts as put to use.
  void first_run(Stack& s) noexcept {
    if (!s.populated) return;
    s.populated = false;
    populated_idle_.fetch_sub(1, std::memory_order_relaxed);
    populated_runs_.fetch_add(1, std::memory_order_relaxed);
  }
  // scavenge() gives back the pages of the oldest pooled stacks beyond
  // kRetainWarm. Idle workers and the end of run() call it, so a burst of
  // fibers reuses warm stacks and the memory returns once things calm down.
  void scavenge() noexcept;
  bool has_excess() const noexcept { return warm_count_.load(std::memory_order_relaxed) > kRetainWarm; }

  // guarded_live() counts the live stacks with a guard mapping of their own
  // (the budgeted kind); guard_markers() says whether stacks are guarded by
  // markers instead (then every stack is guarded and there is no budget).
  std::size_t guarded_live() const noexcept { return guarded_live_.load(std::memory_order_relaxed); }
  std::size_t guard_budget() const noexcept { return guard_budget_; }
  // populated_idle() counts the stacks whose top page was committed ahead
  // of their first run and that no fiber has run on yet.
  std::size_t populated_idle() const noexcept { return populated_idle_.load(std::memory_order_relaxed); }
  bool guard_markers() const noexcept { return guard_markers_; }

 private:
  StackPool() : guard_budget_(read_map_budget()), guard_markers_(probe_guard_markers()) {}
  ~StackPool() = default;  // the process is ending: the kernel takes the mappings back

  static std::size_t read_map_budget() noexcept;
  static bool probe_guard_markers() noexcept;
  Stack map_stack(std::size_t size);
  void unmap(Stack stack) noexcept;
  bool keep_locked(Stack s) noexcept;

  Stack carve_slab(std::size_t size, bool guarded);
  void populate_top_pages(std::array<Stack, kSlabStacks>& stacks) noexcept;
  static void give_back_pages(const Stack* stacks, std::size_t n) noexcept;
  // forget_populated() takes stacks whose pages go away before any fiber
  // ran on them out of the populated_idle_ count.
  void forget_populated(Stack* first, std::size_t n) noexcept {
    for (std::size_t i = 0; i < n; ++i) {
      if (first[i].populated) populated_idle_.fetch_sub(1, std::memory_order_relaxed);
      first[i].populated = false;
    }
  }
  // fault_in_top_page() commits the page a fiber's first frames will use,
  // here, on the thread that just mapped the stack. Left to the fiber's
  // first run, the fault would land on whichever worker runs it, while this
  // thread goes on mapping: the two then wait on each other for the address
  // space (context cancel's first round, 10,000 fresh stacks on 2 workers:
  // 25 -> 6 us per fiber).
  static void fault_in_top_page(const Stack& s) noexcept {
    static_cast<volatile char*>(s.base)[s.size - 1] = 0;
  }

  SpinLock lock_;
  // All guarded by lock_ and of size size_: warm_ keep their pages (at most
  // kRetainWarm), cold_ were given back with madvise, slab_ were never used.
  std::vector<Stack> warm_;
  std::vector<Stack> cold_;
  std::vector<Stack> slab_;
  std::atomic<std::size_t> warm_count_{0};
  std::size_t size_ = 0;     // guarded by lock_
  std::atomic<std::size_t> guarded_live_{0};
  // Stacks whose top page was populated and that no fiber has run on yet:
  // the memory populating may waste, capped at kPopulatedIdleCap unless
  // populated stacks are being run on (populated_runs_ moved since the last
  // slab was carved).
  std::atomic<std::size_t> populated_idle_{0};
  std::atomic<std::uint64_t> populated_runs_{0};
  std::atomic<std::uint64_t> populated_runs_at_carve_{0};
  const std::size_t guard_budget_;
  const bool guard_markers_;
};

inline std::size_t StackPool::read_map_budget() noexcept {
  std::size_t max_maps = 65530;
  if (std::FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    unsigned long v = 0;
    if (std::fscanf(f, "%lu", &v) == 1 && v > 0) max_maps = v;
    std::fclose(f);
  }
  return max_maps / 4;
}

// probe_guard_markers() tries MADV_GUARD_INSTALL on a scratch mapping.
inline bool StackPool::probe_guard_markers() noexcept {
  if (const char* env = std::getenv("GORO_GUARD_MARKERS"); env && std::string_view(env) == "0") return false;
  const std::size_t page = page_size();
  void* p = ::mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  const bool ok = ::madvise(p, page, kMadvGuardInstall) == 0;
  ::munmap(p, 2 * page);
  return ok;
}

inline Stack StackPool::acquire(std::size_t size) {
  size = round_size(size);
  {
    std::lock_guard guard(lock_);
    if (size != size_) {  // a runtime with another stack size: the pool restarts
      for (auto* list : {&warm_, &cold_, &slab_}) {
        for (Stack& s : *list) unmap(s);
        list->clear();
      }
      size_ = size;
    }
    for (auto* list : {&warm_, &cold_, &slab_}) {
      if (!list->empty()) {
        Stack s = list->back();
        list->pop_back();
        return s;
      }
    }
  }
  if (guard_markers_) return carve_slab(size, true);
  if (guarded_live_.load(std::memory_order_relaxed) < guard_budget_) return map_stack(size);
  return carve_slab(size, false);
}

// carve_slab() maps kSlabStacks stacks at once, each below a guard marker
// if `guarded`, and keeps all but one.
inline Stack StackPool::carve_slab(std::size_t size, bool guarded) {
  const std::size_t guard = guarded ? page_size() : 0;
  const std::size_t slot = size + guard;
  void* p = ::mmap(nullptr, slot * kSlabStacks, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(),
                            "goro: cannot map fiber stacks of " + std::to_string(size) + " bytes");
  }
  char* region = static_cast<char*>(p);
  std::array<char*, kSlabStacks> pages;
  for (std::size_t i = 0; i < kSlabStacks; ++i) pages[i] = region + i * slot;
  if (guarded && !advise_ranges(pages.data(), kSlabStacks, page_size(), kMadvGuardInstall, true)) {
    const int err = errno;
    ::munmap(region, slot * kSlabStacks);
    throw std::system_error(err, std::generic_category(), "goro: cannot install a stack guard page");
  }
  std::array<Stack, kSlabStacks> stacks;
  for (std::size_t i = 0; i < kSlabStacks; ++i) stacks[i] = Stack{region + i * slot + guard, size, guarded, true};
  populate_top_pages(stacks);
  std::lock_guard lock(lock_);
  if (size != size_) {  // the pool restarted with another size meanwhile
    forget_populated(stacks.data(), kSlabStacks);
    ::munmap(region, slot * kSlabStacks);
    throw std::logic_error("goro: two runtimes with different stack sizes at once");
  }
  slab_.insert(slab_.end(), stacks.begin() + 1, stacks.end());
  return stacks[0];
}

// populate_top_pages() commits the top page of each new stack in `stacks`
// in one call, unless kPopulatedIdleCap populated stacks still wait for a
// fiber to run on them and fewer than kSlabStacks / 16 populated stacks
// were first run on since the last slab was carved. Every fiber's first
// frames land there; a fault would land on the worker that starts the
// fiber and cost 1.8 us on bare hardware and 11-15 us under some
// hypervisors, while this batch costs the carving worker about 1 us a page
// (context cancel, 10,000 fresh watchers: 185 -> 98 ms for the first
// round). The cap bounds the waste where spawned fibers never run on the
// stack reserved for them: a burst of short fibers each starts on the warm
// stack its predecessor released (Runtime::give_stack). Populated stacks
// being run on while slabs are carved mark the other case, fibers that park
// on their own stacks: then populating goes on past the cap. Best effort,
// never page by page (an older kernel would refuse each call): a page left
// out faults in on first use.
inline void StackPool::populate_top_pages(std::array<Stack, kSlabStacks>& stacks) noexcept {
  const std::uint64_t runs = populated_runs_.load(std::memory_order_relaxed);
  const std::uint64_t runs_before = populated_runs_at_carve_.exchange(runs, std::memory_order_relaxed);
  const bool being_used = runs - runs_before >= kSlabStacks / 16;
  if (populated_idle_.load(std::memory_order_relaxed) >= kPopulatedIdleCap && !being_used) return;
  std::array<char*, kSlabStacks> tops;
  for (std::size_t i = 0; i < kSlabStacks; ++i) tops[i] = stacks[i].top() - page_size();
  if (!advise_ranges(tops.data(), kSlabStacks, page_size(), kMadvPopulateWrite, false)) return;
  for (Stack& s : stacks) s.populated = true;
  populated_idle_.fetch_add(kSlabStacks, std::memory_order_relaxed);
}

inline Stack StackPool::map_stack(std::size_t size) {
  const std::size_t page = page_size();
  const bool guarded = true;
  const std::size_t total = size + page;
  void* p = ::mmap(nullptr, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw std::system_error(errno, std::generic_category(),
                            "goro: cannot map a fiber stack of " + std::to_string(size) + " bytes");
  }
  char* region = static_cast<char*>(p);
  if (guarded && ::mprotect(region, page, PROT_NONE) != 0) {
    int err = errno;
    ::munmap(region, total);
    throw std::system_error(err, std::generic_category(),
                            "goro: cannot protect the guard page of a fiber stack");
  }
  Stack s{guarded ? region + page : region, size, guarded};
  fault_in_top_page(s);
  guarded_live_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

inline void StackPool::unmap(Stack s) noexcept {
  forget_populated(&s, 1);
  const std::size_t guard = s.guarded ? page_size() : 0;
  ::munmap(s.base - guard, s.size + guard);
  if (s.guarded && !s.in_slab) guarded_live_.fetch_sub(1, std::memory_order_relaxed);
}

inline void StackPool::release(Stack s) noexcept {
  std::unique_lock guard(lock_);
  if (s.size != size_) {
    guard.unlock();
    unmap(s);
    return;
  }
  if (!keep_locked(s)) {  // no memory to remember it: give it back instead
    guard.unlock();
    unmap(s);
  }
}

// keep_locked() pools `s` (lock_ held); false if the pool cannot grow.
inline bool StackPool::keep_locked(Stack s) noexcept {
  try {
    warm_.push_back(s);  // trimmed later, off the hot path (scavenge)
  } catch (const std::bad_alloc&) {
    return false;
  }
  warm_count_.store(warm_.size(), std::memory_order_relaxed);
  return true;
}

inline void StackPool::acquire_batch(std::size_t size, std::size_t n, StackCache& out) {
  size = round_size(size);
  {
    std::lock_guard guard(lock_);
    if (size == size_) {
      // Whole ranges off the back (the warmest end): the batches carry a
      // 100,000-fiber burst through the pool, and one push_back per stack
      // was 9% of spawn+join's instructions.
      const std::size_t wanted = n;
      for (auto* list : {&warm_, &cold_, &slab_}) {
        const std::size_t k = std::min(n, list->size());
        out.append(list->data() + (list->size() - k), list->data() + list->size());
        list->resize(list->size() - k);
        n -= k;
      }
      warm_count_.store(warm_.size(), std::memory_order_relaxed);
      // Any stack taken is enough: mapping more now could fail, and a
      // spawn must not fail while its worker holds stacks.
      if (n < wanted) return;
    }
  }
  out.push(acquire(size));  // maps new stacks (or resets the pool's size)
}

inline void StackPool::release_batch(StackCache& stacks, std::size_t n) noexcept {
  n = std::min(n, stacks.size());
  std::unique_lock guard(lock_);
  std::size_t kept = 0;
  while (kept < n && stacks.begin()[kept].size == size_) ++kept;
  try {
    warm_.insert(warm_.end(), stacks.begin(), stacks.begin() + kept);
    warm_count_.store(warm_.size(), std::memory_order_relaxed);
  } catch (const std::bad_alloc&) {
    kept = 0;  // no memory to remember them: give them all back instead
  }
  guard.unlock();
  for (std::size_t i = kept; i < n; ++i) unmap(stacks.begin()[i]);  // another size, or no memory
  stacks.drop_front(n);
}

// give_back_pages() hands the committed pages of the slab stacks among
// `stacks` back to the kernel (the others are unmapped whole), up to
// kMaxAdvisedRanges stacks per call. Pooled stacks all have one size: the
// pool keeps only stacks of size_ and empties itself when size_ changes.
inline void StackPool::give_back_pages(const Stack* stacks, std::size_t n) noexcept {
  std::array<char*, kMaxAdvisedRanges> bases;
  std::size_t batched = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (stacks[i].in_slab) bases[batched++] = stacks[i].base;
    if (batched > 0 && (batched == bases.size() || i + 1 == n)) {
      advise_ranges(bases.data(), batched, stacks[i].size, MADV_DONTNEED, true);
      batched = 0;
    }
  }
}

inline void StackPool::scavenge() noexcept {
  if (warm_count_.load(std::memory_order_relaxed) <= kRetainWarm) return;
  // In chunks taken off the back (all of them have gone cold by the time a
  // worker has idled this long), through a fixed array: scavenging needs no
  // memory beyond cold_'s growth, and a stack cold_ cannot take is unmapped.
  std::array<Stack, 256> chunk;
  for (;;) {
    std::size_t n = 0;
    {
      std::lock_guard guard(lock_);
      while (n < chunk.size() && warm_.size() > kRetainWarm) {
        chunk[n++] = warm_.back();
        warm_.pop_back();
      }
      warm_count_.store(warm_.size(), std::memory_order_relaxed);
    }
    if (n == 0) return;
    give_back_pages(chunk.data(), n);
    std::unique_lock guard(lock_);
    forget_populated(chunk.data(), n);
    for (std::size_t i = 0; i < n; ++i) {
      Stack st = chunk[i];
      bool kept = false;
      if (st.in_slab && st.size == size_) {  // the others are unmapped: two mappings each
        try {
          cold_.push_back(st);
          kept = true;
        } catch (const std::bad_alloc&) {
        }
      }
      if (!kept) {
        guard.unlock();
        unmap(st);
        guard.lock();
      }
    }
  }
}

}  // namespace goro::detail
