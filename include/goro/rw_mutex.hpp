// goro::RWMutex: Go's sync.RWMutex, a reader/writer lock that parks fibers
// (and blocks plain threads). It meets the standard Lockable and
// SharedLockable requirements: std::unique_lock / std::lock_guard take it for
// writing, std::shared_lock for reading; rlocker() gives a Lockable view
// that takes it for reading (Go's RLocker).
//
// Design. One state word holds the number of active readers and three flags:
//
//   kWriterHeld      a writer holds the lock.
//   kWriterWaiting   writers are queued: new readers must queue too, so a
//                    stream of readers cannot starve a writer.
//   kReadersWaiting  readers are queued (behind a writer).
//
// Fairness (Go's rule). A waiting writer stops new readers and gets the lock
// when the active readers have left. When a writer unlocks, every reader that
// queued meanwhile is admitted as one batch before the next writer, so
// writers cannot starve readers either. Ownership is handed over under
// `lock_`: the waker counts woken readers in, or sets kWriterHeld for the
// woken writer, before it unparks them.
//
// Fast paths: lock()/unlock() are one CAS each (0 <-> kWriterHeld);
// lock_shared()/unlock_shared() one CAS on the reader count while no writer
// holds or waits. The read paths start that CAS from the state they expect
// (no reader to lock, one to unlock) rather than from a load: a load right
// behind the previous locked instruction on the same word waits for it, and
// cost 10 of 23 ns per lock/unlock pair; a wrong guess costs one failed CAS,
// which returns the real state. Locking also makes a plain thread known to
// the deadlock detector (see mutex.hpp).
//
// Invariants.
//   - kWriterWaiting is set exactly when `writers_` is non-empty, and
//     kReadersWaiting exactly when `readers_` is; both change under `lock_`.
//   - kWriterHeld and a non-zero reader count never coexist.
//   - Readers queue only while kWriterHeld or kWriterWaiting is set; whoever
//     clears the last of those two admits the queued readers in the same step.
// Lock order: `lock_` is a leaf and never held across park().
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <shared_mutex>  // std::shared_lock, the natural guard for RLock
#include <stdexcept>

#include "detail/parker.hpp"
#include "detail/spin_lock.hpp"
#include "detail/unwind.hpp"
#include "detail/wait_list.hpp"
#include "runtime.hpp"

namespace goro {

// RWMutex is a reader/writer mutual-exclusion lock: any number of readers or
// one writer. A blocked lock() stops new readers, so a reader must not lock
// for reading again while it holds a read lock (like Go, that can deadlock
// once a writer queues between the two). Like Go's, the lock is not owned:
// another fiber or thread may unlock it.
//
// Thread-safety: every member is safe from any fiber or thread. Misuse
// (unlock of an RWMutex not locked that way) throws std::logic_error.
class RWMutex {
 public:
  RWMutex() = default;
  RWMutex(const RWMutex&) = delete;
  RWMutex& operator=(const RWMutex&) = delete;

  // lock() blocks until the caller holds the lock for writing.
  void lock();
  // try_lock() takes the write lock if it is free right now.
  bool try_lock() noexcept;
  // unlock() releases the write lock; throws std::logic_error if no writer holds it.
  void unlock();

  // lock_shared() blocks until the caller holds the lock for reading.
  void lock_shared();
  // try_lock_shared() takes a read lock if no writer holds or waits for the lock.
  bool try_lock_shared() noexcept;
  // unlock_shared() releases one read lock; throws std::logic_error if no
  // reader holds the lock.
  void unlock_shared();

  class RLocker;
  // rlocker() is Go's RWMutex.RLocker: a Lockable view of this RWMutex whose
  // lock()/unlock() are lock_shared()/unlock_shared(), for code written
  // against any Lockable (std::lock_guard, std::unique_lock, a template
  // taking a lock). The view holds a reference: it must not outlive the
  // RWMutex.
  RLocker rlocker() noexcept;

 private:
  static constexpr std::uint64_t kWriterHeld = 1;
  static constexpr std::uint64_t kWriterWaiting = 2;
  static constexpr std::uint64_t kReadersWaiting = 4;
  static constexpr std::uint64_t kWriterBits = kWriterHeld | kWriterWaiting;
  static constexpr int kReaderShift = 3;
  static constexpr std::uint64_t kOneReader = std::uint64_t{1} << kReaderShift;

