// Linux futex: the only way a goro worker or a plain thread sleeps in the
// kernel. Spurious wake-ups are allowed; every caller re-checks its word.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace goro::detail {

// futex_wait() blocks while `*word == expected`, for at most `timeout_ns`
// nanoseconds when it is non-negative.
inline void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected,
                       std::int64_t timeout_ns = -1) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = timeout_ns / 1'000'000'000;  // time_t and long are 64-bit where goro runs
    ts.tv_nsec = timeout_ns % 1'000'000'000;
    tsp = &ts;
  }
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, tsp,
            nullptr, 0);
}

// futex_wake() wakes up to `count` threads blocked on `word`. Calling it on a
// word whose owner is gone is harmless: the kernel only uses the address.
inline void futex_wake(std::atomic<std::uint32_t>* word, int count = 1) noexcept {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr,
            nullptr, 0);
}

}  // namespace goro::detail
