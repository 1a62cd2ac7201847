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
// Pooling. Blocks are fixed-size and kept in LIFO arrays of pointers: one
// per worker (FiberBlockCache, owner only, so the block reused next is the
// one freed last) and the shared FiberBlockPool, which takes workers'
// surplus and, like StackPool's scavenging, frees all but kRetain blocks
// once a worker has been idle a while (trim()). Releasing a block never
// allocates: the pool's array has room for every block in existence.
//
// Why arrays, not lists threaded through the blocks. Most fibers exit on
// another worker than the one that spawned them, so the blocks a spawning
// worker takes were last written on another core. A free list linked
// through the blocks makes every take a dependent cross-core miss (about
// 250 ns on the eighth session's VM) and a batch refill a chain of them.
// With the addresses in an array, taking a block reads only the array, and
// the spawner prefetches the next blocks for writing while it fills this
// one (Runtime::take_block), so their transfers overlap.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "bounded_lifo.hpp"
#include "spin_lock.hpp"

namespace goro::detail {

inline constexpr std::size_t kFiberBlockSize = 320;
inline constexpr std::size_t kCacheLineBytes = 64;

// lines_spanned() is how many cache lines `bytes` from any address may touch.
inline constexpr std::size_t lines_spanned(std::size_t bytes) noexcept {
  return (bytes + kCacheLineBytes - 1) / kCacheLineBytes + 1;  // + 1: it need not start a line
}

// prefetch_lines_for_write() asks for `Lines` cache lines from `p` on in a
// writable state. A prefetch never faults, so `p` may be stale.
template <std::size_t Lines>
inline void prefetch_lines_for_write(const void* p) noexcept {
  const char* const first = static_cast<const char*>(p);
#pragma GCC unroll 16
  for (std::size_t line = 0; line < Lines; ++line) __builtin_prefetch(first + line * kCacheLineBytes, 1, 3);
}

// prefetch_block() asks for every cache line of `block` in a writable state.
inline void prefetch_block(const void* block) noexcept {
  prefetch_lines_for_write<lines_spanned(kFiberBlockSize)>(block);
}

// FiberBlockCache is a worker's private LIFO of free blocks
// (bounded_lifo.hpp).
using FiberBlockCache = BoundedLifo<void*, 257>;  // Worker::kBlockCache + 1

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
      if (!free_.empty()) {
        void* block = free_.back();
        free_.pop_back();
        publish_count_locked();
        return block;
      }
    }
    void* block = nullptr;
    allocate_new(&block, 1);
    return block;
  }
  // refill() appends up to `n` blocks (they must fit) to `cache`: the
  // pool's if it holds any, else new ones. It throws std::bad_alloc only
  // when it could provide none. A refill the pool can serve allocates
  // nothing, so running out of memory cannot fail it (nor a spawn).
  void refill(FiberBlockCache& cache, std::size_t n) {
    {
      std::lock_guard guard(lock_);
      if (!free_.empty()) {
        const std::size_t moved = std::min(n, free_.size());
        cache.append(free_.data() + (free_.size() - moved), free_.data() + free_.size());
        free_.resize(free_.size() - moved);
        publish_count_locked();
        return;
      }
    }
    std::array<void*, FiberBlockCache::kCapacity> fresh;
    const std::size_t made = allocate_new(fresh.data(), std::min(n, fresh.size()));
    cache.append(fresh.data(), fresh.data() + made);
  }
  // release() takes back one block.
  void release(void* block) noexcept {
    std::lock_guard guard(lock_);
    free_.push_back(block);  // never reallocates: capacity >= allocated_
    publish_count_locked();
  }
  // give_back() moves the oldest `n` blocks of a worker's `cache` here.
  void give_back(FiberBlockCache& cache, std::size_t n) noexcept {
    n = std::min(n, cache.size());
    std::lock_guard guard(lock_);
    free_.insert(free_.end(), cache.begin(), cache.begin() + n);  // never reallocates, as in release()
    publish_count_locked();
    cache.drop_front(n);
  }
  bool has_excess() const noexcept { return count_.load(std::memory_order_relaxed) > kRetain; }
  // trim() frees the oldest blocks beyond kRetain. They are linked through
  // themselves on the way out, so trimming needs no memory either.
  void trim() noexcept {
    struct Unused {
      Unused* next;
    };
    Unused* surplus = nullptr;
    {
      std::lock_guard guard(lock_);
      if (free_.size() <= kRetain) return;
      const auto excess = free_.end() - static_cast<std::ptrdiff_t>(kRetain);
      for (auto it = free_.begin(); it != excess; ++it) surplus = ::new (*it) Unused{surplus};
      allocated_ -= static_cast<std::size_t>(excess - free_.begin());
      free_.erase(free_.begin(), excess);
      publish_count_locked();
    }
    while (surplus) ::operator delete(std::exchange(surplus, surplus->next));
  }

 private:
  FiberBlockPool() = default;

  void publish_count_locked() noexcept { count_.store(free_.size(), std::memory_order_relaxed); }
  // allocate_new() puts up to `n` new blocks at `out` and returns how many;
  // it throws std::bad_alloc if it made none. Room for them in free_ is
  // reserved first, so no release() allocates.
  std::size_t allocate_new(void** out, std::size_t n) {
    {
      std::lock_guard guard(lock_);
      if (free_.capacity() < allocated_ + n) free_.reserve(std::max(allocated_ + n, 2 * free_.capacity()));
      allocated_ += n;
    }
    std::size_t made = 0;
    for (; made < n; ++made) {
      out[made] = ::operator new(kFiberBlockSize, std::nothrow);
      if (!out[made]) break;
    }
    if (made < n) {
      {
        std::lock_guard guard(lock_);
        allocated_ -= n - made;
      }
      if (made == 0) throw std::bad_alloc();
    }
    return made;
  }

  SpinLock lock_;
  std::vector<void*> free_;  // guarded by lock_; capacity() >= allocated_
  std::size_t allocated_ = 0;  // guarded by lock_: blocks in existence
  std::atomic<std::size_t> count_{0};  // free_.size(), for has_excess()
};

}  // namespace goro::detail
