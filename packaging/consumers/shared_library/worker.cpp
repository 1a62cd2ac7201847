// A shared library (or plugin) that uses goro, built with hidden visibility.
// goro's runtime state is in its headers (inline variables): the wrap gives
// it default visibility, so that this library and the program share one copy.
#pragma GCC visibility push(default)
#include <goro/goro.hpp>
#pragma GCC visibility pop

#include <chrono>
#include <mutex>

// Runs fibers, a channel, select with a timeout, a timer, a context deadline
// and a Mutex on the caller's runtime; returns 42.
extern "C" __attribute__((visibility("default"))) int worker_answer() {
  using namespace std::chrono_literals;
  goro::Channel<int> ch;
  goro::WaitGroup wg;
  int got = 0;
  wg.go([ch] {
    goro::this_fiber::sleep_for(1ms);
    ch.send(40);
  });
  wg.go([&got, ch] { goro::select(goro::recv(ch, [&got](int v) { got = v; }), goro::timeout(10s)); });
  auto [ctx, cancel] = goro::with_timeout(goro::background(), 1ms);
  ctx.done().recv();
  goro::after(1ms).recv();
  wg.wait();
  cancel();
  goro::Mutex mu;
  std::lock_guard lock(mu);
  return got + 2;
}
