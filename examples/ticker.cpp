// A ticker: a fiber prints each tick until told to stop; main stops the
// ticker after three ticks' worth of time. (The Go original ticks every
// 500 ms and stops after 1600 ms; here 50 ms and 160 ms.)
//
//   ticker := time.NewTicker(500 * time.Millisecond)
//   done := make(chan bool)
//   go func() {
//       for {
//           select {
//           case <-done: return
//           case t := <-ticker.C: fmt.Println("Tick at", t)
//           }
//       }
//   }()
//   time.Sleep(1600 * time.Millisecond)
//   ticker.Stop()
//   done <- true
//   fmt.Println("Ticker stopped")
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

int main() {
  goro::run([] {
    auto start = std::chrono::steady_clock::now();
    goro::Ticker ticker(50ms);
    goro::Channel<bool> done;
    goro::go([ticks = ticker.channel(), done, start] {  // ticker.C: a channel handle, captured by value
      for (;;) {
        bool stop = false;
        goro::select(goro::recv(done, [&] { stop = true; }),
                     goro::recv(ticks, [&](goro::TimePoint t) {
                       auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - start);
                       std::printf("Tick at %lld ms\n", static_cast<long long>(ms.count()));
                     }));
        if (stop) return;
      }
    });
    goro::this_fiber::sleep_for(160ms);
    ticker.stop();
    done.send(true);
    std::printf("Ticker stopped\n");
  });
}
