// Channel and select benchmarks (Google Benchmark). The same workloads in Go
// and Boost.Fiber run side by side through bench/compare.sh.
#include <benchmark/benchmark.h>
#include <goro/goro.hpp>

#include <atomic>
#include <cstdint>

namespace {

goro::Options workers(std::int64_t n) {
  goro::Options o;
  o.workers = static_cast<std::size_t>(n);
  return o;
}

void per_op(benchmark::State& state, std::int64_t ops_per_iteration) {
  state.counters["ns_per_op"] = benchmark::Counter(
      static_cast<double>(state.iterations() * ops_per_iteration),
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

// Unbuffered ping-pong: one round trip = two sends and two receives.
void BM_PingPong(benchmark::State& state) {
  const std::int64_t rounds = 100'000;
  for (auto _ : state) {
    goro::run(
        [] {
          goro::Channel<int> ping, pong;
          goro::go([=] {
            for (std::int64_t i = 0; i < rounds; ++i) pong.send(*ping.recv());
          });
          for (std::int64_t i = 0; i < rounds; ++i) {
            ping.send(1);
            pong.recv();
          }
        },
        workers(state.range(0)));
  }
  per_op(state, rounds);
}
BENCHMARK(BM_PingPong)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Buffered channel (capacity 1024), P producers and P consumers.
void BM_Buffered(benchmark::State& state) {
  const std::int64_t items = 1'000'000;
  const std::int64_t pairs = state.range(0);
  for (auto _ : state) {
    goro::run(
        [&] {
          goro::Channel<std::int64_t> ch(1024);
          goro::WaitGroup producers, consumers;
          for (std::int64_t p = 0; p < pairs; ++p) {
            producers.go([=] {
              for (std::int64_t i = p; i < items; i += pairs) ch.send(i);
            });
            consumers.go([=] {
              for (std::int64_t v : ch) benchmark::DoNotOptimize(v);
            });
          }
          producers.wait();
          ch.close();
          consumers.wait();
        },
        workers(2));
  }
  per_op(state, items);
}
BENCHMARK(BM_Buffered)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

// four_ready_channels() runs `step(c)` a million times per iteration, in a
// runtime of one worker, over four capacity-1 channels that each hold a
// value: the setting of the two select benchmarks below.
template <class Step>
void four_ready_channels(benchmark::State& state, Step step) {
  const std::int64_t steps = 1'000'000;
  for (auto _ : state) {
    goro::run(
        [&] {
          goro::Channel<int> c[4] = {goro::Channel<int>(1), goro::Channel<int>(1),
                                     goro::Channel<int>(1), goro::Channel<int>(1)};
          for (auto& ch : c) ch.send(0);
          for (std::int64_t i = 0; i < steps; ++i) step(c);
        },
        workers(1));
  }
  per_op(state, steps);
}

// Select over 4 channels that always have a value ready.
void BM_Select4Ready(benchmark::State& state) {
  four_ready_channels(state, [](goro::Channel<int> (&c)[4]) {
    goro::select(goro::recv(c[0], [&](int v) { c[0].send(v); }),  //
                 goro::recv(c[1], [&](int v) { c[1].send(v); }),  //
                 goro::recv(c[2], [&](int v) { c[2].send(v); }),  //
                 goro::recv(c[3], [&](int v) { c[3].send(v); }));
  });
}
BENCHMARK(BM_Select4Ready)->Unit(benchmark::kMillisecond)->UseRealTime();

// The floor under BM_Select4Ready: what any select over four ready channels
// must do at least, written by hand: pick a channel at random, receive from
// it and send the value back. Two lock round trips (one per channel
// operation) and a random pick that only indexes data; the gap to
// BM_Select4Ready is what select's protocol costs (see docs/performance.md).
void BM_Select4Floor(benchmark::State& state) {
  std::uint32_t rng = 0x9e3779b9u;  // xorshift32
  four_ready_channels(state, [&rng](goro::Channel<int> (&c)[4]) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    goro::Channel<int>& ch = c[(std::uint64_t{rng} * 4) >> 32];
    ch.send(*ch.try_recv());
  });
}
BENCHMARK(BM_Select4Floor)->Unit(benchmark::kMillisecond)->UseRealTime();

// One uncontended lock round trip of the host (an atomic exchange and a
// release store, as goro's SpinLock does). Locked instructions cost very
// different amounts from one CPU to the next; a channel operation takes
// one such round trip, so read the two benchmarks above in this unit.
void BM_LockRoundTrip(benchmark::State& state) {
  std::atomic<bool> locked{false};
  for (auto _ : state) {
    while (locked.exchange(true, std::memory_order_acquire)) {
    }
    locked.store(false, std::memory_order_release);
  }
}
BENCHMARK(BM_LockRoundTrip);

// Worker pool: 4 workers, jobs and results channels of capacity 100.
void BM_WorkerPool(benchmark::State& state) {
  const std::int64_t jobs = 500'000;
  for (auto _ : state) {
    goro::run(
        [] {
          goro::Channel<std::int64_t> in(100), out(100);
          goro::WaitGroup wg;
          for (int w = 0; w < 4; ++w)
            wg.go([=] {
              for (std::int64_t j : in) out.send(j * 2);
            });
          goro::go([=] {
            for (std::int64_t j = 0; j < jobs; ++j) in.send(j);
            in.close();
          });
          goro::go([&wg, out] {
            wg.wait();
            out.close();
          });
          std::int64_t sum = 0;
          for (std::int64_t r : out) sum += r;
          benchmark::DoNotOptimize(sum);
        },
        workers(2));
  }
  per_op(state, jobs);
}
BENCHMARK(BM_WorkerPool)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
