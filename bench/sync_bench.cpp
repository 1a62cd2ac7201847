// Sync toolbox and context benchmarks (Google Benchmark). The same workloads
// in Go are in bench/sync_go/sync_bench_test.go (`go test -bench .`), so
// the two can be run side by side:
//
//   build/bench/goro_bench_sync --benchmark_filter=. --benchmark_repetitions=5
//   (cd bench/sync_go && GOMAXPROCS=2 go test -bench . -count 5)
//
// Every benchmark that needs a runtime starts one runtime and runs the whole
// benchmark loop inside its main fiber, so runtime start-up is not measured
// (Go's testing package does not pay for it either).
#include <benchmark/benchmark.h>
#include <goro/context.hpp>
#include <goro/sync.hpp>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <vector>

namespace {

goro::Options workers(std::int64_t n) {
  goro::Options o;
  o.workers = static_cast<std::size_t>(n);
  return o;
}

// 1000 fibers x 1000 increments of one counter under one Mutex (the issue's
// contended workload; no yield inside the lock).
void BM_MutexContended(benchmark::State& state) {
  const int fibers = 1000;
  const int increments = 1000;
  goro::run(
      [&] {
        for (auto _ : state) {
          goro::Mutex mu;
          std::int64_t counter = 0;
          goro::WaitGroup wg;
          for (int f = 0; f < fibers; ++f) {
            wg.go([&] {
              for (int i = 0; i < increments; ++i) {
                std::lock_guard guard(mu);
                ++counter;
              }
            });
          }
          wg.wait();
          if (counter != std::int64_t{fibers} * increments) state.SkipWithError("wrong count");
        }
      },
      workers(state.range(0)));
  state.counters["ns_per_lock"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * fibers * increments,
      benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_MutexContended)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// Uncontended lock + unlock on a fiber.
void BM_MutexUncontended(benchmark::State& state) {
  goro::run(
      [&] {
        goro::Mutex mu;
        for (auto _ : state) {
          mu.lock();
          mu.unlock();
        }
      },
      workers(1));
}
BENCHMARK(BM_MutexUncontended)->UseRealTime();

// Uncontended lock + unlock on a plain thread, no runtime.
void BM_MutexUncontendedThread(benchmark::State& state) {
  goro::Mutex mu;
  for (auto _ : state) {
    mu.lock();
    mu.unlock();
  }
}
BENCHMARK(BM_MutexUncontendedThread);

// RWMutex read lock + unlock, uncontended.
void BM_RWMutexReadUncontended(benchmark::State& state) {
  goro::RWMutex rw;
  for (auto _ : state) {
    rw.lock_shared();
    rw.unlock_shared();
  }
}
BENCHMARK(BM_RWMutexReadUncontended);

// WaitGroup add/done/wait across 1000 fibers: add(1000), 1000 fibers each
// done(), one wait(). Includes spawning the fibers, as Go's does.
void BM_WaitGroup1000(benchmark::State& state) {
  const int fibers = 1000;
  goro::run(
      [&] {
        for (auto _ : state) {
          goro::WaitGroup wg;
          wg.add(fibers);
          for (int f = 0; f < fibers; ++f) goro::go([&wg] { wg.done(); });
          wg.wait();
        }
      },
      workers(state.range(0)));
}
BENCHMARK(BM_WaitGroup1000)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond)->UseRealTime();

// Cancel a context with 10,000 children (nobody waiting on them). Only the
// cancel is timed; building the tree is not.
void BM_ContextCancelFanout(benchmark::State& state) {
  const int children = 10'000;
  for (auto _ : state) {
    state.PauseTiming();
    auto [parent, cancel] = goro::with_cancel(goro::background());
    std::vector<std::pair<goro::Context, goro::CancelFunc>> kids;
    kids.reserve(children);
    for (int i = 0; i < children; ++i) kids.push_back(goro::with_cancel(parent));
    state.ResumeTiming();
    cancel();
    state.PauseTiming();
    kids.clear();
    state.ResumeTiming();
  }
  state.counters["ns_per_child"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * children, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ContextCancelFanout)->Unit(benchmark::kMicrosecond);

// Build and cancel 10,000 children, including creating each child's done
// channel (Go: ctx.Done()) — the full cost of a fan-out.
void BM_ContextCreateCancelFanout(benchmark::State& state) {
  const int children = 10'000;
  for (auto _ : state) {
    auto [parent, cancel] = goro::with_cancel(goro::background());
    std::vector<std::pair<goro::Context, goro::CancelFunc>> kids;
    kids.reserve(children);
    for (int i = 0; i < children; ++i) {
      kids.push_back(goro::with_cancel(parent));
      benchmark::DoNotOptimize(kids.back().first.done());
    }
    cancel();
    for (auto& [ctx, c] : kids) c();
  }
}
BENCHMARK(BM_ContextCreateCancelFanout)->Unit(benchmark::kMicrosecond);

// 10,000 fibers each blocked on its own child's done(); cancel the parent and
// wait until all have woken.
void BM_ContextCancelWake(benchmark::State& state) {
  const int children = 10'000;
  goro::run(
      [&] {
        for (auto _ : state) {
          auto [parent, cancel] = goro::with_cancel(goro::background());
          goro::WaitGroup wg;
          for (int i = 0; i < children; ++i) {
            auto [child, child_cancel] = goro::with_cancel(parent);
            wg.go([child = child, child_cancel = child_cancel] {
              child.done().recv();
              child_cancel();
            });
          }
          cancel();
          wg.wait();
        }
      },
      workers(state.range(0)));
}
BENCHMARK(BM_ContextCancelWake)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();

// SyncMap loads of a present key and AtomicValue loads, from N threads.
goro::SyncMap<int, int>& shared_map() {
  static goro::SyncMap<int, int> m;
  static std::once_flag filled;
  std::call_once(filled, [] {
    for (int i = 0; i < 1024; ++i) m.store(i, i);
  });
  return m;
}
void BM_SyncMapLoad(benchmark::State& state) {
  auto& m = shared_map();
  int k = static_cast<int>(state.thread_index()) * 17;
  for (auto _ : state) {
    benchmark::DoNotOptimize(m.load(k & 1023));
    ++k;
  }
}
BENCHMARK(BM_SyncMapLoad)->Threads(1)->Threads(2);

void BM_AtomicValueLoad(benchmark::State& state) {
  static goro::AtomicValue<int> value(42);
  for (auto _ : state) benchmark::DoNotOptimize(value.load());
}
BENCHMARK(BM_AtomicValueLoad)->Threads(1)->Threads(2);

}  // namespace

BENCHMARK_MAIN();
