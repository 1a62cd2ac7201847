// Runtime core benchmarks (Google Benchmark). Side-by-side comparisons with Go
// and Boost.Fiber live in bench/compare.sh; these track goro alone.
#include <benchmark/benchmark.h>
#include <goro/goro.hpp>

#include <boost/context/detail/fcontext.hpp>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

goro::Options workers(std::size_t n) {
  goro::Options o;
  o.workers = n;
  return o;
}

// Spawn + join, per fiber.
void BM_SpawnJoin(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    goro::run(
        [n] {
          goro::WaitGroup wg;
          for (std::size_t i = 0; i < n; ++i) wg.go([] {});
          wg.wait();
        },
        workers(static_cast<std::size_t>(state.range(1))));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.counters["ns_per_fiber"] = benchmark::Counter(
      static_cast<double>(state.iterations() * n), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_SpawnJoin)->Args({100000, 1})->Args({100000, 2})->Args({1000000, 2})->Unit(benchmark::kMillisecond)->UseRealTime();

// Two fibers yielding to each other on one worker: two switches per round.
void BM_YieldRoundTrip(benchmark::State& state) {
  const std::int64_t rounds = 1'000'000;
  for (auto _ : state) {
    goro::run(
        [] {
          goro::WaitGroup wg;
          for (int f = 0; f < 2; ++f)
            wg.go([] {
              for (std::int64_t i = 0; i < rounds; ++i) goro::this_fiber::yield();
            });
          wg.wait();
        },
        workers(1));
  }
  state.counters["ns_per_switch"] = benchmark::Counter(
      static_cast<double>(state.iterations() * rounds * 2), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_YieldRoundTrip)->Unit(benchmark::kMillisecond)->UseRealTime();

// A raw Boost.Context jump pair, the reference a switch is measured against.
namespace fctx = boost::context::detail;
void BM_RawFcontextJump(benchmark::State& state) {
  static char stack[64 * 1024];
  fctx::fcontext_t ctx = fctx::make_fcontext(stack + sizeof stack, sizeof stack, [](fctx::transfer_t t) {
    for (;;) t = fctx::jump_fcontext(t.fctx, nullptr);
  });
  for (auto _ : state) {
    ctx = fctx::jump_fcontext(ctx, nullptr).fctx;
  }
  state.counters["ns_per_switch"] = benchmark::Counter(
      static_cast<double>(state.iterations() * 2), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RawFcontextJump);

// The same jump pair through goro's own jump (detail/jump_context.hpp: no
// floating-point control state, `ret` into the resumed context).
void BM_RawJumpContext(benchmark::State& state) {
  static char stack[64 * 1024];
  fctx::fcontext_t ctx = fctx::make_fcontext(stack + sizeof stack, sizeof stack, [](fctx::transfer_t t) {
    for (;;) t = goro::detail::jump_context(t.fctx, nullptr);
  });
  for (auto _ : state) {
    ctx = goro::detail::jump_context(ctx, nullptr).fctx;
  }
  state.counters["ns_per_switch"] = benchmark::Counter(
      static_cast<double>(state.iterations() * 2), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_RawJumpContext);

// goro's switch primitive, detail::switch_context(), between two contexts:
// the jump plus what a switch carries for the flow of control (the
// exception globals and errno; the sanitizers' hooks in their builds). This
// is the "one switch" of the runtime core's goal (within 2x of the raw jump
// above); BM_YieldRoundTrip adds the scheduler's pick and requeue.
namespace gd = goro::detail;
struct SwitchPair {
  gd::ThreadSwitchState here = gd::ThreadSwitchState::of_this_thread();
  gd::ExecutionContext main_ctx;
  gd::ExecutionContext echo_ctx;
};

void BM_SwitchContext(benchmark::State& state) {
  static char stack[64 * 1024];
  SwitchPair pair;
  pair.main_ctx.adopt_thread();
  pair.echo_ctx.make(stack, sizeof stack, [](fctx::transfer_t t) {
    SwitchPair& p = *static_cast<SwitchPair*>(t.data);  // handed over by the first switch
    gd::finish_switch(p.echo_ctx);
    for (;;) {
      p.main_ctx.fctx = t.fctx;
      t = gd::switch_context(p.here, p.echo_ctx, p.main_ctx, nullptr);
    }
  });
  for (auto _ : state) {
    fctx::transfer_t t = gd::switch_context(pair.here, pair.main_ctx, pair.echo_ctx, &pair);
    pair.echo_ctx.fctx = t.fctx;
  }
  state.counters["ns_per_switch"] = benchmark::Counter(
      static_cast<double>(state.iterations() * 2), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  pair.echo_ctx.release();  // the echo context is abandoned mid-loop: nothing on it owns resources
}
BENCHMARK(BM_SwitchContext);

long resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return pages_resident * sysconf(_SC_PAGESIZE);
}

// Resident memory per parked fiber.
void BM_ParkedFiberMemory(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  double per_fiber = 0;
  for (auto _ : state) {
    goro::run(
        [&] {
          goro::WaitGroup gate, all;
          gate.add(1);
          std::atomic<std::size_t> parked{0};
          long before = resident_bytes();
          for (std::size_t i = 0; i < n; ++i)
            all.go([&] {
              parked.fetch_add(1, std::memory_order_relaxed);
              gate.wait();
            });
          while (parked.load() < n) goro::this_fiber::sleep_for(std::chrono::milliseconds(1));
          goro::this_fiber::sleep_for(std::chrono::milliseconds(5));
          per_fiber = static_cast<double>(resident_bytes() - before) / static_cast<double>(n);
          gate.done();
          all.wait();
        },
        workers(2));
  }
  state.counters["bytes_per_fiber"] = per_fiber;
}
BENCHMARK(BM_ParkedFiberMemory)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
