// Select over two channels that become ready at different times. The Go
// original sleeps 1 s and 2 s; here the delays are scaled down to 100 ms and
// 200 ms so the example runs quickly.
//
//   c1, c2 := make(chan string), make(chan string)
//   go func() { time.Sleep(1 * time.Second); c1 <- "one" }()
//   go func() { time.Sleep(2 * time.Second); c2 <- "two" }()
//   for i := 0; i < 2; i++ {
//       select {
//       case msg1 := <-c1: fmt.Println("received", msg1)
//       case msg2 := <-c2: fmt.Println("received", msg2)
//       }
//   }
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

int main() {
  goro::run([] {
    goro::Channel<std::string> c1, c2;  // unbuffered
    goro::go([c1] {                      // channels are shared handles: capture by value
      goro::this_fiber::sleep_for(100ms);
      c1.send("one");
    });
    goro::go([c2] {
      goro::this_fiber::sleep_for(200ms);
      c2.send("two");
    });
    for (int i = 0; i < 2; ++i) {  // both sleeps run at once: ~200 ms in all, not 300
      goro::select(
          goro::recv(c1, [](std::string msg1) { std::printf("received %s\n", msg1.c_str()); }),
          goro::recv(c2, [](std::string msg2) { std::printf("received %s\n", msg2.c_str()); }));
    }
  });
}
