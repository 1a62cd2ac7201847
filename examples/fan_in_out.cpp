// Fan-out, fan-in: two sq stages read from the same channel (fan-out: each
// value goes to whichever is ready first), and merge() multiplexes their
// outputs onto one channel (fan-in), closing it once both are drained.
//
//   func merge(cs ...<-chan int) <-chan int {
//       var wg sync.WaitGroup
//       out := make(chan int)
//       output := func(c <-chan int) { for n := range c { out <- n }; wg.Done() }
//       wg.Add(len(cs))
//       for _, c := range cs { go output(c) }
//       go func() { wg.Wait(); close(out) }()
//       return out
//   }
//   func main() {
//       in := gen(2, 3)
//       c1 := sq(in)
//       c2 := sq(in)
//       for n := range merge(c1, c2) { fmt.Println(n) }   // 4 then 9, or 9 then 4
//   }
#include <goro/goro.hpp>

#include <cstdio>
#include <initializer_list>
#include <memory>
#include <vector>

goro::RecvChannel<int> gen(std::initializer_list<int> nums) {
  goro::Channel<int> out;
  goro::go([out, nums = std::vector<int>(nums)] {
    for (int n : nums) out.send(n);
    out.close();
  });
  return out;
}

goro::RecvChannel<int> sq(goro::RecvChannel<int> in) {
  goro::Channel<int> out;
  goro::go([in, out] {
    for (int n : in) out.send(n * n);
    out.close();
  });
  return out;
}

goro::RecvChannel<int> merge(std::vector<goro::RecvChannel<int>> cs) {
  goro::Channel<int> out;
  // The WaitGroup must outlive merge(): the fibers share ownership of it.
  auto wg = std::make_shared<goro::WaitGroup>();
  wg->add(static_cast<std::ptrdiff_t>(cs.size()));
  for (auto& c : cs) {
    goro::go([c, out, wg] {
      for (int n : c) out.send(n);
      wg->done();
    });
  }
  goro::go([wg, out] {
    wg->wait();
    out.close();
  });
  return out;
}

int main() {
  goro::run([] {
    auto in = gen({2, 3});
    auto c1 = sq(in);  // fan-out: two readers of `in`
    auto c2 = sq(in);
    for (int n : merge({c1, c2})) std::printf("%d\n", n);  // fan-in
  });
}
