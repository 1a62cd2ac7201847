// select: ports of Go's select tests plus the contract of goro::select.
#include <atomic>
#include <cmath>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using goro_test::scaled;
using goro_test::with_workers;

// timeout and default_case together, or twice, must not compile.
template <class... C>
concept Selectable = requires(C&&... c) { goro::select(std::forward<C>(c)...); };
// (static_assert in goro::select fires inside the body, so these are checked
// by the build of examples/misuse in docs; here we check the positive forms.)
static_assert(Selectable<decltype(goro::recv(std::declval<goro::Channel<int>&>())),
                         decltype(goro::default_case())>);

TEST_CASE("TestNonblockSelectRace: a ready case is never passed over for default", "[select][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(10'000, 2'000, 300));
  goro::run(
      [&] {
        goro::Channel<bool> done(1);
        for (int i = 0; i < n; ++i) {
          goro::Channel<int> c1(1), c2(1);
          c1.send(1);
          goro::go([=] {
            bool ok = true;
            goro::select(goro::recv(c1), goro::recv(c2), goro::default_case([&] { ok = false; }));
            done.send(ok);
          });
          c2.send(1);
          goro::select(goro::recv(c1), goro::recv(c2));
          REQUIRE(*done.recv());
        }
      },
      with_workers(workers));
}

TEST_CASE("TestSelectFairness: two always-ready cases split 50/50 within 5 sigma", "[select][go]") {
  const int trials = 10'000;
  int counts[2] = {0, 0};
  goro::run(
      [&] {
        goro::Channel<int> a(trials + 1), b(trials + 1);
        for (int i = 0; i < trials; ++i) {
          a.send(i);
          b.send(i);
        }
        for (int i = 0; i < trials; ++i) {
          std::size_t k = goro::select(goro::recv(a), goro::recv(b));
          counts[k]++;
        }
      },
      with_workers(1));
  const double sigma = std::sqrt(trials * 0.25);
  INFO("counts " << counts[0] << " / " << counts[1]);
  CHECK(std::abs(counts[0] - trials / 2.0) < 5 * sigma);
  CHECK(counts[0] + counts[1] == trials);
}

TEST_CASE("TestSelectStress: selecting senders and receivers on capacities 0,0,2,3", "[select][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(10'000, 3'000, 300));
  goro::run(
      [&] {
        std::atomic<int> lost{0};
        std::vector<goro::Channel<int>> c = {goro::Channel<int>(0), goro::Channel<int>(0),
                                             goro::Channel<int>(2), goro::Channel<int>(3)};
        goro::WaitGroup wg;
        // Plain senders and receivers, one per channel, n operations each.
        for (int k = 0; k < 4; ++k) {
          wg.go([&, k] {
            for (int i = 0; i < n; ++i) c[k].send(i);
          });
          wg.go([&, k] {
            for (int i = 0; i < n; ++i)
              if (!c[k].recv()) lost++;  // Catch2 is not thread-safe: count, check later
          });
        }
        // A selecting sender: n sends on every channel, nil-ing out the done ones.
        wg.go([&] {
          int left[4] = {n, n, n, n};
          goro::Channel<int> cs[4] = {c[0], c[1], c[2], c[3]};
          for (int done = 0; done < 4;) {
            std::size_t k = goro::select(goro::send(cs[0], 0), goro::send(cs[1], 0),
                                         goro::send(cs[2], 0), goro::send(cs[3], 0));
            if (--left[k] == 0) {
              cs[k] = nullptr;
              ++done;
            }
          }
        });
        // A selecting receiver.
        wg.go([&] {
          int left[4] = {n, n, n, n};
          goro::Channel<int> cs[4] = {c[0], c[1], c[2], c[3]};
          for (int done = 0; done < 4;) {
            std::size_t k = goro::select(goro::recv(cs[0]), goro::recv(cs[1]), goro::recv(cs[2]),
                                         goro::recv(cs[3]));
            if (--left[k] == 0) {
              cs[k] = nullptr;
              ++done;
            }
          }
        });
        wg.wait();
        CHECK(lost.load() == 0);
        for (auto& ch : c) CHECK(ch.size() == 0);
      },
      with_workers(workers));
}

TEST_CASE("select commits exactly one case: no value consumed by a losing case", "[select]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(20'000, 5'000, 500));
  goro::run(
      [&] {
        goro::Channel<int> a, b;
        std::atomic<int> via_a{0}, via_b{0};
        goro::WaitGroup wg;
        wg.go([&] {
          for (int i = 0; i < n; ++i) a.send(i);
        });
        wg.go([&] {
          for (int i = 0; i < n; ++i) b.send(i);
        });
        std::int64_t sum = 0;
        for (int i = 0; i < 2 * n; ++i) {
          goro::select(goro::recv(a, [&](int v) { sum += v; via_a++; }),
                       goro::recv(b, [&](int v) { sum += v; via_b++; }));
        }
        wg.wait();
        CHECK(via_a.load() == n);
        CHECK(via_b.load() == n);
        CHECK(sum == 2 * (static_cast<std::int64_t>(n) * (n - 1) / 2));
      },
      with_workers(workers));
}

