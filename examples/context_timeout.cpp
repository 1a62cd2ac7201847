// Workers stopped by a context timeout: each worker polls ctx.done() with a
// non-blocking select and stops once the deadline has passed. (The Go
// original uses a 2 s timeout and 500 ms of work per round; here 200 ms and
// 50 ms.)
//
//   func worker(ctx context.Context, id int, wg *sync.WaitGroup) {
//       defer wg.Done()
//       for {
//           select {
//           case <-ctx.Done():
//               fmt.Printf("Worker %d stopping: %v\n", id, ctx.Err())
//               return
//           default:
//               fmt.Printf("Worker %d working\n", id)
//               time.Sleep(500 * time.Millisecond)
//           }
//       }
//   }
//   func main() {
//       ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
//       defer cancel()
//       var wg sync.WaitGroup
//       for i := 1; i <= 3; i++ { wg.Add(1); go worker(ctx, i, &wg) }
//       wg.Wait()
//       fmt.Println("All workers stopped")
//   }
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

void worker(goro::Context ctx, int id, goro::WaitGroup* wg) {
  for (;;) {
    bool stop = false;
    goro::select(
        goro::recv(ctx.done(), [&] {
          std::printf("Worker %d stopping: %s\n", id, ctx.err().message().c_str());
          stop = true;
        }),
        goro::default_case([&] {
          std::printf("Worker %d working\n", id);
          goro::this_fiber::sleep_for(50ms);
        }));
    if (stop) break;
  }
  wg->done();
}

int main() {
  goro::run([] {
    auto [ctx, cancel] = goro::with_timeout(goro::background(), 200ms);
    goro::WaitGroup wg;
    for (int i = 1; i <= 3; ++i) {
      wg.add(1);
      goro::go(worker, ctx, i, &wg);
    }
    wg.wait();
    cancel();  // defer cancel(): releases the context's timer (a no-op here, it already fired)
    std::printf("All workers stopped\n");
  });
}
