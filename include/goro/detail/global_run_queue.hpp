// GlobalRunQueue: the scheduler's shared FIFO of runnable fibers, after the
// global run queue of Go's runtime/proc.go, stored as chunks of addresses.
//
// Who uses it. Plain threads and timers that wake fibers, the runtime
// itself, and above all a worker whose ring is full: it moves the older half
// of its ring here in one call, and an idle worker takes a share back into
// its own ring in one call.
//
// Why chunks. The queue keeps fibers' addresses in fixed arrays (Chunk)
// linked in a list, not a list threaded through the fibers. Moving a batch
// from one worker to another then copies addresses. Through the fibers, the
// taker read each fiber's link in turn, each last written on the giver's
// core: a dependent cross-core miss per fiber, under the lock. On the eighth
// session's VM that was about 250 ns a fiber, half of what a fiber cost in
// spawn+join on two workers (docs/performance.md).
//
// Memory. push is noexcept and allocates: chunks come from a short free
// list, else from the heap. When no chunk can be had, the fiber waits in a
// spill list linked through its next_runnable, which pops serve first: FIFO
// order is kept except while memory is exhausted, and nothing is lost.
//
// Invariants (mutex_ held): the queued fibers are the spill list, then each
// chunk's fibers[begin, end) from head_ to tail_; only tail_ may have room
// (end < kChunkFibers), and no chunk in the list is empty (begin < end).
// size_ counts them all and is also read without the lock, so workers skip
// an empty queue without locking.
//
// Thread-safety: every member is safe from any thread; mutex_ guards all
// state but size_ and is taken with no other lock held inside it.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <new>

#include "fiber.hpp"

namespace goro::detail {

class GlobalRunQueue {
 public:
  GlobalRunQueue() = default;
  GlobalRunQueue(const GlobalRunQueue&) = delete;
  GlobalRunQueue& operator=(const GlobalRunQueue&) = delete;
  ~GlobalRunQueue();

  // push() appends `f`.
  void push(Fiber* f) noexcept { push_all(&f, 1); }
  // push_all() appends the `n` fibers at `fibers`, in their order.
  void push_all(Fiber* const* fibers, std::size_t n) noexcept;
  // pop() takes the oldest fiber, or returns null when the queue is empty.
  Fiber* pop() noexcept {
    Fiber* f = nullptr;
    return pop_some(&f, 1) == 1 ? f : nullptr;
  }
  // pop_some() moves up to `max` of the oldest fibers to `out`, oldest
  // first, with one lock, and returns how many it moved.
  std::size_t pop_some(Fiber** out, std::size_t max) noexcept;
  bool empty() const noexcept { return size_.load(std::memory_order_acquire) == 0; }
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

 private:
  static constexpr std::uint32_t kChunkFibers = 128;
  static constexpr std::size_t kFreeChunks = 8;  // kept for reuse; ~8 KiB

  struct Chunk {
    Chunk* next = nullptr;
    std::uint32_t begin = 0;
    std::uint32_t end = 0;
    std::array<Fiber*, kChunkFibers> fibers;
  };

  // room_locked() returns tail_ with room for one more fiber, appending a
  // chunk if needed; null when no chunk can be had.
  Chunk* room_locked() noexcept;
  void spill_locked(Fiber* f) noexcept;
  // drop_head_locked() unlinks the emptied head_ chunk and keeps or frees it.
  void drop_head_locked() noexcept;

  std::mutex mutex_;
  Chunk* head_ = nullptr;
  Chunk* tail_ = nullptr;
  Chunk* free_chunks_ = nullptr;
  std::size_t n_free_chunks_ = 0;
  Fiber* spill_head_ = nullptr;  // linked by next_runnable
  Fiber* spill_tail_ = nullptr;
  std::atomic<std::size_t> size_{0};
};

inline GlobalRunQueue::~GlobalRunQueue() {
  for (Chunk* list : {head_, free_chunks_}) {
    while (list) delete std::exchange(list, list->next);
  }
}

inline void GlobalRunQueue::push_all(Fiber* const* fibers, std::size_t n) noexcept {
  std::lock_guard guard(mutex_);
  for (std::size_t i = 0; i < n;) {
    Chunk* c = room_locked();
    if (!c) {
      spill_locked(fibers[i++]);
      continue;
    }
    const std::size_t k = std::min<std::size_t>(n - i, kChunkFibers - c->end);
    std::copy(fibers + i, fibers + i + k, c->fibers.begin() + c->end);
    c->end += static_cast<std::uint32_t>(k);
    i += k;
  }
  size_.fetch_add(n, std::memory_order_release);
}

inline std::size_t GlobalRunQueue::pop_some(Fiber** out, std::size_t max) noexcept {
  if (empty()) return 0;
  std::lock_guard guard(mutex_);
  std::size_t taken = 0;
  for (; spill_head_ && taken < max; ++taken) {
    out[taken] = std::exchange(spill_head_, spill_head_->next_runnable);
    if (!spill_head_) spill_tail_ = nullptr;
  }
  while (head_ && taken < max) {
    const std::size_t k = std::min<std::size_t>(max - taken, head_->end - head_->begin);
    std::copy_n(head_->fibers.begin() + head_->begin, k, out + taken);
    head_->begin += static_cast<std::uint32_t>(k);
    taken += k;
    if (head_->begin == head_->end) drop_head_locked();
  }
  size_.fetch_sub(taken, std::memory_order_relaxed);
  return taken;
}

inline GlobalRunQueue::Chunk* GlobalRunQueue::room_locked() noexcept {
  if (tail_ && tail_->end < kChunkFibers) return tail_;
  Chunk* c = free_chunks_;
  if (c) {
    free_chunks_ = c->next;
    --n_free_chunks_;
    *c = Chunk{};
  } else {
    c = new (std::nothrow) Chunk;
    if (!c) return nullptr;
  }
  if (tail_) tail_->next = c; else head_ = c;
  tail_ = c;
  return c;
}

inline void GlobalRunQueue::spill_locked(Fiber* f) noexcept {
  f->next_runnable = nullptr;
  if (spill_tail_) spill_tail_->next_runnable = f; else spill_head_ = f;
  spill_tail_ = f;
}

inline void GlobalRunQueue::drop_head_locked() noexcept {
  Chunk* c = head_;
  head_ = c->next;
  if (!head_) tail_ = nullptr;
  if (n_free_chunks_ < kFreeChunks) {
    c->next = free_chunks_;
    free_chunks_ = c;
    ++n_free_chunks_;
  } else {
    delete c;
  }
}

}  // namespace goro::detail
