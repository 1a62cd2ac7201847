// TSan control: two fibers, running at the same time on two workers,
// increment a plain int with no synchronization. A ThreadSanitizer build
// must report "WARNING: ThreadSanitizer: data race" (tests/CMakeLists.txt
// checks the output), so a sanitizer that went silent -- fiber annotations
// that hide everything, TSan not linked in, reports swallowed -- cannot pass.
// Built with GORO_TSAN_CONTROL_SYNCED, the increments are under a
// goro::Mutex and the same program must report nothing.
#include <goro/goro.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>

namespace {
int counter = 0;  // the racy variable
}

int main() {
  std::atomic<int> arrived{0};  // relaxed only: TSan derives no ordering from it
  goro::Mutex mu;
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int i = 0; i < 2; ++i) {
          wg.go([&] {
            // Spin (without yielding) until both fibers run: they then hold a
            // worker each, so they run concurrently on different threads.
            arrived.fetch_add(1, std::memory_order_relaxed);
            const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
            while (arrived.load(std::memory_order_relaxed) < 2 && std::chrono::steady_clock::now() < give_up) {
            }
            for (int k = 0; k < 100000; ++k) {
#ifdef GORO_TSAN_CONTROL_SYNCED
              std::lock_guard lock(mu);
#endif
              counter = counter + 1;
            }
          });
        }
        wg.wait();
      },
      goro::Options{.workers = 2});
  std::printf("counter = %d (200000 without the race)\n", counter);
  return 0;
}
