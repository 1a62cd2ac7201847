// Spawn a million fibers across all cores, let each add its id to a total,
// and wait for them all: what goroutines are for.
#include <goro/goro.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>

int main() {
  constexpr long kFibers = 1'000'000;
  std::atomic<long> total{0};
  auto start = std::chrono::steady_clock::now();
  goro::run([&] {
    goro::WaitGroup wg;
    for (long id = 0; id < kFibers; ++id) {
      wg.go([id, &total] { total.fetch_add(id, std::memory_order_relaxed); });
    }
    wg.wait();
    std::printf("%ld fibers on %zu workers\n", kFibers, goro::worker_count());
  });
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  std::printf("sum of ids = %ld (expected %ld) in %.0f ms\n", total.load(), kFibers * (kFibers - 1) / 2, ms);
  return total.load() == kFibers * (kFibers - 1) / 2 ? 0 : 1;
}
