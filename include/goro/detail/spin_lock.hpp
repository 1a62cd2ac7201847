// SpinLock guards the short critical sections of goro's internals (a channel's
// queues, a timer heap, a wait list). It never parks: holders do a bounded
// amount of work and never block or switch fibers while holding it.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "config.hpp"

namespace goro::detail {

// SpinLock is a test-and-test-and-set lock satisfying Lockable.
// Thread-safety: safe from any fiber or thread.
class SpinLock {
 public:
  // lock() is one exchange when the lock is free; only contention leaves
  // the inline path (a call there cost about 20 instructions per lock).
  void lock() noexcept {
    if (!locked_.exchange(true, std::memory_order_acquire)) return;
    lock_contended();
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  GORO_NOINLINE void lock_contended() noexcept {
    std::uint32_t backoff = 1;
    std::uint32_t paused = 0;
    do {
      // Wait for a release with exponential backoff: waiters that poll less
      // often leave the lock's cache line with the holder (on this project's
      // 2-core VM that took a 4-producer/4-consumer channel from about 200 to
      // 50 ns per item). Past the budget the holder was probably preempted:
      // yield to let it run.
      do {
        if (paused < kPauseBudget) {
          for (std::uint32_t i = 0; i < backoff; ++i) GORO_CPU_RELAX();
          paused += backoff;
          if (backoff < kMaxBackoff) backoff <<= 1;
        } else {
          std::this_thread::yield();
        }
      } while (locked_.load(std::memory_order_relaxed));
    } while (locked_.exchange(true, std::memory_order_acquire));
  }

  static constexpr std::uint32_t kMaxBackoff = 512;    // pauses between two polls
  static constexpr std::uint32_t kPauseBudget = 4096;  // pauses before yielding

  std::atomic<bool> locked_{false};
};

}  // namespace goro::detail
