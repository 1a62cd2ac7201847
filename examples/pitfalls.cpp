// What goro reports when a program goes wrong, where Go would crash:
//   1. a deadlock: every fiber blocked for good (Go: "fatal error: all
//      goroutines are asleep - deadlock!");
//   2. a leak: fibers still blocked when main returns (Go says nothing;
//      goro reports them with Options::fail_on_leak);
//   3. a send on a closed channel (Go: "panic: send on closed channel").
// Each is caught here, so the program exits 0.
#include <goro/goro.hpp>

#include <cstdio>

int main() {
  // 1. Deadlock: main waits for a value nobody will ever send. run() throws
  //    goro::deadlock_error listing each blocked fiber and what it waits on.
  try {
    goro::run([] {
      goro::Channel<int> ch;
      goro::go([ch] { ch.recv(); });  // a second fiber, also stuck
      ch.recv();                      // and main blocks forever
    });
  } catch (const goro::deadlock_error& e) {
    std::printf("1. deadlock_error:\n%s\n", e.what());
  }

  // 2. Leak: a worker is left waiting on a channel nobody closes. When main
  //    returns it is unwound (its destructors run), then run() throws.
  goro::Options opts;
  opts.fail_on_leak = true;
  try {
    goro::run([] {
      goro::Channel<int> jobs;
      goro::go([jobs] {
        for (int j : jobs) std::printf("job %d\n", j);  // forgot jobs.close()
      });
      jobs.send(1);
    }, opts);
  } catch (const goro::leak_error& e) {
    std::printf("2. leak_error:\n%s\n", e.what());
  }

  // 3. Send on a closed channel throws goro::channel_closed (a std::logic_error).
  goro::run([] {
    goro::Channel<int> ch(1);
    ch.close();
    try {
      ch.send(42);
    } catch (const goro::channel_closed& e) {
      std::printf("3. channel_closed: %s\n", e.what());
    }
  });
  return 0;
}
