// The program every packaging consumer builds: it uses goro the way an
// application would and exits 0 only if the fibers computed the right result
// and the version macros are consistent (with each other and, when the build
// passes GORO_EXPECTED_VERSION, with the package metadata).
#include <goro/goro.hpp>
#include <goro/version.hpp>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>

int main() {
  constexpr int kFibers = 16;
  goro::Options options;
  options.workers = 2;  // more than one worker thread, even on a 1-core machine
  const long sum = goro::run([] {
    std::atomic<long> total{0};
    goro::WaitGroup wg;
    for (int i = 1; i <= kFibers; ++i) {
      wg.go([&total, i] {
        goro::this_fiber::yield();
        total.fetch_add(i, std::memory_order_relaxed);
      });
    }
    wg.add(1);  // the explicit add/done form too
    goro::go([&wg, &total] {
      total.fetch_add(1000, std::memory_order_relaxed);
      wg.done();
    });
    wg.wait();
    return total.load();
  }, options);
  const long want = kFibers * (kFibers + 1) / 2 + 1000;

  const std::string parts = std::to_string(GORO_VERSION_MAJOR) + "." +
                            std::to_string(GORO_VERSION_MINOR) + "." +
                            std::to_string(GORO_VERSION_PATCH);
  bool ok = sum == want && parts == GORO_VERSION_STRING &&
            GORO_VERSION == GORO_VERSION_MAJOR * 10000 + GORO_VERSION_MINOR * 100 + GORO_VERSION_PATCH;
#ifdef GORO_EXPECTED_VERSION
  ok = ok && std::strcmp(GORO_EXPECTED_VERSION, GORO_VERSION_STRING) == 0;
  std::printf("goro %s (package says %s): sum %ld, want %ld: %s\n", GORO_VERSION_STRING,
              GORO_EXPECTED_VERSION, sum, want, ok ? "ok" : "WRONG");
#else
  std::printf("goro %s: sum %ld, want %ld: %s\n", GORO_VERSION_STRING, sum, want, ok ? "ok" : "WRONG");
#endif
  return ok ? 0 : 1;
}
