// Run queues of the work-stealing scheduler, after Go's runtime/proc.go.
//
// LocalRunQueue is a worker's own fixed ring of runnable fibers. Only its
// owner pushes (at the tail) and pops: the oldest from the head, or, for a
// fiber pushed `lifo` (one spawned and not yet run), the newest from the
// tail. Other workers steal the oldest half at a time from the head. Head,
// tail and a version share one atomic word, and every pop and steal is one
// CAS on it, so an owner's pop at either end and a thief's steal never both
// take the same slot. A push is a fetch_add on the tail's bits (the owner
// alone moves the tail), with release so a thief that loads the word sees
// the slots written before. A thief copies slots first and then CASes: if
// the CAS fails the copy is discarded, so slots are atomics read relaxed (a
// stale copy is never used).
//
// Why the newest spawned fiber first: a fiber that spawns children and waits
// for them (a fork-join tree, skynet) then runs the tree depth-first, so
// only about depth x fan-out fibers are alive at once and their stacks stay
// warm; taking the oldest first runs it breadth-first, with most of a level
// parked at once. Thieves still take the oldest, the biggest subtrees.
// Fairness: a fiber that already ran (woken, yielded) is served from the
// head on the scheduler's housekeeping ticks, as in a FIFO ring; and when
// the head has not moved for a long while, the scheduler serves it whatever
// it is (Runtime::find_local_housekeeping), so an old spawn is not starved
// by a busy fork-join above it.
//
// GlobalRunQueue takes fibers made runnable off the workers (by plain threads,
// by a full local ring, by the runtime itself); a mutex guards it and an
// atomic size lets workers skip it without locking.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>

#include "fiber.hpp"

namespace goro::detail {

class GlobalRunQueue {
 public:
  void push(Fiber* f) noexcept {
    std::lock_guard guard(mutex_);
    push_locked(f);
  }
  // push_batch() appends the chain first..last (linked by next_runnable) of n fibers.
  void push_batch(Fiber* first, Fiber* last, std::size_t n) noexcept {
    std::lock_guard guard(mutex_);
    last->next_runnable = nullptr;
    if (tail_) tail_->next_runnable = first; else head_ = first;
    tail_ = last;
    size_.fetch_add(n, std::memory_order_release);
  }
  Fiber* pop() noexcept {
    if (empty()) return nullptr;
    std::lock_guard guard(mutex_);
    Fiber* f = head_;
    if (!f) return nullptr;
    head_ = f->next_runnable;
    if (!head_) tail_ = nullptr;
    size_.fetch_sub(1, std::memory_order_relaxed);
    return f;
  }
  // pop_batch() takes up to `max` fibers at once, linked by next_runnable,
  // so a worker refilling its ring from here pays for one lock, not many.
  Fiber* pop_batch(std::size_t max, std::size_t& taken) noexcept {
    taken = 0;
    if (empty()) return nullptr;
    std::lock_guard guard(mutex_);
    Fiber* first = head_;
    Fiber* last = nullptr;
    for (Fiber* f = head_; f && taken < max; f = f->next_runnable) {
      last = f;
      ++taken;
    }
    if (!last) return nullptr;
    head_ = last->next_runnable;
    if (!head_) tail_ = nullptr;
    last->next_runnable = nullptr;
    size_.fetch_sub(taken, std::memory_order_relaxed);
    return first;
  }
  bool empty() const noexcept { return size_.load(std::memory_order_acquire) == 0; }
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

 private:
  void push_locked(Fiber* f) noexcept {
    f->next_runnable = nullptr;
    if (tail_) tail_->next_runnable = f; else head_ = f;
    tail_ = f;
    size_.fetch_add(1, std::memory_order_release);
  }

  std::mutex mutex_;
  Fiber* head_ = nullptr;
  Fiber* tail_ = nullptr;
  std::atomic<std::size_t> size_{0};
};

class LocalRunQueue {
 public:
  static constexpr std::uint32_t kCapacity = 256;

  // push() appends `f`; `lifo` marks it as one the owner may take back from
  // the tail (pop). When the ring is full, half of it (the oldest) and `f`
  // move to `overflow`. Owner only.
  void push(Fiber* f, GlobalRunQueue& overflow, bool lifo = false) noexcept {
    const std::uintptr_t slot = reinterpret_cast<std::uintptr_t>(f) | (lifo ? kLifo : 0);
    for (;;) {
      const std::uint64_t s = state_.load(std::memory_order_acquire);
      if (count(s) < kCapacity) {
        slots_[tail_of(s) % kCapacity].store(slot, std::memory_order_relaxed);
        // Only the owner moves the tail, so nobody else changes it between
        // the load and this add; thieves only move the head.
        state_.fetch_add(kTailOne, std::memory_order_release);
        return;
      }
      if (push_half_to(overflow, s, f)) return;
    }
  }

  // PopOrder: which end pop() serves.
  enum class PopOrder {
    newest_spawn_first,   // the tail if it was pushed `lifo`, else the head
    started_head_first,   // the head if it was not pushed `lifo`, else as above
    oldest_first,         // the head
  };

  // pop() takes a fiber in `order`, or null if the ring is empty. Owner only.
  Fiber* pop(PopOrder order) noexcept {
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      if (count(s) == 0) return nullptr;
      const std::uintptr_t oldest = slots_[head_of(s) % kCapacity].load(std::memory_order_relaxed);
      const bool head_wins = order == PopOrder::oldest_first ||
                             (order == PopOrder::started_head_first && !(oldest & kLifo));
      if (!head_wins) {
        const std::uintptr_t newest = slots_[(tail_of(s) - 1) % kCapacity].load(std::memory_order_relaxed);
        if (newest & kLifo) {
          if (state_.compare_exchange_weak(s, without_newest(s), std::memory_order_acq_rel,
                                           std::memory_order_acquire))
            return to_fiber(newest);
          continue;
        }
      }
      if (state_.compare_exchange_weak(s, with_head(s, head_of(s) + 1), std::memory_order_acq_rel,
                                       std::memory_order_acquire))
        return to_fiber(oldest);
    }
  }

