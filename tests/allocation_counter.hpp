// Counts heap allocations, for tests that check "no allocation per call",
// and can make them fail, for tests of what happens when memory runs out.
//
// Plain builds replace the global operator new (the plain and the aligned
// form) with versions that count; the sanitizers bring their own allocator,
// so there kCountsAllocations is false and tests only run their loops.
// Include this header from exactly one file of a test executable: it
// defines the replacement operators.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> g_allocations{0};
// While set, operator new on this thread throws std::bad_alloc (and the
// nothrow forms, which libstdc++ builds on it, return null). Plain builds
// only.
[[maybe_unused]] thread_local bool t_fail_allocations = false;
}  // namespace

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
constexpr bool kCountsAllocations = true;
__attribute__((noinline)) void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (t_fail_allocations) throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
__attribute__((noinline)) void* operator new(std::size_t n, std::align_val_t align) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (t_fail_allocations) throw std::bad_alloc();
  std::size_t a = std::max(static_cast<std::size_t>(align), sizeof(void*));
  void* p = nullptr;
  if (::posix_memalign(&p, a, n ? n : 1) == 0) return p;
  throw std::bad_alloc();
}
// libstdc++'s operator delete (every form) is free(), which matches both.
#else
constexpr bool kCountsAllocations = false;
#endif
