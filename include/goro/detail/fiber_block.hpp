// Fiber blocks: the memory a fiber's control block lives in, with its callable
// when that is small, apart from the fiber's stack.
//
// Why apart. A fiber that has been spawned but has not run yet needs its
// control block and callable, not a stack. Keeping those in a small block
// means spawning writes to one dense 320-byte block instead of a fresh stack
// page, and the fiber picks its stack only when it first runs: the stack its
// worker released last, still warm in cache (Runtime::give_stack). A burst of
// short fibers then cycles through a few hot stacks instead of faulting in and
// evicting one page per fiber, the way Go's goroutines start on small stacks.
//
// Pooling. Blocks are fixed-size and kept on intrusive LIFO free lists: one
// per worker (FiberBlockList, owner only, so the block reused next is the one
// freed last) and the shared FiberBlockPool, which takes workers' surplus and,
// like StackPool's scavenging, frees all but kRetain blocks once a worker has
// been idle a while (trim()). Releasing a block never allocates.
#pragma once

#include <atomic>
#include <cstddef>
#include <mutex>
#include <new>

#include "spin_lock.hpp"

namespace goro::detail {

inline constexpr std::size_t kFiberBlockSize = 320;

// FiberBlockList is a LIFO of free blocks.
// Thread-safety: none; owned by one worker (or guarded by the pool's lock).
class FiberBlockList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }

  void push(void* block) noexcept {
    auto* node = static_cast<Node*>(block);
    node->next = head_;
    head_ = node;
    ++size_;
  }
  // pop() returns the block pushed last, or null when empty.
  void* pop() noexcept {
    Node* node = head_;
    if (node) {
      head_ = node->next;
      --size_;
    }
    return node;
  }
  // move_to() moves up to `n` blocks onto `to`; returns how many it moved.
  std::size_t move_to(FiberBlockList& to, std::size_t n) noexcept {
    std::size_t moved = 0;
    for (; moved < n && head_; ++moved) to.push(pop());
    return moved;
  }

 private:
  struct Node {
    Node* next;
  };
  Node* head_ = nullptr;
  std::size_t size_ = 0;
};

// FiberBlockPool is the process-wide reserve of fiber blocks.
// Thread-safety: every member is safe from any thread.
class FiberBlockPool {
 public:
  static constexpr std::size_t kRetain = 4096;

  // instance() is never destroyed: exiting fibers may release blocks while
  // the process tears down.
  static FiberBlockPool& instance() noexcept {
    static FiberBlockPool* pool = new FiberBlockPool();
    return *pool;
  }

  // acquire() returns one block; throws std::bad_alloc when memory is out.
  void* acquire() {
    {
      std::lock_guard guard(lock_);
      if (void* block = free_.pop()) {
        count_.store(free_.size(), std::memory_order_relaxed);
        return block;
      }
    }
    return ::operator new(kFiberBlockSize);
  }
  // refill() puts `n` blocks on `list`, allocating what the pool lacks; it
  // throws std::bad_alloc only when it could provide none.
  void refill(FiberBlockList& list, std::size_t n) {
    std::size_t moved = 0;
    {
      std::lock_guard guard(lock_);
      moved = free_.move_to(list, n);
      count_.store(free_.size(), std::memory_order_relaxed);
    }
    for (; moved < n; ++moved) {
      void* block = ::operator new(kFiberBlockSize, std::nothrow);
      if (!block) break;
      list.push(block);
    }
    if (list.empty()) throw std::bad_alloc();
  }
  void release(void* block) noexcept {
    std::lock_guard guard(lock_);
    free_.push(block);
    count_.store(free_.size(), std::memory_order_relaxed);
  }
  // give_back() moves `n` blocks from a worker's `list` into the pool.
  void give_back(FiberBlockList& list, std::size_t n) noexcept {
    std::lock_guard guard(lock_);
    list.move_to(free_, n);
    count_.store(free_.size(), std::memory_order_relaxed);
  }
  bool has_excess() const noexcept { return count_.load(std::memory_order_relaxed) > kRetain; }
  // trim() frees the blocks beyond kRetain.
  void trim() noexcept {
    FiberBlockList surplus;
    {
      std::lock_guard guard(lock_);
      if (free_.size() > kRetain) free_.move_to(surplus, free_.size() - kRetain);
      count_.store(free_.size(), std::memory_order_relaxed);
    }
    while (void* block = surplus.pop()) ::operator delete(block);
  }

 private:
  FiberBlockPool() = default;

  SpinLock lock_;
  FiberBlockList free_;               // guarded by lock_
  std::atomic<std::size_t> count_{0};  // free_.size(), for has_excess()
};

}  // namespace goro::detail
