// SpinLock guards the short critical sections of goro's internals (a channel's
// queues, a timer heap, a wait list). It never parks: holders do a bounded
// amount of work and never block or switch fibers while holding it.
#pragma once

#include <atomic>
#include <thread>

#include "config.hpp"

namespace goro::detail {

// SpinLock is a test-and-test-and-set lock satisfying Lockable.
// Thread-safety: safe from any fiber or thread.
class SpinLock {
 public:
  void lock() noexcept {
    for (int spins = 0;; ++spins) {
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      while (locked_.load(std::memory_order_relaxed)) {
        if (++spins < 64) {
          GORO_CPU_RELAX();
        } else {
          std::this_thread::yield();  // the holder was preempted: let it run
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace goro::detail
