// Run queues of the work-stealing scheduler, after Go's runtime/proc.go.
//
// LocalRunQueue is a worker's own fixed ring of runnable fibers. Only its
// owner pushes (at tail) and pops (at head); other workers steal half of it
// at a time from the head. head_ is advanced by CAS (owner pop and thieves
// race on it); tail_ is written by the owner only, with release so a thief
// that reads it sees the slots written before. A thief copies slots first
// and then CASes head_: if the CAS fails the copy is discarded, so slots are
// atomics read relaxed (a stale copy is never used).
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

  // push() appends `f`; when the ring is full, half of it and `f` move to
  // `overflow`. Owner only.
  void push(Fiber* f, GlobalRunQueue& overflow) noexcept {
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t - h < kCapacity) {
        slots_[t % kCapacity].store(f, std::memory_order_relaxed);
        tail_.store(t + 1, std::memory_order_release);
        return;
      }
      if (push_half_to(overflow, h, t, f)) return;
    }
  }

  // pop() takes the oldest fiber, or null. Owner only.
  Fiber* pop() noexcept {
    std::uint32_t h = head_.load(std::memory_order_acquire);
    for (;;) {
      std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h) return nullptr;
      Fiber* f = slots_[h % kCapacity].load(std::memory_order_relaxed);
      if (head_.compare_exchange_weak(h, h + 1, std::memory_order_release,
                                      std::memory_order_acquire))
        return f;
    }
  }

  // steal_into() moves about half of this ring into `thief` (which must be
  // empty, and owned by the caller) and returns one of the stolen fibers.
  Fiber* steal_into(LocalRunQueue& thief) noexcept {
    std::uint32_t th = thief.tail_.load(std::memory_order_relaxed);
    for (;;) {
      std::uint32_t h = head_.load(std::memory_order_acquire);
      std::uint32_t t = tail_.load(std::memory_order_acquire);
      std::uint32_t n = t - h;
      n = n - n / 2;
      if (n == 0 || n > kCapacity / 2 + 1) {
        if (n == 0) return nullptr;
        continue;  // read head and tail at different moments: retry
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        Fiber* f = slots_[(h + i) % kCapacity].load(std::memory_order_relaxed);
        thief.slots_[(th + i) % kCapacity].store(f, std::memory_order_relaxed);
      }
      if (head_.compare_exchange_weak(h, h + n, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
        --n;
        Fiber* first = thief.slots_[(th + n) % kCapacity].load(std::memory_order_relaxed);
        if (n > 0) thief.tail_.store(th + n, std::memory_order_release);
        return first;
      }
    }
  }

  // mark() is a thief's look at the ring, for waited_since(): true while a
  // fiber that was queued at that look is still queued, i.e. the owner has
  // not got to it in all the time since. Any thread.
  std::uint32_t mark() const noexcept { return tail_.load(std::memory_order_acquire); }
  bool waited_since(std::uint32_t mark) const noexcept {
    return static_cast<std::int32_t>(mark - head_.load(std::memory_order_acquire)) > 0;
  }
  bool empty() const noexcept {
    return head_.load(std::memory_order_acquire) == tail_.load(std::memory_order_acquire);
  }
  std::uint32_t size() const noexcept {
    return tail_.load(std::memory_order_acquire) - head_.load(std::memory_order_acquire);
  }

 private:
  bool push_half_to(GlobalRunQueue& overflow, std::uint32_t h, std::uint32_t t, Fiber* f) noexcept {
    const std::uint32_t n = (t - h) / 2;
    Fiber* batch[kCapacity / 2 + 1];
    for (std::uint32_t i = 0; i < n; ++i)
      batch[i] = slots_[(h + i) % kCapacity].load(std::memory_order_relaxed);
    if (!head_.compare_exchange_strong(h, h + n, std::memory_order_release,
                                       std::memory_order_relaxed))
      return false;  // thieves took some: there is room now
    batch[n] = f;
    for (std::uint32_t i = 0; i < n; ++i) batch[i]->next_runnable = batch[i + 1];
    overflow.push_batch(batch[0], batch[n], n + 1);
    return true;
  }

  alignas(64) std::atomic<std::uint32_t> head_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::array<std::atomic<Fiber*>, kCapacity> slots_{};
};

}  // namespace goro::detail
