// Processing orders with a WaitGroup: each order runs on its own fiber and
// main waits for all of them.
//
//   func processOrder(id int, wg *sync.WaitGroup) {
//       defer wg.Done()
//       fmt.Printf("Processing order %d\n", id)
//       time.Sleep(100 * time.Millisecond)        // pretend to work
//       fmt.Printf("Order %d processed\n", id)
//   }
//   func main() {
//       var wg sync.WaitGroup
//       for i := 1; i <= 3; i++ { wg.Add(1); go processOrder(i, &wg) }
//       wg.Wait()
//       fmt.Println("All orders processed")
//   }
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>

using namespace std::chrono_literals;

void process_order(int id, goro::WaitGroup* wg) {
  // defer wg.Done(): a scope guard runs even if the work throws.
  struct Done {
    goro::WaitGroup* wg;
    ~Done() { wg->done(); }
  } done{wg};
  std::printf("Processing order %d\n", id);
  goro::this_fiber::sleep_for(100ms);  // parks the fiber, not the worker thread
  std::printf("Order %d processed\n", id);
}

int main() {
  goro::run([] {
    goro::WaitGroup wg;
    for (int i = 1; i <= 3; ++i) {
      wg.add(1);
      goro::go(process_order, i, &wg);  // go processOrder(i, &wg): arguments are copied
    }
    wg.wait();
    std::printf("All orders processed\n");
  });
}
