// Deadlines: every duration and time point the API takes (sleeps, timers,
// select's timeout, contexts) becomes one number, nanoseconds on the steady
// clock (now_ns()'s scale). The conversions saturate instead of
// overflowing, so "forever" stays forever: sleep_for(hours::max()),
// Timer(seconds::max()) or sleep_until(time_point::max()) wait about 292
// years (the int64 range) rather than wrapping to a time in the past and
// returning at once. A zero, negative or NaN duration is "now".
#pragma once

#include <chrono>
#include <cstdint>
#include <ratio>
#include <type_traits>

#include "parker.hpp"

namespace goro::detail {

// kNoDeadline marks "no deadline at all" (a context without one); every
// deadline computed below stays under it.
inline constexpr std::int64_t kNoDeadline = INT64_MAX;

// to_ns_saturated() converts any duration to nanoseconds, clamping to the
// representable range instead of overflowing (a floating-point infinity
// clamps too; NaN is zero). The usual case, a signed 64-bit count of a unit
// no finer than a nanosecond (ns, us, ms, s, min, h), costs two integer
// compares; anything else goes through long double.
template <class Rep, class Period>
std::chrono::nanoseconds to_ns_saturated(std::chrono::duration<Rep, Period> d) noexcept {
  using Duration = std::chrono::duration<Rep, Period>;
  if constexpr (std::is_integral_v<Rep> && std::is_signed_v<Rep> && sizeof(Rep) == sizeof(std::int64_t) &&
                !std::ratio_less_v<Period, std::nano>) {
    // Limits in the caller's unit, rounded toward zero: every count strictly
    // between them converts without overflow.
    constexpr Duration kMax = std::chrono::duration_cast<Duration>(std::chrono::nanoseconds::max());
    constexpr Duration kMin = std::chrono::duration_cast<Duration>(std::chrono::nanoseconds::min());
    if (d >= kMax) return std::chrono::nanoseconds::max();
    if (d <= kMin) return std::chrono::nanoseconds::min();
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d);
  } else {
    long double ns = std::chrono::duration<long double, std::nano>(d).count();
    if (ns != ns) return std::chrono::nanoseconds::zero();
    if (ns >= 9.0e18L) return std::chrono::nanoseconds::max();
    if (ns <= -9.0e18L) return std::chrono::nanoseconds::min();
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
  }
}

// deadline_plus() is `base` + d for a deadline `base`, saturating below
// kNoDeadline; a zero or negative d gives `base`.
inline std::int64_t deadline_plus(std::int64_t base, std::chrono::nanoseconds d) noexcept {
  if (d.count() <= 0) return base;
  if (d.count() >= kNoDeadline - base) return kNoDeadline - 1;
  return base + d.count();
}

// deadline_from_now() is now + d, saturating below kNoDeadline.
inline std::int64_t deadline_from_now(std::chrono::nanoseconds d) noexcept {
  return deadline_plus(now_ns(), d);
}

// deadline_after() is the deadline `d` from now, for any duration type.
template <class Rep, class Period>
std::int64_t deadline_after(std::chrono::duration<Rep, Period> d) noexcept {
  return deadline_from_now(to_ns_saturated(d));
}

// deadline_ns_of() converts a time point on any clock to the steady-clock
// deadline; other clocks are converted once, now (a later change of the
// system clock does not move it).
template <class Clock, class Duration>
std::int64_t deadline_ns_of(const std::chrono::time_point<Clock, Duration>& when) noexcept {
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    // Clamped to [0, kNoDeadline): a time point before the clock's epoch
    // (time_point::min()) is simply past, and a negative deadline would
    // mean "untimed" to a plain thread's park.
    const std::int64_t since_epoch = to_ns_saturated(when.time_since_epoch()).count();
    if (since_epoch < 0) return 0;
    return since_epoch >= kNoDeadline ? kNoDeadline - 1 : since_epoch;
  } else {
    // In saturated nanoseconds since the clock's epoch: comparing or
    // subtracting the time points themselves would convert them to a common
    // duration, which overflows for, say, time_point<system_clock, hours>::max().
    const std::int64_t when_ns = to_ns_saturated(when.time_since_epoch()).count();
    const std::int64_t clock_now_ns = to_ns_saturated(Clock::now().time_since_epoch()).count();
    if (when_ns <= clock_now_ns) return now_ns();
    const std::uint64_t left = static_cast<std::uint64_t>(when_ns) - static_cast<std::uint64_t>(clock_now_ns);
    return deadline_from_now(std::chrono::nanoseconds(
        left >= static_cast<std::uint64_t>(kNoDeadline) ? kNoDeadline : static_cast<std::int64_t>(left)));
  }
}

}  // namespace goro::detail
