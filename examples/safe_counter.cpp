// SafeCounter: a counter guarded by goro::Mutex, incremented by 1000 fibers
// 1000 times each. goro::Mutex parks a waiting fiber instead of blocking its
// worker thread, and works with std::lock_guard.
//
//   type SafeCounter struct { mu sync.Mutex; v int }
//   func (c *SafeCounter) Inc() { c.mu.Lock(); c.v++; c.mu.Unlock() }
//   func (c *SafeCounter) Value() int { c.mu.Lock(); defer c.mu.Unlock(); return c.v }
//   func main() {
//       c := SafeCounter{}
//       var wg sync.WaitGroup
//       for i := 0; i < 1000; i++ {
//           wg.Add(1)
//           go func() { defer wg.Done(); for j := 0; j < 1000; j++ { c.Inc() } }()
//       }
//       wg.Wait()
//       fmt.Println("Final count:", c.Value())   // Final count: 1000000
//   }
#include <goro/goro.hpp>

#include <cstdio>
#include <mutex>

class SafeCounter {
 public:
  void inc() {
    std::lock_guard lock(mu_);
    ++v_;
  }
  long value() {
    std::lock_guard lock(mu_);
    return v_;
  }

 private:
  goro::Mutex mu_;
  long v_ = 0;
};

int main() {
  long count = goro::run([] {
    SafeCounter c;
    goro::WaitGroup wg;
    for (int i = 0; i < 1000; ++i) {
      wg.go([&c] {
        for (int j = 0; j < 1000; ++j) c.inc();
      });
    }
    wg.wait();
    return c.value();  // run() returns main's result
  });
  std::printf("Final count: %ld\n", count);
  return count == 1'000'000 ? 0 : 1;
}
