// Helpers shared by goro's tests.
#pragma once

#include <goro/goro.hpp>

#include <catch2/catch.hpp>
#include <cstddef>

namespace goro_test {

// Sanitizer builds shrink scale tests (TSan: a fiber costs ~1 ms and 830 KB,
// and TSan gives up near 8,000 live threads plus fibers); semantics stay.
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAsan = true;
#else
inline constexpr bool kAsan = false;
#endif

// scaled() picks the count for this build: full, under ASan, under TSan.
constexpr std::size_t scaled(std::size_t full, std::size_t asan, std::size_t tsan) {
  return kTsan ? tsan : kAsan ? asan : full;
}

// Each runtime test runs with these worker counts.
#define GORO_WORKERS() static_cast<std::size_t>(GENERATE(1, 2, 4, 8))

inline goro::Options with_workers(std::size_t n) {
  goro::Options o;
  o.workers = n;
  return o;
}

// with_threads() is with_workers() for tests whose plain threads start with
// work that is not a goro call: such a thread is invisible to the deadlock
// detector until its first goro call (SPEC, Diagnostics), so these tests
// turn the detector off, as the SPEC tells such programs to.
inline goro::Options with_threads(std::size_t n) {
  goro::Options o = with_workers(n);
  o.detect_deadlock = false;
  return o;
}

}  // namespace goro_test
