// The generate -> square pipeline from the Go blog's "Pipelines and
// cancellation": each stage is a fiber that receives from an inbound
// channel, sends to an outbound one, and closes it when done.
//
//   func gen(nums ...int) <-chan int {
//       out := make(chan int)
//       go func() { for _, n := range nums { out <- n }; close(out) }()
//       return out
//   }
//   func sq(in <-chan int) <-chan int {
//       out := make(chan int)
//       go func() { for n := range in { out <- n * n }; close(out) }()
//       return out
//   }
//   func main() {
//       c := gen(2, 3)
//       out := sq(c)
//       fmt.Println(<-out)                            // 4
//       fmt.Println(<-out)                            // 9
//       for n := range sq(sq(gen(2, 3))) { fmt.Println(n) }   // 16, 81
//   }
#include <goro/goro.hpp>

#include <cstdio>
#include <initializer_list>
#include <vector>

goro::RecvChannel<int> gen(std::initializer_list<int> nums) {
  goro::Channel<int> out;
  goro::go([out, nums = std::vector<int>(nums)] {  // the fiber owns a copy of the input
    for (int n : nums) out.send(n);
    out.close();
  });
  return out;  // the caller only gets the receive side
}

goro::RecvChannel<int> sq(goro::RecvChannel<int> in) {
  goro::Channel<int> out;
  goro::go([in, out] {
    for (int n : in) out.send(n * n);
    out.close();
  });
  return out;
}

int main() {
  goro::run([] {
    auto c = gen({2, 3});
    auto out = sq(c);
    std::printf("%d\n", *out.recv());
    std::printf("%d\n", *out.recv());

    for (int n : sq(sq(gen({2, 3})))) std::printf("%d\n", n);
  });
}
