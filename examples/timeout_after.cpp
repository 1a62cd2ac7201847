// A timeout with goro::after, Go's time.After. The Go original uses 2 s of
// work against 1 s and 3 s timeouts; here 200 ms against 100 ms and 300 ms.
// The result channels are buffered so the late sender does not block forever
// (the usual Go idiom; goro would also unwind it when main returns).
//
//   c1 := make(chan string, 1)
//   go func() { time.Sleep(2 * time.Second); c1 <- "result 1" }()
//   select {
//   case res := <-c1: fmt.Println(res)
//   case <-time.After(1 * time.Second): fmt.Println("timeout 1")
//   }
//   c2 := make(chan string, 1)
//   go func() { time.Sleep(2 * time.Second); c2 <- "result 2" }()
//   select {
//   case res := <-c2: fmt.Println(res)
//   case <-time.After(3 * time.Second): fmt.Println("timeout 2")
//   }
#include <goro/goro.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

int main() {
  goro::run([] {
    goro::Channel<std::string> c1(1);
    goro::go([c1] {
      goro::this_fiber::sleep_for(200ms);
      c1.send("result 1");
    });
    goro::select(goro::recv(c1, [](std::string res) { std::printf("%s\n", res.c_str()); }),
                 goro::recv(goro::after(100ms), [] { std::printf("timeout 1\n"); }));

    goro::Channel<std::string> c2(1);
    goro::go([c2] {
      goro::this_fiber::sleep_for(200ms);
      c2.send("result 2");
    });
    goro::select(goro::recv(c2, [](std::string res) { std::printf("%s\n", res.c_str()); }),
                 goro::recv(goro::after(300ms), [] { std::printf("timeout 2\n"); }));
    // goro::timeout(300ms, [] {...}) is the same case without a channel.
  });
}