  // head_index() is the head's position, which moves each time the oldest
  // fiber leaves (popped or stolen). Owner only.
  std::uint32_t head_index() const noexcept { return head_of(state_.load(std::memory_order_relaxed)); }

  // steal_into() moves about half of this ring, the oldest, into `thief`
  // (which must be empty, and owned by the caller) and returns one of the
  // stolen fibers.
  Fiber* steal_into(LocalRunQueue& thief) noexcept {
    const std::uint32_t th = tail_of(thief.state_.load(std::memory_order_relaxed));
    std::uint64_t s = state_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t n = count(s);
      n = n - n / 2;
      if (n == 0) return nullptr;
      const std::uint32_t h = head_of(s);
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::uintptr_t slot = slots_[(h + i) % kCapacity].load(std::memory_order_relaxed);
        thief.slots_[(th + i) % kCapacity].store(slot, std::memory_order_relaxed);
      }
      // The CAS covers head, tail and version: it fails if the owner took
      // anything back from the tail since the load, so the copy is current.
      if (state_.compare_exchange_weak(s, with_head(s, h + n), std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
        --n;
        const std::uintptr_t first = thief.slots_[(th + n) % kCapacity].load(std::memory_order_relaxed);
        if (n > 0) thief.state_.fetch_add(n * kTailOne, std::memory_order_release);
        return to_fiber(first);
      }
    }
  }

  // mark() is a thief's look at the ring, for waited_since(): true while the
  // owner has not taken, from the head, every fiber that was queued at that
  // look. (Fibers taken back from the tail do not count: a thief may then
  // steal a little early.) Any thread.
  std::uint32_t mark() const noexcept { return tail_of(state_.load(std::memory_order_acquire)); }
  bool waited_since(std::uint32_t mark) const noexcept {
    const std::uint32_t h = head_of(state_.load(std::memory_order_acquire));
    return static_cast<std::int16_t>(static_cast<std::uint16_t>(mark - h)) > 0;
  }
  bool empty() const noexcept { return size() == 0; }
  std::uint32_t size() const noexcept { return count(state_.load(std::memory_order_acquire)); }

 private:
  // state_ packs the ring's indices and a version into one word, so that one
  // CAS decides every race between the owner and the thieves:
  //   bits  0-15 head     (oldest; advanced by the owner's FIFO pops and by thieves)
  //   bits 16-47 version  (bumped by each pop from the tail)
  //   bits 48-63 tail     (one past the newest; moved by the owner only)
  // Indices count modulo 2^16, a multiple of kCapacity. The version defeats
  // ABA: without it, a pop from the tail and a push would restore the word a
  // thief read before copying the popped slot, and its CAS would succeed.
  static constexpr std::uint64_t kTailOne = std::uint64_t{1} << 48;
  static constexpr std::uint64_t kVersionOne = std::uint64_t{1} << 16;
  static constexpr std::uintptr_t kLifo = 1;  // a slot's tag: Fiber is aligned
  static_assert(alignof(Fiber) > 1);

  static std::uint32_t head_of(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s & 0xFFFF); }
  static std::uint32_t tail_of(std::uint64_t s) noexcept { return static_cast<std::uint32_t>(s >> 48); }
  static std::uint32_t count(std::uint64_t s) noexcept { return (tail_of(s) - head_of(s)) & 0xFFFF; }
  static std::uint64_t with_head(std::uint64_t s, std::uint32_t h) noexcept {
    return (s & ~std::uint64_t{0xFFFF}) | (h & 0xFFFF);
  }
  // without_newest(): tail one back, version one up (wrapping inside its bits).
  static std::uint64_t without_newest(std::uint64_t s) noexcept {
    const std::uint64_t version = ((s >> 16) + 1) & 0xFFFFFFFF;
    const std::uint64_t tail = (tail_of(s) - 1) & 0xFFFF;
    return (s & 0xFFFF) | version << 16 | tail << 48;
  }
  static Fiber* to_fiber(std::uintptr_t slot) noexcept { return reinterpret_cast<Fiber*>(slot & ~kLifo); }

  // push_half_to() moves the oldest half of a full ring and `f` to `overflow`;
  // false if thieves took some meanwhile (there is room now).
  bool push_half_to(GlobalRunQueue& overflow, std::uint64_t s, Fiber* f) noexcept {
    const std::uint32_t n = count(s) / 2;
    const std::uint32_t h = head_of(s);
    Fiber* batch[kCapacity / 2 + 1];
    for (std::uint32_t i = 0; i < n; ++i)
      batch[i] = to_fiber(slots_[(h + i) % kCapacity].load(std::memory_order_relaxed));
    if (!state_.compare_exchange_strong(s, with_head(s, h + n), std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
      return false;
    batch[n] = f;
    for (std::uint32_t i = 0; i < n; ++i) batch[i]->next_runnable = batch[i + 1];
    overflow.push_batch(batch[0], batch[n], n + 1);
    return true;
  }

  alignas(64) std::atomic<std::uint64_t> state_{0};
  std::array<std::atomic<std::uintptr_t>, kCapacity> slots_{};
};

}  // namespace goro::detail
