// sync.Once: ten fibers ask for the configuration; it is loaded exactly once,
// and every caller waits until it is ready.
//
//   var once sync.Once
//   var config string
//   func loadConfig() { fmt.Println("loading config"); config = "debug=true" }
//   func main() {
//       var wg sync.WaitGroup
//       for i := 0; i < 10; i++ {
//           wg.Add(1)
//           go func(i int) {
//               defer wg.Done()
//               once.Do(loadConfig)
//               fmt.Printf("caller %d sees %s\n", i, config)
//           }(i)
//       }
//       wg.Wait()
//   }
#include <goro/goro.hpp>

#include <cstdio>
#include <string>

int main() {
  goro::run([] {
    goro::Once once;
    std::string config;
    goro::WaitGroup wg;
    for (int i = 0; i < 10; ++i) {
      wg.go([&, i] {
        once.call([&] {
          std::printf("loading config\n");
          config = "debug=true";
        });
        // call() returned: the load has completed, and its writes are visible.
        std::printf("caller %d sees %s\n", i, config.c_str());
      });
    }
    wg.wait();
  });
}
