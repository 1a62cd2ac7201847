// ReadMostlyLock: a reader/writer spin lock whose readers do not contend with
// each other (a "big-reader" lock). It backs SyncMap, where loads vastly
// outnumber stores.
//
// Readers. Each thread is given one of N slots (N: a power of two from the
// CPU count, at most 64), each on its own cache line. A reader increments
// its slot's counter and checks `writer_`; if no writer is active it is in.
// Readers on different threads touch different cache lines, so read-mostly
// workloads scale with cores.
// Writers. Writers exclude each other with a SpinLock, raise `writer_`, and
// wait until every slot has drained. A reader that finds `writer_` raised
// backs out (decrements) and waits for it to drop, so a writer waits only for
// readers already inside, never for new ones.
//
// Ordering. The reader's increment-then-check and the writer's
// raise-then-scan are seq_cst: at least one side sees the other, so a reader
// and a writer are never both inside (Dekker's argument).
//
// Rules. Nothing may block, park or switch fibers while holding either side:
// sections must be short and bounded (a hash lookup and a copy). A reader
// section never switches threads, so the slot stays the caller's own.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>

#include "config.hpp"
#include "spin_lock.hpp"

namespace goro::detail {

class ReadMostlyLock {
 public:
  struct alignas(64) Slot {
    std::atomic<std::int64_t> readers{0};
  };

  ReadMostlyLock() : mask_(slot_count() - 1), slots_(new Slot[mask_ + 1]) {}
  ReadMostlyLock(const ReadMostlyLock&) = delete;
  ReadMostlyLock& operator=(const ReadMostlyLock&) = delete;

  // lock_shared() enters a read section; pass its result to unlock_shared().
  Slot& lock_shared() noexcept;
  void unlock_shared(Slot& slot) noexcept { slot.readers.fetch_sub(1, std::memory_order_release); }

  // lock()/unlock(): the write side (Lockable, for std::lock_guard).
  void lock() noexcept;
  void unlock() noexcept {
    writer_.store(false, std::memory_order_release);
    writers_.unlock();
  }

  // ReadGuard holds a read section for a scope.
  class ReadGuard {
   public:
    explicit ReadGuard(ReadMostlyLock& lock) noexcept : lock_(lock), slot_(lock.lock_shared()) {}
    ~ReadGuard() { lock_.unlock_shared(slot_); }
    ReadGuard(const ReadGuard&) = delete;
    ReadGuard& operator=(const ReadGuard&) = delete;

   private:
    ReadMostlyLock& lock_;
    Slot& slot_;
  };

 private:
  static std::size_t slot_count() noexcept {
    std::size_t cpus = std::thread::hardware_concurrency();
    std::size_t n = 1;
    while (n < cpus * 2 && n < 64) n <<= 1;
    return n < 4 ? 4 : n;
  }
  // thread_slot_hint() numbers threads in order of first use; consecutive
  // threads get different slots.
  GORO_NOINLINE static std::size_t thread_slot_hint() noexcept {
    static std::atomic<std::size_t> next{0};
    thread_local std::size_t hint = next.fetch_add(1, std::memory_order_relaxed);
    return hint;
  }
  static void backoff(int& spins) noexcept {
    if (++spins < 64) {
      GORO_CPU_RELAX();
    } else {
      std::this_thread::yield();  // the other side was preempted: let it run
    }
  }

  const std::size_t mask_;
  std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<bool> writer_{false};
  SpinLock writers_;
};

inline ReadMostlyLock::Slot& ReadMostlyLock::lock_shared() noexcept {
  Slot& slot = slots_[thread_slot_hint() & mask_];
  for (;;) {
    slot.readers.fetch_add(1, std::memory_order_seq_cst);
    if (!writer_.load(std::memory_order_seq_cst)) return slot;
    slot.readers.fetch_sub(1, std::memory_order_release);  // back out for the writer
    int spins = 0;
    while (writer_.load(std::memory_order_relaxed)) backoff(spins);
  }
}

inline void ReadMostlyLock::lock() noexcept {
  writers_.lock();
  writer_.store(true, std::memory_order_seq_cst);
  for (std::size_t i = 0; i <= mask_; ++i) {
    int spins = 0;
    while (slots_[i].readers.load(std::memory_order_seq_cst) != 0) backoff(spins);
  }
}

}  // namespace goro::detail