  static std::uint64_t readers_of(std::uint64_t s) noexcept { return s >> kReaderShift; }

  void lock_slow();
  void unlock_slow();
  void lock_shared_slow();
  void unlock_shared_slow();

  // With lock_ held: give the lock to the first waiting writer that can
  // still take it; if none can, let the queued readers in.
  void hand_to_writer_locked(detail::WakeList& wake) noexcept;
  // With lock_ held and no writer holding: admit every queued reader.
  // Returns how many were admitted.
  std::uint64_t admit_readers_locked(detail::WakeList& wake) noexcept;
  // Set or clear flag bits with a CAS loop (lock_ held).
  void update_locked(std::uint64_t set, std::uint64_t clear) noexcept {
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    while (!state_.compare_exchange_weak(s, (s | set) & ~clear, std::memory_order_acq_rel,
                                         std::memory_order_relaxed)) {
    }
  }

  std::atomic<std::uint64_t> state_{0};
  detail::SpinLock lock_;
  detail::WaitList readers_;  // guarded by lock_
  detail::WaitList writers_;  // guarded by lock_
};

// RWMutex::RLocker takes its RWMutex for reading through the Lockable
// interface (lock, try_lock, unlock), so std::lock_guard and
// std::unique_lock take a read lock with it:
//
//   auto reader = rw.rlocker();
//   std::lock_guard lock(reader);   // rw.lock_shared() ... rw.unlock_shared()
//
// It is a copyable reference: copies name the same RWMutex. Misuse
// (unlock() with no read lock held) throws std::logic_error, as
// unlock_shared() does.
//
// Thread-safety: as RWMutex; every member is safe from any fiber or thread.
class RWMutex::RLocker {
 public:
  explicit RLocker(RWMutex& rw) noexcept : rw_(&rw) {}

  // lock() blocks until the caller holds a read lock.
  void lock() { rw_->lock_shared(); }
  // try_lock() takes a read lock if no writer holds or waits for the lock.
  bool try_lock() noexcept { return rw_->try_lock_shared(); }
  // unlock() releases one read lock.
  void unlock() { rw_->unlock_shared(); }

