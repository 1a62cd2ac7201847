// Two tasks interleaving, joined with a WaitGroup (Go's `printNumbers` demo).
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>

int main() {
  goro::run([] {
    goro::WaitGroup wg;
    for (const char* task : {"Task A", "Task B"}) {
      wg.go([task] {
        for (int i = 1; i <= 3; ++i) {
          std::printf("%s: %d\n", task, i);
          goro::this_fiber::sleep_for(std::chrono::milliseconds(10));
        }
      });
    }
    wg.wait();
    std::printf("both tasks done\n");
  });
}