TEST_CASE("a send case's value moves only if that case wins", "[select]") {
  goro::run(
      [] {
        goro::Channel<std::unique_ptr<int>> full(1), ready(1);
        full.send(std::make_unique<int>(0));
        auto mine = std::make_unique<int>(42);
        std::size_t k = goro::select(goro::send(full, std::move(mine)), goro::default_case());
        CHECK(k == 1);
        REQUIRE(mine);  // the losing send case left it alone
        k = goro::select(goro::send(full, std::move(mine)), goro::send(ready, std::move(mine)));
        CHECK(k == 1);
        CHECK(!mine);
        CHECK(**ready.recv() == 42);
      },
      with_workers(1));
}

TEST_CASE("recv handler forms: optional, value (zero on close), nothing", "[select]") {
  goro::run(
      [] {
        goro::Channel<int> c(3);
        c.send(7);
        c.send(8);
        c.send(9);
        int got = 0;
        goro::select(goro::recv(c, [&](std::optional<int> v) { got = *v; }));
        CHECK(got == 7);
        goro::select(goro::recv(c, [&](int v) { got = v; }));
        CHECK(got == 8);
        bool ran = false;
        goro::select(goro::recv(c, [&] { ran = true; }));
        CHECK(ran);
        c.close();
        bool saw_nullopt = false;
        goro::select(goro::recv(c, [&](auto v) { saw_nullopt = !v.has_value(); }));
        CHECK(saw_nullopt);
        got = -1;
        goro::select(goro::recv(c, [&](int v) { got = v; }));
        CHECK(got == 0);  // Go's zero value
      },
      with_workers(1));
}

TEST_CASE("closed recv case is always ready; chosen send case on closed channel throws", "[select]") {
  goro::run(
      [] {
        goro::Channel<int> closed(1), never;
        closed.close();
        CHECK(goro::select(goro::recv(never), goro::recv(closed)) == 1);
        CHECK_THROWS_AS(goro::select(goro::send(closed, 1), goro::recv(never)), goro::channel_closed);
        // Closed while a select waits to send.
        goro::Channel<int> c;
        goro::go([c] {
          goro::this_fiber::sleep_for(1ms);
          c.close();
        });
        CHECK_THROWS_AS(goro::select(goro::send(c, 1), goro::recv(never)), goro::channel_closed);
      },
      with_workers(2));
}

TEST_CASE("nil channel cases are never ready; default and timeout", "[select]") {
  goro::run(
      [] {
        goro::Channel<int> nil = nullptr;
        CHECK(goro::select(goro::recv(nil), goro::send(nil, 1), goro::default_case()) == 2);
        auto start = std::chrono::steady_clock::now();
        bool timed_out = false;
        CHECK(goro::select(goro::recv(nil), goro::timeout(20ms, [&] { timed_out = true; })) == 1);
        CHECK(timed_out);
        CHECK(std::chrono::steady_clock::now() - start >= 20ms);
      },
      with_workers(2));
}

TEST_CASE("select with no cases blocks forever (reported as deadlock)", "[select]") {
  CHECK_THROWS_AS(goro::run([] { goro::select(); }, with_workers(1)), goro::deadlock_error);
}

TEST_CASE("select from a plain thread, against fibers", "[select][threads]") {
  goro::Channel<int> a, b;
  goro::Channel<goro::Unit> quit;
  int sum = 0;
  std::thread consumer([&] {
    for (bool running = true; running;) {
      goro::select(goro::recv(a, [&](int v) { sum += v; }), goro::recv(b, [&](int v) { sum += v; }),
                   goro::recv(quit, [&] { running = false; }));
    }
  });
  goro::run(
      [&] {
        for (int i = 1; i <= 100; ++i) (i % 2 ? a : b).send(i);
        quit.close();
      },
      goro::Options{.workers = 2, .detect_deadlock = false});
  consumer.join();
  CHECK(sum == 5050);
}

TEST_CASE("the same channel in several cases is locked once", "[select]") {
  goro::run(
      [] {
        goro::Channel<int> c(1);
        c.send(5);
        int got = 0;
        goro::select(goro::recv(c, [&](int v) { got = v; }), goro::recv(c, [&](int v) { got = v; }),
                     goro::send(c, 6));
        CHECK((got == 5 || c.size() == 1));
      },
      with_workers(1));
}