 private:
  RWMutex* rw_;  // a pointer, not a reference, so RLocker is assignable
};

// ---------------------------------------------------------------------------

inline RWMutex::RLocker RWMutex::rlocker() noexcept { return RLocker(*this); }

inline void RWMutex::lock() {
  detail::note_goro_use();
  std::uint64_t expected = 0;
  if (state_.compare_exchange_strong(expected, kWriterHeld, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    return;
  }
  lock_slow();
}

inline bool RWMutex::try_lock() noexcept {
  detail::note_goro_use();
  std::uint64_t expected = 0;
  return state_.compare_exchange_strong(expected, kWriterHeld, std::memory_order_acquire,
                                        std::memory_order_relaxed);
}

inline void RWMutex::unlock() {
  detail::note_goro_use();
  std::uint64_t expected = kWriterHeld;
  if (state_.compare_exchange_strong(expected, 0, std::memory_order_release,
                                     std::memory_order_relaxed)) {
    return;
  }
  unlock_slow();
}

inline void RWMutex::lock_shared() {
  detail::note_goro_use();
  std::uint64_t s = 0;  // the expected state: see "Fast paths" above
  while ((s & kWriterBits) == 0) {
    if (state_.compare_exchange_weak(s, s + kOneReader, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return;
    }
  }
  lock_shared_slow();
}

inline bool RWMutex::try_lock_shared() noexcept {
  detail::note_goro_use();
  std::uint64_t s = 0;  // the expected state: see "Fast paths" above
  while ((s & kWriterBits) == 0) {
    if (state_.compare_exchange_weak(s, s + kOneReader, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

inline void RWMutex::unlock_shared() {
  detail::note_goro_use();
  std::uint64_t s = kOneReader;  // the expected state: see "Fast paths" above
  if (state_.compare_exchange_strong(s, 0, std::memory_order_release, std::memory_order_relaxed)) {
    return;
  }
  for (;;) {
    if (readers_of(s) == 0) {
      throw std::logic_error("goro::RWMutex: unlock_shared of an RWMutex not locked for reading");
    }
    // The last reader out hands the lock to a waiting writer: that needs lock_.
    if (readers_of(s) == 1 && (s & kWriterWaiting)) {
      unlock_shared_slow();
      return;
    }
    if (state_.compare_exchange_weak(s, s - kOneReader, std::memory_order_release,
                                     std::memory_order_relaxed)) {
      return;
    }
  }
}

inline void RWMutex::lock_slow() {
  detail::Parker& self = detail::Parker::current();
  detail::WaitList::Node node;
  {
    std::lock_guard guard(lock_);
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & kWriterHeld) == 0 && readers_of(s) == 0) {
        if (state_.compare_exchange_weak(s, s | kWriterHeld, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return;
        }
        continue;
      }
      if (state_.compare_exchange_weak(s, s | kWriterWaiting, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
        break;
      }
    }
    node.ticket = self.prepare("sync.RWMutex.Lock");
    writers_.push(&node);
  }
  if (self.park() != detail::WakeReason::unwind) return;  // the waker made us the holder
  {
    detail::WakeList wake;
    std::lock_guard guard(lock_);
    if (writers_.remove(&node) && writers_.empty()) {
      update_locked(0, kWriterWaiting);
      // Readers may have queued only because we were waiting.
      if ((state_.load(std::memory_order_relaxed) & kWriterHeld) == 0) admit_readers_locked(wake);
    }
  }
  throw detail::FiberUnwind{};
}

inline void RWMutex::unlock_slow() {
  detail::WakeList wake;
  std::lock_guard guard(lock_);
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  if ((s & kWriterHeld) == 0) {
    throw std::logic_error("goro::RWMutex: unlock of an RWMutex not locked for writing");
  }
  update_locked(0, kWriterHeld);
  // Readers that queued while we held the lock go first, as one batch; the
  // next writer (kWriterWaiting still set) waits for them to leave.
  if (admit_readers_locked(wake) != 0) return;
  if (!writers_.empty()) hand_to_writer_locked(wake);
}

inline void RWMutex::lock_shared_slow() {
  detail::Parker& self = detail::Parker::current();
  detail::WaitList::Node node;
  {
    std::lock_guard guard(lock_);
    std::uint64_t s = state_.load(std::memory_order_relaxed);
    for (;;) {
      if ((s & kWriterBits) == 0) {
        if (state_.compare_exchange_weak(s, s + kOneReader, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return;
        }
        continue;
      }
      if (state_.compare_exchange_weak(s, s | kReadersWaiting, std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
        break;
      }
    }
    node.ticket = self.prepare("sync.RWMutex.RLock");
    readers_.push(&node);
  }
  if (self.park() != detail::WakeReason::unwind) return;  // the waker counted us in
  {
    std::lock_guard guard(lock_);
    if (readers_.remove(&node) && readers_.empty()) update_locked(0, kReadersWaiting);
  }
  throw detail::FiberUnwind{};
}

inline void RWMutex::unlock_shared_slow() {
  detail::WakeList wake;
  std::lock_guard guard(lock_);
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  for (;;) {
    if (readers_of(s) == 0) {
      throw std::logic_error("goro::RWMutex: unlock_shared of an RWMutex not locked for reading");
    }
    if (state_.compare_exchange_weak(s, s - kOneReader, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
      break;
    }
  }
  s -= kOneReader;
  if (readers_of(s) == 0 && (s & kWriterWaiting) && (s & kWriterHeld) == 0) hand_to_writer_locked(wake);
}

inline void RWMutex::hand_to_writer_locked(detail::WakeList& wake) noexcept {
  while (detail::WaitList::Node* n = writers_.pop_front()) {
    if (wake.add_if_claimed(n->ticket)) {
      update_locked(kWriterHeld, writers_.empty() ? kWriterWaiting : 0);
      return;
    }
    // Its owner was unwound and will find itself dequeued.
  }
  update_locked(0, kWriterWaiting);
  admit_readers_locked(wake);
}

inline std::uint64_t RWMutex::admit_readers_locked(detail::WakeList& wake) noexcept {
  if (readers_.empty()) return 0;
  std::uint64_t admitted = 0;
  while (detail::WaitList::Node* n = readers_.pop_front()) {
    if (wake.add_if_claimed(n->ticket)) ++admitted;
  }
  std::uint64_t s = state_.load(std::memory_order_relaxed);
  while (!state_.compare_exchange_weak(s, (s + admitted * kOneReader) & ~kReadersWaiting,
                                       std::memory_order_acq_rel, std::memory_order_relaxed)) {
  }
  return admitted;
}

}  // namespace goro
