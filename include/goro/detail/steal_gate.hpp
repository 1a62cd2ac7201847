// StealGate: mutual exclusion between a worker and the thieves that may take
// the fiber in its runnext slot, in which the worker's side costs no locked
// instruction. After the "asymmetric Dekker" of user-space RCU and folly's
// asymmetric barriers: the rare side (a thief) pays for a process-wide
// barrier, membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), so the frequent
// side (the owner, on almost every wake-up and switch) needs only a compiler
// fence where it would otherwise need an exchange.
//
// Protocol.
//   owner:  owner_in = 1; light fence; if thief_in: owner_in = 0, wait until
//           !thief_in, retry. ... section ... owner_in = 0 (release).
//   thief:  CAS thief_in 0 -> 1 (one thief at a time; a busy gate is skipped);
//           heavy fence; wait until !owner_in. ... section ... thief_in = 0.
// Why it excludes. membarrier makes every running thread of the process pass
// a full barrier at some point P of its program while the call runs. If the
// owner's `owner_in = 1` precedes P, the thief's read after the call sees
// it (or the later `owner_in = 0`, released after the owner's section); if it
// follows P, so does the owner's read of `thief_in`, which then sees 1. Either
// the thief waits out the owner's section or the owner backs off; both may
// happen, never neither. Where membarrier is missing (an old kernel, a
// seccomp filter, GORO_MEMBARRIER=0), both fences are
// std::atomic_thread_fence(seq_cst): the plain Dekker, as costly for the
// owner as the exchange it replaced.
//
// Where it pays. On this project's 2-core VM a locked instruction costs 6-7
// ns and a membarrier 300-600 ns (plus an interrupt on the other cores). A
// runnext steal is rare (its worker must have run one fiber for a whole
// steal grace), so the gate guards runnext; the ring's head keeps Go's CAS,
// because deep rings are stolen from often (tried: gating the ring too made
// spawn+join 11% and context cancel fan-out 2x slower, with 12,000-16,000
// membarriers per run).
#pragma once

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "config.hpp"

namespace goro::detail {

// AsymmetricFence: light() for the frequent side, heavy() for the rare one.
class AsymmetricFence {
 public:
  static void light() noexcept {
    if (fast_) std::atomic_signal_fence(std::memory_order_seq_cst);
    else full_fence();
  }
  static void heavy() noexcept {
    if (fast_ && ::syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
    full_fence();
  }
  // init() registers this process for expedited membarriers. Runtime's
  // constructor calls it before any worker starts, and later calls find
  // the registration in place, so every thread that uses a gate sees one
  // value of fast_ for as long as it uses it.
  // GORO_MEMBARRIER=0 in the environment keeps the plain fences (the test
  // suite runs the scheduler's tests both ways).
  static void init() noexcept {
    const char* env = std::getenv("GORO_MEMBARRIER");
    if (env != nullptr && std::strcmp(env, "0") == 0) {
      fast_ = false;
      return;
    }
    if (!fast_) {
      fast_ = ::syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
    }
  }
  static bool fast() noexcept { return fast_; }

 private:
  // full_fence() is std::atomic_thread_fence(seq_cst), except under
  // ThreadSanitizer, which does not model fences (GCC warns of each one a
  // TSan build compiles, in every file that includes goro): there it is a
  // seq_cst read-modify-write of one shared word, as full a barrier on the
  // hardware, and one TSan orders both sides of the Dekker by.
  static void full_fence() noexcept {
#if GORO_TSAN
    fence_word_.fetch_add(0, std::memory_order_seq_cst);
#else
    std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  }

  static inline bool fast_ = false;
#if GORO_TSAN
  static inline std::atomic<std::uint32_t> fence_word_{0};
#endif
};

// StealGate guards one worker's runnext slot between the worker and
// thieves. Thread-safety: owner_* only from the owning worker, thief_* from
// any other thread.
class StealGate {
 public:
  // owner_enter() blocks while a thief is inside (a short copy).
  void owner_enter() noexcept {
    for (;;) {
      owner_in_.store(1, std::memory_order_relaxed);
      AsymmetricFence::light();
      if (thief_in_.load(std::memory_order_acquire) == 0) [[likely]] return;
      owner_in_.store(0, std::memory_order_release);
      wait_until_zero(thief_in_);
    }
  }
  void owner_exit() noexcept { owner_in_.store(0, std::memory_order_release); }

  // thief_try_enter() returns false when another thief holds the gate.
  bool thief_try_enter() noexcept {
    std::uint32_t idle = 0;
    if (!thief_in_.compare_exchange_strong(idle, 1, std::memory_order_acquire,
                                           std::memory_order_relaxed)) {
      return false;
    }
    AsymmetricFence::heavy();
    wait_until_zero(owner_in_);
    return true;
  }
  void thief_exit() noexcept { thief_in_.store(0, std::memory_order_release); }

  // OwnerSection holds the gate for the owner in a scope.
  class OwnerSection {
   public:
    explicit OwnerSection(StealGate& gate) noexcept : gate_(gate) { gate_.owner_enter(); }
    ~OwnerSection() { gate_.owner_exit(); }
    OwnerSection(const OwnerSection&) = delete;
    OwnerSection& operator=(const OwnerSection&) = delete;

   private:
    StealGate& gate_;
  };

 private:
  // The other side's section is a few dozen instructions; past a spin budget
  // its thread was preempted, so yield to let it finish, and past a yield
  // budget sleep: on this project's VM (Linux 6.18) a thief inside
  // membarrier() was seen never to get back to user space while the owner
  // yielded in a loop waiting for it (the steal-gate test hung about one run
  // in ten under ASan, at this commit and before it).
  static void wait_until_zero(const std::atomic<std::uint32_t>& flag) noexcept {
    for (int spins = 0; flag.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 128) GORO_CPU_RELAX();
      else if (spins < 256) std::this_thread::yield();
      else std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  std::atomic<std::uint32_t> owner_in_{0};  // written by the owner only
  std::atomic<std::uint32_t> thief_in_{0};
};

}  // namespace goro::detail
