// goro's runtime: run(), go() and this_fiber.
//
//   int main() {
//     return goro::run([] {
//       goro::WaitGroup wg;
//       for (int i = 0; i < 10; ++i) wg.go([i] { std::printf("fiber %d\n", i); });
//       wg.wait();
//       return 0;
//     });
//   }
//
// Fibers are goroutines: stackful, cheap (a parked fiber costs about a page),
// multiplexed M:N over worker threads that steal work from each other.
//
// Rules for code running on a fiber:
//  - A blocking goro call (channel operation, lock, wait, sleep) may resume the
//    fiber on another worker thread. Do not keep a thread_local's address, or
//    a thread-affine lock such as std::mutex, across one.
//  - Blocking the thread itself (std::mutex contention, blocking I/O,
//    std::this_thread::sleep_for) stalls every fiber queued on that worker.
//  - When main returns, fibers still blocked are unwound: their blocking call
//    throws an internal exception so their destructors run. Never swallow it:
//    a `catch (...)` must rethrow.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>

#include "detail/deadline.hpp"
#include "detail/scheduler.hpp"
#include "errors.hpp"

namespace goro {

// Options configures one run().
struct Options {
  // Worker threads. 0: GORO_MAXPROCS from the environment, else
  // std::thread::hardware_concurrency(). More than 4096 throws.
  std::size_t workers = 0;
  // Virtual reservation per fiber stack; pages are committed on first touch.
  // Rounded up to whole pages, at least 4 of them; more than 1 TiB throws.
  std::size_t stack_size = 256 * 1024;
  // Throw goro::deadlock_error when every fiber is blocked for good.
  bool detect_deadlock = true;
  // Throw goro::leak_error when fibers are still alive after main returns.
  bool fail_on_leak = false;
  // Debug: a non-zero seed runs one worker whose run-queue order and select
  // poll order come from the seed, so a failing interleaving replays
  // exactly. 0: the environment's GORO_SCHED_SEED, if set.
  std::uint64_t sched_seed = 0;
  // Debug: every fiber that resumes does so on another worker than the one
  // it left (needs 2+ workers), to flush out thread-affinity bugs. Also set
  // by GORO_FORCE_MIGRATION=1.
  bool force_migration = false;
};

namespace detail {

// parse_decimal() reads `text` as a decimal number: digits only (no sign,
// no blanks), at least one, and no more than fit in 64 bits.
inline std::optional<std::uint64_t> parse_decimal(const char* text) {
  std::uint64_t n = 0;
  if (!*text) return std::nullopt;
  for (const char* p = text; *p; ++p) {
    if (*p < '0' || *p > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(*p - '0');
    if (n > (UINT64_MAX - digit) / 10) return std::nullopt;
    n = n * 10 + digit;
  }
  return n;
}

// env_number() reads a non-negative integer from the environment (0 if unset).
inline std::uint64_t env_number(const char* name) {
  const char* env = std::getenv(name);
  if (!env || !*env) return 0;
  if (std::optional<std::uint64_t> n = parse_decimal(env)) return *n;
  throw std::invalid_argument(std::string("goro: ") + name + " must be a non-negative integer, got '" + env + "'");
}

// The most workers a runtime takes, from Options or GORO_MAXPROCS.
inline constexpr std::size_t kMaxWorkers = 4096;
// The largest stack reservation: 64 stacks are reserved at a time, and they
// must fit in a 47-bit address space with room to spare.
inline constexpr std::size_t kMaxStackSize = std::size_t{1} << 40;

inline std::size_t resolve_workers(std::size_t requested) {
  if (requested > kMaxWorkers) {
    throw std::invalid_argument("goro::run: Options::workers is " + std::to_string(requested) + "; at most " +
                                std::to_string(kMaxWorkers) + " workers are supported");
  }
  if (requested > 0) return requested;
  if (const char* env = std::getenv("GORO_MAXPROCS"); env && *env) {  // set but empty: as if unset
    const std::optional<std::uint64_t> n = parse_decimal(env);
    if (n && *n > 0 && *n <= kMaxWorkers) return static_cast<std::size_t>(*n);
    throw std::invalid_argument("goro: GORO_MAXPROCS must be a positive integer up to " +
                                std::to_string(kMaxWorkers) + ", got '" + env + "'");
  }
  unsigned n = std::thread::hardware_concurrency();
  return n ? n : 1;
}

// Result slot for run(): main is invoked once, as run() received it (so
// invoke_result_t<F> is what it returns); a reference result is kept as the
// address it names, a void result needs no storage.
template <class R>
struct RunResult {
  std::optional<R> value;
  template <class F>
  void produce(F&& f) { value.emplace(std::invoke(std::forward<F>(f))); }
  R take() { return std::move(*value); }
};
template <class R>
  requires std::is_reference_v<R>
struct RunResult<R> {
  std::remove_reference_t<R>* target = nullptr;
  template <class F>
  void produce(F&& f) { target = std::addressof(static_cast<R>(std::invoke(std::forward<F>(f)))); }
  R take() { return static_cast<R>(*target); }
};
template <>
struct RunResult<void> {
  template <class F>
  void produce(F&& f) { std::invoke(std::forward<F>(f)); }
  void take() {}
};

// sleep_until_ns() parks the fiber, or sleeps the plain thread, until the
// steady-clock deadline (detail/deadline.hpp).
inline void sleep_until_ns(std::int64_t deadline) {
  Fiber* self = current_fiber();
  if (!self) {
    note_goro_use();  // a plain thread that sleeps through goro counts for the deadlock detector
    const std::int64_t now = now_ns();
    if (deadline > now) std::this_thread::sleep_for(std::chrono::nanoseconds(deadline - now));
    return;
  }
  Parker& parker = self->parker;
  parker.prepare("sleep");
  if (parker.park_until(deadline) == WakeReason::unwind) throw FiberUnwind{};
}

}  // namespace detail

// run() starts the workers, runs `main` as the first fiber and returns its
// result once it returns. It throws main's exception, else the first
// exception that escaped any other fiber, else goro::deadlock_error, else
// (with fail_on_leak) goro::leak_error. Fibers still alive when main returns
// are unwound before run() returns. Only one runtime may run at a time in a
// process: a second concurrent run() throws std::logic_error.
template <class F>
auto run(F&& main, Options options = {}) -> std::invoke_result_t<F> {
  using R = std::invoke_result_t<F>;
  detail::RuntimeConfig config;
  config.workers = detail::resolve_workers(options.workers);
  if (options.stack_size > detail::kMaxStackSize) {
    throw std::invalid_argument("goro::run: Options::stack_size is " + std::to_string(options.stack_size) +
                                " bytes; at most 2^40 (1 TiB) can be reserved per fiber");
  }
  config.stack_size = options.stack_size;
  config.detect_deadlock = options.detect_deadlock;
  config.fail_on_leak = options.fail_on_leak;
  config.sched_seed = options.sched_seed ? options.sched_seed : detail::env_number("GORO_SCHED_SEED");
  config.force_migration = options.force_migration || detail::env_number("GORO_FORCE_MIGRATION") != 0;
  if (detail::current_fiber()) {
    throw std::logic_error("goro::run: called from inside a fiber (use goro::go instead)");
  }
  detail::RunResult<R> result;
  detail::Runtime runtime(config);
  runtime.start_workers();
  runtime.spawn([&result, &main] { result.produce(std::forward<F>(main)); }, /*is_main=*/true);
  runtime.open_gate();
  runtime.wait_and_stop();
  return result.take();
}

// go() runs f(args...) on a new fiber. Arguments are decay-copied, as with
// std::thread. Callable from any fiber, or any thread while a runtime is
// running; otherwise it throws std::logic_error.
template <class F, class... A>
void go(F&& f, A&&... args) {
  static_assert((std::is_constructible_v<std::decay_t<A>, A> && ...),
                "goro::go: arguments are decay-copied into the fiber, as with std::thread: "
                "std::move a move-only argument, or pass std::ref to share one");
  static_assert(sizeof...(A) != 0 || std::is_invocable_v<std::decay_t<F>>,
                "goro::go: f must be callable with no arguments (as an rvalue copy, as with std::thread)");
  static_assert(sizeof...(A) == 0 || std::is_invocable_v<std::decay_t<F>, std::decay_t<A>...>,
                "goro::go: f cannot be called with these arguments; they reach it as rvalue copies, "
                "as with std::thread (a parameter taking T& needs std::ref)");
  auto body = [&] {
    if constexpr (sizeof...(A) == 0) {
      return [fn = std::decay_t<F>(std::forward<F>(f))]() mutable { std::invoke(std::move(fn)); };
    } else {
      return [fn = std::decay_t<F>(std::forward<F>(f)),
              tup = std::tuple<std::decay_t<A>...>(std::forward<A>(args)...)]() mutable {
        std::apply(std::move(fn), std::move(tup));
      };
    }
  };
  if (detail::Worker* w = detail::current_worker()) {
    // A worker's runtime lives while it runs. A fiber may spawn while it is
    // being unwound (from a destructor): the unwinder unwinds the new one too.
    w->rt->spawn(body());
    return;
  }
  auto spawn = [&](detail::Runtime* rt) { rt->spawn(body()); };
  switch (detail::spawn_from_outside(/*join_deadlock_count=*/true, spawn)) {
    case detail::OutsideSpawn::spawned: return;
    case detail::OutsideSpawn::no_runtime:
      throw std::logic_error("goro::go: no runtime is running (call it inside goro::run)");
    case detail::OutsideSpawn::stopping:
      throw std::logic_error("goro::go: the runtime is stopping (main returned); no new fibers from plain threads");
  }
}

// worker_count() is the number of worker threads of the running runtime, or
// 0 when none is running (Go's runtime.GOMAXPROCS(0)).
inline std::size_t worker_count() noexcept {
  detail::note_goro_use();
  detail::Runtime* rt = detail::current_runtime();
  return rt ? rt->worker_count() : 0;
}

namespace this_fiber {

// yield() lets other runnable fibers run; on a plain thread it yields the thread.
inline void yield() {
  detail::Fiber* self = detail::current_fiber();
  if (!self) {
    detail::note_goro_use();
    std::this_thread::yield();
    return;
  }
  detail::Runtime* rt = detail::current_runtime();
  if (rt->stopping() && std::uncaught_exceptions() == 0) {
    // A spawner waits to be unwound after the fibers it spawned.
    if (rt->may_have_spawned_live(*self)) detail::park_forever("yield");
    throw detail::FiberUnwind{};
  }
  rt->yield_current(self);
}

// sleep_until() parks the fiber (or sleeps the plain thread) until `when`,
// on any clock (another clock's time point is converted once, now).
// time_point::max() sleeps for good (about 292 years: deadlines saturate).
template <class Clock, class Duration>
void sleep_until(const std::chrono::time_point<Clock, Duration>& when) {
  detail::sleep_until_ns(detail::deadline_ns_of(when));
}

// sleep_for() parks the fiber (or sleeps the plain thread) for `d`; a zero
// or negative `d` returns at once, a huge one (hours::max()) sleeps for good.
template <class Rep, class Period>
void sleep_for(const std::chrono::duration<Rep, Period>& d) {
  detail::sleep_until_ns(detail::deadline_after(d));
}

// id() is the current fiber's id (main is 1), or 0 on a plain thread.
inline std::uint64_t id() noexcept {
  detail::note_goro_use();
  detail::Fiber* self = detail::current_fiber();
  return self ? self->id : 0;
}

}  // namespace this_fiber

}  // namespace goro
