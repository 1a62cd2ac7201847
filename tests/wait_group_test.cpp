// WaitGroup: Go's sync.WaitGroup semantics from fibers and plain threads.
#include <atomic>
#include <climits>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

using goro_test::scaled;
using goro_test::with_workers;

TEST_CASE("WaitGroup waits for every fiber", "[waitgroup]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = 1000;
  std::atomic<int> done{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        wg.add(n);
        for (int i = 0; i < n; ++i) {
          goro::go([&] {
            goro::this_fiber::yield();
            done.fetch_add(1);
            wg.done();
          });
        }
        wg.wait();
        CHECK(done.load() == n);
        CHECK(wg.count() == 0);
      },
      with_workers(workers));
}

TEST_CASE("WaitGroup negative counter throws std::logic_error and changes nothing",
          "[waitgroup][misuse]") {
  goro::WaitGroup wg;
  CHECK_THROWS_AS(wg.done(), std::logic_error);
  CHECK(wg.count() == 0);
  wg.add(2);
  CHECK_THROWS_WITH(wg.add(-3), Catch::Contains("negative counter"));
  CHECK(wg.count() == 2);
  wg.add(-2);
  wg.wait();  // zero: returns at once
}

TEST_CASE("WaitGroup counter overflow throws std::overflow_error and changes nothing", "[waitgroup][misuse]") {
  goro::WaitGroup wg;
  // A delta beyond the 32-bit counter used to be shifted out of it: a no-op.
  CHECK_THROWS_AS(wg.add(std::ptrdiff_t{1} << 32), std::overflow_error);
  CHECK_THROWS_WITH(wg.add(3'000'000'000), "goro::WaitGroup: counter overflow: add(3000000000) to 0 passes 2147483647");
  CHECK(wg.count() == 0);
  wg.add(INT32_MAX);
  CHECK_THROWS_WITH(wg.add(1), Catch::Contains("counter overflow: add(1) to 2147483647"));
  CHECK(wg.count() == INT32_MAX);
  CHECK_THROWS_WITH(wg.add(-(std::ptrdiff_t{1} << 40)), Catch::Contains("negative counter"));
  CHECK(wg.count() == INT32_MAX);
  wg.add(-INT32_MAX);
  CHECK(wg.count() == 0);
  wg.wait();
}

TEST_CASE("WaitGroup with several waiters wakes them all", "[waitgroup]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> woken{0};
  goro::run(
      [&] {
        goro::WaitGroup gate, waiters;
        gate.add(1);
        for (int i = 0; i < 20; ++i) {
          waiters.go([&] {
            gate.wait();
            woken.fetch_add(1);
          });
        }
        goro::this_fiber::yield();
        gate.done();
        waiters.wait();
      },
      with_workers(workers));
  CHECK(woken.load() == 20);
}

TEST_CASE("WaitGroup may be destroyed as soon as wait returns", "[waitgroup]") {
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(20'000, 5'000, 500));
  goro::run(
      [&] {
        for (int r = 0; r < rounds; ++r) {
          auto wg = std::make_unique<goro::WaitGroup>();
          wg->add(1);
          goro::go([w = wg.get()] { w->done(); });
          wg->wait();
          wg.reset();  // the done() above must not touch it any more
        }
      },
      with_workers(workers));
}

// The SPEC's destroy-after-wait rule with other waiters still parked: the
// done() that reaches zero wakes them, and meanwhile a wait() from elsewhere
// sees the counter at zero. That wait() must not return (and let the owner
// free the WaitGroup) while the done() is still inside it (ASan reports
// the use after free if it does).
TEST_CASE("WaitGroup may be destroyed as soon as wait returns, with other waiters parked", "[waitgroup][threads]") {
  // One worker, so that each waiter, running until it blocks, is parked in
  // wg->wait() before main goes on: the waiters must not still be on their
  // way into it when the WaitGroup is freed (that would be the test's bug).
  // The done() comes from a plain thread, racing main's wait() on another core.
  const int rounds = static_cast<int>(scaled(2'000, 1'000, 100));
  goro::run(
      [&] {
        for (int r = 0; r < rounds; ++r) {
          auto* wg = new goro::WaitGroup;
          wg->add(1);
          goro::WaitGroup parked, finished;
          for (int i = 0; i < 4; ++i) {
            parked.add(1);
            finished.go([wg, &parked] {
              parked.done();
              wg->wait();
            });
          }
          parked.wait();  // the last waiter woke us and then parked in wg->wait()
          std::thread last([wg] { wg->done(); });
          while (wg->count() != 0) {
            // Spin without yielding: catch the counter's fall at once (the
            // done() comes from a plain thread, so nothing here starves it).
          }
          wg->wait();  // returns once that done() is through
          delete wg;
          last.join();
          finished.wait();
        }
      },
      goro_test::with_threads(1));
}

// add() that would make the counter negative throws and changes nothing: a
// wait() racing it never sees a negative counter, so with the counter at
// zero throughout it always returns at once (it used to park, once in a
// while, on a transient -1, and nothing woke it again).
TEST_CASE("WaitGroup: a failing done() never makes a concurrent wait() block", "[waitgroup][misuse][threads]") {
  const std::size_t workers = GORO_WORKERS();
  const int calls = static_cast<int>(scaled(200'000, 50'000, 5'000));
  std::atomic<int> threw{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;  // never added to
        std::atomic<bool> started{false}, stop{false};
        std::thread bad([&] {
          for (int i = 0; i < calls && !stop.load(); ++i) {
            try {
              wg.done();
            } catch (const std::logic_error&) {
              ++threw;
            }
            started.store(true);
          }
        });
        while (!started.load()) goro::this_fiber::yield();  // its first goro call registered it
        for (int i = 0; i < 10 * calls && threw.load() < calls; ++i) wg.wait();
        stop.store(true);
        bad.join();
        CHECK(wg.count() == 0);
      },
      with_workers(workers));
  CHECK(threw.load() > 0);
}

TEST_CASE("WaitGroup::go calls done even when f throws", "[waitgroup]") {
  CHECK_THROWS_AS(goro::run(
                      [] {
                        goro::WaitGroup wg;
                        wg.go([] { throw std::runtime_error("x"); });
                        wg.wait();  // must not hang
                      },
                      with_workers(2)),
                  std::runtime_error);
}

TEST_CASE("WaitGroup::go destroys f's copy and its captures before done(), however f ends",
          "[waitgroup]") {
  // A capture whose destructor uses state the waiter frees once wait()
  // returns (a connection given back to a pool, a flushed file): it must run
  // while the function still counts. Each destructor records the counter it
  // saw (done() not called yet: at least 1) and then yields the thread (not
  // the fiber: the runtime may be stopping), so a waiter let go early would
  // also see fewer destroyed captures.
  struct Probe {
    goro::WaitGroup* wg;
    std::atomic<int>* destroyed;
    std::atomic<int>* early;  // destructors that ran after their done()
    Probe(goro::WaitGroup* w, std::atomic<int>* d, std::atomic<int>* e) noexcept
        : wg(w), destroyed(d), early(e) {}
    Probe(Probe&& o) noexcept : wg(std::exchange(o.wg, nullptr)), destroyed(o.destroyed), early(o.early) {}
    ~Probe() {
      if (!wg) return;
      if (wg->count() < 1) early->fetch_add(1);
      for (int i = 0; i < 5; ++i) std::this_thread::yield();
      destroyed->fetch_add(1);
    }
  };
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(200, 100, 20));
  std::atomic<int> early{0};
  SECTION("f returns") {
    goro::run(
        [&] {
          for (int r = 0; r < rounds; ++r) {
            std::atomic<int> destroyed{0};
            goro::WaitGroup wg;
            for (int i = 0; i < 4; ++i) wg.go([p = Probe(&wg, &destroyed, &early)] {});
            wg.wait();
            CHECK(destroyed.load() == 4);
          }
        },
        with_workers(workers));
    CHECK(early.load() == 0);
  }
  SECTION("f throws") {
    std::atomic<int> destroyed{0};
    goro::WaitGroup wg;
    CHECK_THROWS_AS(goro::run(
                        [&] {
                          wg.go([p = Probe(&wg, &destroyed, &early)] {
                            throw std::runtime_error("f failed");
                          });
                          wg.wait();
                        },
                        with_workers(workers)),
                    std::runtime_error);
    CHECK(destroyed.load() == 1);
    CHECK(early.load() == 0);
    CHECK(wg.count() == 0);
  }
  SECTION("f is unwound when main returns") {
    std::atomic<int> destroyed{0};
    goro::WaitGroup wg;
    goro::run(
        [&] {
          wg.go([p = Probe(&wg, &destroyed, &early)] {
            goro::WaitGroup never;
            never.add(1);
            never.wait();  // blocks until the runtime unwinds it
          });
          for (int i = 0; i < 50; ++i) goro::this_fiber::yield();
        },
        with_workers(workers));
    CHECK(destroyed.load() == 1);
    CHECK(early.load() == 0);
    CHECK(wg.count() == 0);
  }
  SECTION("goro::go throws: done() is called and the exception propagates") {
    std::atomic<int> destroyed{0};
    goro::WaitGroup wg;
    CHECK_THROWS_AS(wg.go([p = Probe(&wg, &destroyed, &early)] {}), std::logic_error);  // no runtime
    CHECK(wg.count() == 0);
    CHECK(destroyed.load() == 1);
    CHECK(early.load() == 0);
  }
}

TEST_CASE("WaitGroup: a wait() the runtime unwinds lets the fibers it waits for unwind first",
          "[waitgroup]") {
  // Go's idiom: a WaitGroup local to the waiting function, wg.go(...), then
  // wg.wait(). When the runtime stops with that wait still blocked (here a
  // deadlock; an exception escaping a fiber is the same), it unwinds every
  // fiber. The waiter's frame, with its WaitGroup and whatever else the
  // fibers use from it, must not be destroyed before those fibers have
  // unwound and called done(). `frame` stands for that frame: each fiber's
  // capture checks, as it is destroyed (just before its done()), that the
  // waiter has not left its frame yet. (`wg` itself outlives run(), so that
  // a waiter let go too early is counted here rather than being a use after
  // free.)
  struct Frame {
    std::atomic<bool>* alive;
    ~Frame() { alive->store(false); }
  };
  struct Witness {
    std::atomic<bool>* alive;
    std::atomic<int>* early;  // captures destroyed after the waiter's frame
    Witness(std::atomic<bool>* a, std::atomic<int>* e) noexcept : alive(a), early(e) {}
    Witness(Witness&& o) noexcept : alive(std::exchange(o.alive, nullptr)), early(o.early) {}
    ~Witness() {
      if (!alive) return;
      for (int i = 0; i < 5; ++i) std::this_thread::yield();  // give a waiter let go early time to leave
      if (!alive->load()) early->fetch_add(1);
    }
  };
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(30, 20, 6));
  std::atomic<int> early{0};
  for (int r = 0; r < rounds; ++r) {
    goro::WaitGroup wg;
    std::atomic<bool> alive{false};
    CHECK_THROWS_AS(goro::run(
                        [&] {
                          alive = true;
                          Frame frame{&alive};
                          goro::Channel<int> never;
                          for (int i = 0; i < 3; ++i) {
                            wg.go([never, w = Witness(&alive, &early)] { never.recv(); });
                          }
                          wg.wait();  // deadlock: nobody sends on `never`
                        },
                        with_workers(workers)),
                    goro::deadlock_error);
    CHECK(wg.count() == 0);
  }
  CHECK(early.load() == 0);
}

TEST_CASE("WaitGroup works between plain threads and fibers", "[waitgroup][threads]") {
  const int threads = 4;
  std::atomic<int> seen{0};
  goro::WaitGroup from_threads;
  from_threads.add(threads);
  std::vector<std::thread> pool;
  goro::WaitGroup fibers_done;
  fibers_done.add(1);
  // A thread is visible to the deadlock detector from its first goro call on;
  // make sure each has made one before the fibers start waiting on them.
  goro::WaitGroup registered;
  registered.add(threads);
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      registered.done();
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      seen.fetch_add(1);
      from_threads.done();
      fibers_done.wait();  // a plain thread blocks as a thread
    });
  }
  registered.wait();
  goro::run(
      [&] {
        from_threads.wait();
        CHECK(seen.load() == threads);
        fibers_done.done();
      },
      with_workers(2));
  for (auto& t : pool) t.join();
}

TEST_CASE("WaitGroup between plain threads only, no runtime", "[waitgroup][threads]") {
  goro::WaitGroup wg;
  std::atomic<int> n{0};
  wg.add(8);
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) pool.emplace_back([&] { n.fetch_add(1); wg.done(); });
  wg.wait();
  CHECK(n.load() == 8);
  for (auto& t : pool) t.join();
}
