// SmallBlockCache and CachingAllocator: per-thread free lists for the small
// objects goro makes and drops at a high rate (context nodes, channel
// states), handed to std::allocate_shared.
//
// Why. A context per request means a node allocated and freed per request,
// and a fan-out frees thousands of them at once: far more than glibc's
// per-thread cache holds, so the rest went through malloc's bins and
// consolidation, about 200 instructions per allocation (context cancel
// fan-out: a fifth of its instructions were malloc and free).
//
// Design. Blocks are grouped in classes of 16 bytes up to kMaxBlock; each
// thread keeps one LIFO free list per class, kMaxCachedBytes in all, beyond
// which a freed block goes back to ::operator delete (a fan-out of 10,000
// contexts frees about 2.5 MB of nodes at once). A block
// may be freed on another thread than the one that allocated it (fibers
// migrate): it simply joins that thread's list. Every block comes from
// ::operator new, so any thread may free any block, and a thread's lists are
// freed when it exits.
//
// Fibers. A fiber may move to another worker thread at any switch, so the
// thread's cache is looked up afresh by every allocate and deallocate through
// an out-of-line accessor (as for every thread-local goro reads), never kept
// across a call that may switch.
//
// Sanitizers. Under AddressSanitizer the cache is bypassed, so a use after
// free of a node is still reported.
//
// Thread-safety: CachingAllocator is stateless and safe from any thread;
// each SmallBlockCache is used only by its own thread.
#pragma once

#include <cstddef>
#include <new>

#include "config.hpp"

namespace goro::detail {

class SmallBlockCache {
 public:
  static constexpr std::size_t kGranule = 16;
  static constexpr std::size_t kMaxBlock = 512;
  static constexpr std::size_t kMaxCachedBytes = 8 * 1024 * 1024;  // per thread, all classes

  // Trivially destructible, so a thread's cache stays usable while its other
  // thread-locals are destroyed; release_all() runs first (of_this_thread()).
  SmallBlockCache() = default;
  SmallBlockCache(const SmallBlockCache&) = delete;
  SmallBlockCache& operator=(const SmallBlockCache&) = delete;

  // of_this_thread() is the calling thread's cache (see "Fibers" above).
  static SmallBlockCache& of_this_thread() noexcept;

  static constexpr bool cacheable(std::size_t bytes) noexcept { return bytes <= kMaxBlock && !GORO_ASAN; }

  // allocate() returns a block of at least `bytes` (cacheable) bytes,
  // 16-aligned; throws std::bad_alloc.
  void* allocate(std::size_t bytes) {
    FreeList& list = lists_[class_of(bytes)];
    if (Node* n = list.head) {  // a retired cache's lists stay empty
      list.head = n->next;
      cached_bytes_ -= rounded(bytes);
      return n;
    }
    return ::operator new(rounded(bytes));
  }
  // deallocate() takes back a block allocate() returned for the same size.
  void deallocate(void* p, std::size_t bytes) noexcept {
    FreeList& list = lists_[class_of(bytes)];
    if (retired_ || cached_bytes_ + rounded(bytes) > kMaxCachedBytes) {
      ::operator delete(p);
      return;
    }
    list.head = ::new (p) Node{list.head};
    cached_bytes_ += rounded(bytes);
  }

 private:
  struct Node {
    Node* next;
  };
  struct FreeList {
    Node* head = nullptr;
  };
  static constexpr std::size_t class_of(std::size_t bytes) noexcept { return (bytes - 1) / kGranule; }
  static constexpr std::size_t rounded(std::size_t bytes) noexcept {
    return (class_of(bytes) + 1) * kGranule;
  }

  // release_all() frees every cached block and stops caching (thread exit).
  void release_all() noexcept {
    retired_ = true;
    for (FreeList& list : lists_) {
      while (Node* n = list.head) {
        list.head = n->next;
        ::operator delete(n);
      }
    }
    cached_bytes_ = 0;
  }

  FreeList lists_[kMaxBlock / kGranule];
  std::size_t cached_bytes_ = 0;
  bool retired_ = false;
};

GORO_NOINLINE inline SmallBlockCache& SmallBlockCache::of_this_thread() noexcept {
  struct Reaper {
    SmallBlockCache* cache;
    ~Reaper() { cache->release_all(); }
  };
  static thread_local SmallBlockCache cache;
  static thread_local Reaper reaper{&cache};
  return *reaper.cache;
}

// CachingAllocator<T> is an allocator for std::allocate_shared that serves
// single small objects from the calling thread's SmallBlockCache.
template <class T>
struct CachingAllocator {
  using value_type = T;

  CachingAllocator() noexcept = default;
  template <class U>
  CachingAllocator(const CachingAllocator<U>&) noexcept {}

  T* allocate(std::size_t n) {
    static_assert(alignof(T) <= alignof(std::max_align_t), "over-aligned types are not cached");
    const std::size_t bytes = n * sizeof(T);
    if (n != 1 || !SmallBlockCache::cacheable(bytes)) return static_cast<T*>(::operator new(bytes));
    return static_cast<T*>(SmallBlockCache::of_this_thread().allocate(bytes));
  }
  void deallocate(T* p, std::size_t n) noexcept {
    const std::size_t bytes = n * sizeof(T);
    if (n != 1 || !SmallBlockCache::cacheable(bytes)) {
      ::operator delete(p);
      return;
    }
    SmallBlockCache::of_this_thread().deallocate(p, bytes);
  }

  template <class U>
  bool operator==(const CachingAllocator<U>&) const noexcept { return true; }
};

}  // namespace goro::detail
