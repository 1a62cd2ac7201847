// Runtime core: run/go/yield/sleep, exceptions, unwinding, leaks, deadlocks.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "allocation_counter.hpp"  // t_fail_allocations, kCountsAllocations
#include "test_support.hpp"

using namespace std::chrono_literals;
using goro_test::scaled;
using goro_test::with_workers;

TEST_CASE("run returns main's result", "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  CHECK(goro::run([] { return 42; }, with_workers(workers)) == 42);
  auto p = goro::run([] { return std::make_unique<int>(7); }, with_workers(workers));
  REQUIRE(p);
  CHECK(*p == 7);
  int side = 0;
  goro::run([&] { side = 1; }, with_workers(workers));
  CHECK(side == 1);
}

// Overloaded on its value category, so the test sees which one was called.
struct CategoryProbe {
  int* lvalue_calls;
  int& target;
  std::string operator()() & { ++*lvalue_calls; return "lvalue"; }
  int& operator()() && { return target; }
};

TEST_CASE("run returns what main returns: invoked as passed, references included", "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  int lvalue_calls = 0;
  int target = 3;
  // An rvalue main is invoked as an rvalue: invoke_result_t<F> is int&.
  int& same = goro::run(CategoryProbe{&lvalue_calls, target}, with_workers(workers));
  CHECK(&same == &target);
  // An lvalue main is invoked as an lvalue.
  CategoryProbe probe{&lvalue_calls, target};
  CHECK(goro::run(probe, with_workers(workers)) == "lvalue");
  CHECK(lvalue_calls == 1);
  const int& constant = goro::run([&target]() -> const int& { return target; }, with_workers(workers));
  CHECK(&constant == &target);
  CHECK(goro::run([]() -> const std::string { return "const value"; }, with_workers(workers)) == "const value");
}

TEST_CASE("go invokes its decay-copied callable as an rvalue, as std::thread does", "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  struct RvalueOnly {
    std::atomic<int>* calls;
    void operator()() && { ++*calls; }
  };
  std::atomic<int> calls{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        wg.add(2);
        goro::go([&wg](RvalueOnly f) { std::move(f)(); wg.done(); }, RvalueOnly{&calls});
        goro::go([&wg, f = RvalueOnly{&calls}]() mutable { std::move(f)(); wg.done(); });
        wg.wait();
        wg.add(1);
        struct DoneOnRvalue {
          goro::WaitGroup* wg;
          void operator()() && { wg->done(); }
        };
        goro::go(DoneOnRvalue{&wg});  // no arguments: still an rvalue call
        wg.wait();
      },
      with_workers(workers));
  CHECK(calls == 2);
}

TEST_CASE("run can run again after it returned", "[runtime]") {
  for (int i = 0; i < 20; ++i) CHECK(goro::run([i] { return i; }, with_workers(2)) == i);
}

TEST_CASE("spawn and join a million fibers", "[runtime][scale]") {
  const std::size_t workers = GORO_WORKERS();
  const std::size_t n = scaled(1'000'000, 100'000, 2'000);
  std::atomic<std::size_t> ran{0};
  std::atomic<std::uint64_t> sum{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (std::size_t i = 0; i < n; ++i) {
          wg.go([i, &ran, &sum] {
            ran.fetch_add(1, std::memory_order_relaxed);
            sum.fetch_add(i, std::memory_order_relaxed);
          });
        }
        wg.wait();
      },
      with_workers(workers));
  CHECK(ran.load() == n);
  CHECK(sum.load() == n * (n - 1) / 2);
}

TEST_CASE("200,000 fibers parked at once, then released", "[runtime][scale]") {
  const std::size_t workers = GORO_WORKERS();
  const std::size_t n = scaled(200'000, 50'000, 1'000);
  std::atomic<std::size_t> parked{0};
  std::atomic<std::size_t> finished{0};
  goro::run(
      [&] {
        goro::WaitGroup gate;  // every fiber waits on it
        goro::WaitGroup all;
        gate.add(1);
        for (std::size_t i = 0; i < n; ++i) {
          all.go([&] {
            parked.fetch_add(1);
            gate.wait();
            finished.fetch_add(1);
          });
        }
        while (parked.load() < n) goro::this_fiber::sleep_for(1ms);
        CHECK(finished.load() == 0);
        gate.done();
        all.wait();
      },
      with_workers(workers));
  CHECK(finished.load() == n);
}

TEST_CASE("go passes decay-copied arguments", "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  std::string seen;
  goro::run(
      [&] {
        goro::WaitGroup wg;
        wg.add(1);
        std::string text = "hello";
        goro::go(
            [&](std::string s, int n, std::unique_ptr<int> p) {
              seen = s + std::to_string(n) + std::to_string(*p);
              wg.done();
            },
            text, 5, std::make_unique<int>(9));
        text = "changed";
        wg.wait();
      },
      with_workers(workers));
  CHECK(seen == "hello59");
}

TEST_CASE("an exception from main propagates out of run", "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  CHECK_THROWS_WITH(goro::run([]() -> int { throw std::runtime_error("main failed"); },
                              with_workers(workers)),
                    "main failed");
}

TEST_CASE("an exception escaping another fiber stops the runtime and is rethrown by run",
          "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<bool> main_unwound{false};
  struct Flag {
    std::atomic<bool>* f;
    ~Flag() { f->store(true); }
  };
  CHECK_THROWS_AS(goro::run(
                      [&] {
                        Flag flag{&main_unwound};
                        goro::go([] { throw std::out_of_range("fiber failed"); });
                        goro::WaitGroup never;
                        never.add(1);
                        never.wait();  // unwound when the runtime stops
                      },
                      with_workers(workers)),
                  std::out_of_range);
  CHECK(main_unwound.load());
}

TEST_CASE("fibers still blocked when main returns are unwound, destructors run", "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  static std::atomic<int> destroyed{0};
  destroyed = 0;
  struct Guard {
    ~Guard() { destroyed.fetch_add(1); }
  };
  const int n = 100;
  goro::WaitGroup* forever = nullptr;
  goro::run(
      [&] {
        static goro::WaitGroup never;
        never.add(1);
        forever = &never;
        std::atomic<int> started{0};
        for (int i = 0; i < n; ++i) {
          goro::go([&started] {
            Guard g;
            started.fetch_add(1);
            forever_wait:
            never.wait();
            goto forever_wait;
          });
        }
        while (started.load() < n) goro::this_fiber::yield();
        goro::this_fiber::sleep_for(2ms);
      },
      with_workers(workers));
  CHECK(destroyed.load() == n);
  forever->done();  // reset for the next generated run
}

namespace {

// OnExit runs `fn` from its destructor: the shutdown tests' destructors
// that block.
struct OnExit {
  std::function<void()> fn;
  ~OnExit() { fn(); }
};

}  // namespace

// At shutdown a destructor's wait still completes when what it waits for is
// done by other fibers' unwinding (their destructors) or by a timer: the
// unwinder leaves such waits to their wakers while anything can still move.
// Six fibers block on a channel nobody sends on; when main returns:
//   joiner   its destructor waits on a WaitGroup that signaller's destructor
//            marks done after a sleep (the RAII join of structured code);
//   holder   holds a Mutex; its lock_guard unlocks it as it unwinds;
//   locker   its destructor locks that Mutex, then receives on `handoff`;
//   sender   its destructor sends on `handoff` (a rendezvous between two
//            destructors, each of which may run first);
//   timed    its destructor receives from goro::after(1 ms), whose value
//            goro's timer sends once the heap already looks empty.
TEST_CASE("shutdown: a destructor may wait on what other fibers' unwinding does", "[runtime][unwind]") {
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(goro_test::scaled(40, 20, 5));
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> completed{0};
    std::atomic<int> received{-1};
    goro::run(
        [&] {
          goro::WaitGroup started;
          started.add(6);
          goro::Channel<int> never, handoff;
          auto joined = std::make_shared<goro::WaitGroup>();
          joined->add(1);
          auto mu = std::make_shared<goro::Mutex>();
          goro::go([&, never, joined] {
            OnExit joiner{[&, joined] { joined->wait(); completed.fetch_add(1); }};
            started.done();
            (void)never.recv();
          });
          goro::go([&, never, joined] {
            OnExit signaller{[&, joined] {
              goro::this_fiber::sleep_for(1ms);
              joined->done();
              completed.fetch_add(1);
            }};
            started.done();
            (void)never.recv();
          });
          goro::go([&, never, mu] {
            std::lock_guard holder(*mu);
            started.done();
            (void)never.recv();
          });
          goro::go([&, never, mu, handoff] {
            OnExit locker{[&, mu, handoff] {
              std::lock_guard g(*mu);
              received.store(handoff.recv().value());
              completed.fetch_add(1);
            }};
            started.done();
            (void)never.recv();
          });
          goro::go([&, never, handoff] {
            OnExit sender{[&, handoff] {
              handoff.send(42);
              completed.fetch_add(1);
            }};
            started.done();
            (void)never.recv();
          });
          goro::go([&, never] {
            OnExit timed{[&] {
              (void)goro::after(1ms).recv();
              completed.fetch_add(1);
            }};
            started.done();
            (void)never.recv();
          });
          started.wait();
        },
        with_workers(workers));
    REQUIRE(completed.load() == 5);
    REQUIRE(received.load() == 42);
  }
}

// A fiber whose own exception is propagating can block in a destructor
// before main returns; the unwinding at shutdown must then leave that wait
// to what other fibers' unwinding does, as it does for a destructor that
// blocks during the unwinding. (Unwinding it would throw out of the
// destructor: std::terminate.) The joiner waits for a WaitGroup another
// fiber marks done in a destructor; the locker waits for a Mutex another
// fiber's lock_guard holds. Both catch their exception afterwards.
TEST_CASE("shutdown: a destructor blocked before main returned completes on other fibers' unwinding",
          "[runtime][unwind]") {
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(goro_test::scaled(40, 20, 5));
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> completed{0}, caught{0};
    goro::run(
        [&] {
          goro::WaitGroup holding, blocking;
          holding.add(2);
          blocking.add(2);
          goro::Channel<int> never;
          auto joined = std::make_shared<goro::WaitGroup>();
          joined->add(1);
          auto mu = std::make_shared<goro::Mutex>();
          goro::go([&, never, joined] {
            OnExit signaller{[&, joined] { joined->done(); }};
            holding.done();
            (void)never.recv();
          });
          goro::go([&, never, mu] {
            std::lock_guard holder(*mu);
            holding.done();
            (void)never.recv();
          });
          holding.wait();
          goro::go([&, joined] {
            try {
              OnExit joiner{[&, joined] {
                blocking.done();
                joined->wait();
                completed.fetch_add(1);
              }};
              throw std::runtime_error("the joiner's own error");
            } catch (const std::runtime_error&) {
              caught.fetch_add(1);
            }
          });
          goro::go([&, mu] {
            try {
              OnExit locker{[&, mu] {
                blocking.done();
                std::lock_guard g(*mu);
                completed.fetch_add(1);
              }};
              throw std::runtime_error("the locker's own error");
            } catch (const std::runtime_error&) {
              caught.fetch_add(1);
            }
          });
          blocking.wait();
          goro::this_fiber::sleep_for(2ms);  // both are parked in their destructors (almost always)
        },
        with_workers(workers));
    REQUIRE(completed.load() == 2);
    REQUIRE(caught.load() == 2);
  }
}

// When the runtime stops with main blocked (a fiber's exception, or a
// deadlock), main and the fibers it spawned are unwound together. Their
// lambdas capture main's locals by reference, as Go code would (a Mutex, a
// vector, a channel handle): a fiber unwound after main would lock, dequeue
// from and write to main's destroyed frame. So a fiber is unwound after the
// fibers it spawned, and after theirs: workers spawned by a dispatcher that
// has returned still come before main, and so do fibers a plain thread
// spawned. Each fiber's unwinding checks that main's frame is still there.
// Main blocks on a channel, or polls with yield() (running, not parked,
// when the runtime begins to stop).
TEST_CASE("shutdown: a fiber is unwound after the fibers it spawned and that use its frame",
          "[runtime][unwind]") {
  const std::size_t workers = GORO_WORKERS();
  enum class Stop { failure, deadlock, failure_while_polling };
  const Stop how = GENERATE(Stop::failure, Stop::deadlock, Stop::failure_while_polling);
  constexpr int kDirect = 4, kDispatched = 3, kFromThread = 2;
  constexpr int kFibers = kDirect + kDispatched + kFromThread;
  const int rounds = static_cast<int>(goro_test::scaled(40, 20, 5));
  for (int round = 0; round < rounds; ++round) {
    std::atomic<bool> main_frame{false};
    std::atomic<int> unwound{0}, after_main{0};
    auto stopped = [&] {
      goro::run(
          [&] {
            OnExit frame_gone{[&] { main_frame.store(false); }};  // destroyed last
            main_frame.store(true);
            goro::Mutex mu;
            std::vector<int> seen;
            goro::Channel<int> jobs;
            goro::WaitGroup started;
            started.add(kFibers);
            auto check_frame = [&unwound, &after_main, &main_frame] {
              if (!main_frame.load()) after_main.fetch_add(1);
              unwound.fetch_add(1);
            };
            auto worker = [&, check_frame] {
              OnExit check{check_frame};
              started.done();
              for (;;) {
                auto job = jobs.recv();
                std::lock_guard guard(mu);
                seen.push_back(*job);
              }
            };
            for (int i = 0; i < kDirect; ++i) goro::go(worker);
            goro::go([&] {
              for (int i = 0; i < kDispatched; ++i) goro::go(worker);
            });
            std::thread([&] {
              for (int i = 0; i < kFromThread; ++i) goro::go(worker);
            }).join();
            started.wait();
            jobs.send(1);
            if (how != Stop::deadlock) goro::go([] { throw std::runtime_error("a fiber failed"); });
            if (how == Stop::failure_while_polling) {
              for (;;) goro::this_fiber::yield();
            }
            goro::Channel<int> never;
            (void)never.recv();
          },
          with_workers(workers));
    };
    if (how == Stop::deadlock) {
      REQUIRE_THROWS_AS(stopped(), goro::deadlock_error);
    } else {
      REQUIRE_THROWS_WITH(stopped(), "a fiber failed");
    }
    REQUIRE(unwound.load() == kFibers);
    REQUIRE(after_main.load() == 0);
  }
}

// A chain of spawners, each blocked, each the spawner of the next, as a
// recursive pipeline builds it: link i's unwinding must find link i-1's
// frame still there, so the chain unwinds from its far end, one link at a
// time, released by the exit of the link below (not by a pass each).
TEST_CASE("shutdown: a chain of blocked spawners unwinds from its far end", "[runtime][unwind]") {
  const std::size_t workers = GORO_WORKERS();
  const std::size_t links = goro_test::scaled(2000, 500, 100);
  const int rounds = static_cast<int>(goro_test::scaled(5, 3, 2));
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::atomic<bool>> frame_alive(links);
    std::atomic<std::size_t> unwound{0}, after_spawner{0};
    struct Link {
      static void run(std::size_t i, std::vector<std::atomic<bool>>& alive, std::atomic<std::size_t>& unwound,
                      std::atomic<std::size_t>& after_spawner, goro::WaitGroup& built, goro::Channel<int> never) {
        OnExit frame{[&alive, i] { alive[i].store(false); }};
        alive[i].store(true);
        OnExit check{[&, i] {
          if (i > 0 && !alive[i - 1].load()) after_spawner.fetch_add(1);
          unwound.fetch_add(1);
        }};
        if (i + 1 < alive.size()) {
          goro::go([&, i, never] { run(i + 1, alive, unwound, after_spawner, built, never); });
        }
        built.done();
        (void)never.recv();
      }
    };
    auto stopped = [&] {
      goro::run(
          [&] {
            goro::Channel<int> never;
            goro::WaitGroup built;
            built.add(static_cast<std::ptrdiff_t>(links));
            goro::go([&, never] { Link::run(0, frame_alive, unwound, after_spawner, built, never); });
            built.wait();
            goro::go([] { throw std::runtime_error("a fiber failed"); });
            (void)never.recv();
          },
          with_workers(workers));
    };
    REQUIRE_THROWS_WITH(stopped(), "a fiber failed");
    REQUIRE(unwound.load() == links);
    REQUIRE(after_spawner.load() == 0);
  }
}

// The order is a preference, not a wait that can hang: here a fiber's
// destructor waits for what its spawner's unwinding does (main's guard
// closes the channel it receives from). Once nothing else can move, the
// unwinder ends the spawner anyway.
TEST_CASE("shutdown: a spawner is unwound first when its fibers' destructors wait for that",
          "[runtime][unwind]") {
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(goro_test::scaled(20, 10, 5));
  for (int round = 0; round < rounds; ++round) {
    std::atomic<int> released{0};
    auto stopped = [&] {
      goro::run(
          [&] {
            goro::Channel<int> release, never;
            OnExit closer{[release] { release.close(); }};
            goro::WaitGroup started;
            started.add(3);
            for (int i = 0; i < 3; ++i) {
              goro::go([&started, &released, release, never] {
                OnExit wait_for_spawner{[&released, release] {
                  (void)release.recv();  // ends when main's guard closes it
                  released.fetch_add(1);
                }};
                started.done();
                (void)never.recv();
              });
            }
            started.wait();
            goro::go([] { throw std::runtime_error("a fiber failed"); });
            (void)never.recv();
          },
          with_workers(workers));
    };
    REQUIRE_THROWS_WITH(stopped(), "a fiber failed");
    REQUIRE(released.load() == 3);
  }
}

// Plain channel waits are claimed without a compare-and-swap, under their
// channel's lock; the unwinder takes that lock too, and must never use it
// after a waker won and the fiber freed the channel. Here pairs of fibers
// keep handing values over channels only they hold while main returns, so
// the unwinder races with live hand-offs and the channels die with their
// fibers. A value is counted sent when send() returned and received when
// recv() returned it: the two counts must match and arrive in order.
TEST_CASE("fibers passing values when main returns are unwound, nothing lost or duplicated",
          "[runtime][unwind]") {
  const std::size_t workers = GORO_WORKERS();
  const int pairs = static_cast<int>(goro_test::scaled(64, 32, 8));
  const int rounds = static_cast<int>(goro_test::scaled(20, 10, 4));
  struct Pair {
    std::atomic<long> sent{0};
    std::atomic<long> received{0};
    std::atomic<bool> out_of_order{false};
  };
  for (int round = 0; round < rounds; ++round) {
    std::vector<Pair> tally(static_cast<std::size_t>(pairs));
    std::atomic<int> exited{0};
    goro::run(
        [&] {
          std::atomic<int> running{0};
          for (Pair& p : tally) {
            goro::go([&p, &exited, &running] {
              struct Exit {
                std::atomic<int>& n;
                ~Exit() { n.fetch_add(1); }
              } exit_mark{exited};
              goro::Channel<long> data, ack;  // only this pair holds them
              goro::go([&p, &exited, data, ack] {
                struct Exit {
                  std::atomic<int>& n;
                  ~Exit() { n.fetch_add(1); }
                } exit_mark{exited};
                for (long expect = 0;; ++expect) {
                  long v = data.recv().value();
                  if (v != expect) p.out_of_order.store(true);
                  p.received.fetch_add(1);
                  ack.send(v);
                }
              });
              running.fetch_add(1);
              for (long i = 0;; ++i) {
                data.send(i);
                p.sent.fetch_add(1);
                (void)ack.recv();
              }
            });
          }
          while (running.load() < static_cast<int>(tally.size())) goro::this_fiber::yield();
          goro::this_fiber::sleep_for(std::chrono::microseconds(100 + 200 * (round % 5)));
        },
        with_workers(workers));
    CHECK(exited.load() == 2 * pairs);
    for (Pair& p : tally) {
      CHECK(p.sent.load() == p.received.load());
      CHECK_FALSE(p.out_of_order.load());
    }
  }
}

TEST_CASE("fail_on_leak reports fibers alive when main returns", "[runtime]") {
  const std::size_t workers = GORO_WORKERS();
  goro::Options o = with_workers(workers);
  o.fail_on_leak = true;
  try {
    goro::run(
        [] {
          static goro::WaitGroup never;
          never.add(1);
          std::atomic<int> started{0};
          for (int i = 0; i < 3; ++i) {
            goro::go([&started] {
              started.fetch_add(1);
              never.wait();
            });
          }
          while (started.load() < 3) goro::this_fiber::yield();
          goro::this_fiber::sleep_for(2ms);
          // Fibers that finished are not leaks, even those their workers
          // have not taken out of the registry yet (exits are batched).
          goro::WaitGroup finished;
          for (int i = 0; i < 100; ++i) finished.go([] {});
          finished.wait();
        },
        o);
    FAIL("expected goro::leak_error");
  } catch (const goro::leak_error& e) {
    std::string what = e.what();
    CHECK(what.find("3 fiber(s) still alive") != std::string::npos);
    CHECK(what.find("sync.WaitGroup.Wait") != std::string::npos);
  }
  // Without leaks, fail_on_leak is silent.
  CHECK_NOTHROW(goro::run([] { goro::go([] {}); goro::this_fiber::sleep_for(1ms); }, o));
  CHECK_NOTHROW(goro::run(
      [] {
        goro::WaitGroup finished;
        for (int i = 0; i < 100; ++i) finished.go([] {});
        finished.wait();
      },
      o));
}

namespace {
// main_returns_while_running() is a main that returns once a fiber it
// spawned has signalled it; that fiber then runs (without blocking) for
// `run_for` before returning, or, with `then_block`, blocking for good.
auto main_returns_while_running(std::chrono::milliseconds run_for, bool then_block) {
  return [run_for, then_block] {
    goro::WaitGroup signalled;
    signalled.add(1);
    goro::go([&signalled, run_for, then_block] {
      signalled.done();
      const auto until = std::chrono::steady_clock::now() + run_for;
      while (std::chrono::steady_clock::now() < until) {
      }
      if (!then_block) return;
      static goro::WaitGroup never;
      never.add(1);
      never.wait();
    });
    signalled.wait();
  };
}
}  // namespace

TEST_CASE("fail_on_leak gives a fiber still running when main returns time to finish",
          "[runtime][leak]") {
  const std::size_t workers = GORO_WORKERS();
  goro::Options o = with_workers(workers);
  o.fail_on_leak = true;
  // Runs on for 20 ms after main returned, then returns: not a leak.
  CHECK_NOTHROW(goro::run(main_returns_while_running(20ms, false), o));
  // Still running well past the grace, then blocked for good: a leak,
  // reported as running, or as blocked when main only got to return after
  // the fiber blocked (always on one worker: main waits in that worker's
  // queue; on more, if no other worker took main from it in time).
  try {
    goro::run(main_returns_while_running(400ms, true), o);
    FAIL("expected goro::leak_error");
  } catch (const goro::leak_error& e) {
    INFO(e.what());
    std::string what = e.what();
    CHECK(what.find("1 fiber(s) still alive") != std::string::npos);
    const bool running = what.find("[running]") != std::string::npos;
    const bool blocked = what.find("[sync.WaitGroup.Wait]") != std::string::npos;
    CHECK(running != blocked);
    if (workers == 1) CHECK(blocked);
  }
}

TEST_CASE("deadlock: every fiber blocked throws deadlock_error naming what each waits on",
          "[runtime][deadlock]") {
  const std::size_t workers = GORO_WORKERS();
  try {
    goro::run(
        [] {
          goro::WaitGroup a;
          a.add(1);
          goro::go([&a] {
            goro::WaitGroup b;
            b.add(1);
            b.wait();
            a.done();
          });
          a.wait();
        },
        with_workers(workers));
    FAIL("expected goro::deadlock_error");
  } catch (const goro::deadlock_error& e) {
    std::string what = e.what();
    CHECK(what.rfind("all fibers are asleep - deadlock!", 0) == 0);
    CHECK(what.find("fiber 1 (main) [sync.WaitGroup.Wait]") != std::string::npos);
    CHECK(what.find("fiber 2 [sync.WaitGroup.Wait]") != std::string::npos);
  }
}

TEST_CASE("deadlock is not reported while a timer or a registered thread can still move things",
          "[runtime][deadlock]") {
  const std::size_t workers = GORO_WORKERS();
  // A sleeping fiber will wake the blocked main.
  CHECK_NOTHROW(goro::run(
      [] {
        goro::WaitGroup wg;
        wg.add(1);
        goro::go([&] {
          goro::this_fiber::sleep_for(20ms);
          wg.done();
        });
        wg.wait();
      },
      with_workers(workers)));
  // A plain thread that has used goro, and is busy, will wake the blocked main.
  goro::WaitGroup ready, release;
  ready.add(1);
  release.add(1);
  std::thread helper([&] {
    ready.done();  // its first goro call: it is now visible to the detector
    std::this_thread::sleep_for(30ms);
    release.done();
  });
  ready.wait();  // the helper has made its first goro call before fibers wait on it
  CHECK_NOTHROW(goro::run([&] { release.wait(); }, with_workers(workers)));
  helper.join();
}

TEST_CASE("a registered plain thread in a timed wait is not mistaken for a deadlock", "[runtime][deadlock]") {
  // The thread's timed waits (a select timeout, a sleep) put nothing on the
  // timer heap, so the thread itself must stay counted as able to move.
  const std::size_t workers = GORO_WORKERS();
  goro::Channel<int> answer;
  goro::WaitGroup registered;
  registered.add(1);
  std::thread helper([&] {
    registered.done();  // its first goro call: visible to the detector
    goro::Channel<int> never;
    CHECK(goro::select(goro::recv(never), goro::timeout(50ms)) == 1);
    goro::this_fiber::sleep_for(20ms);  // a plain thread's sleep: no fiber, no timer node
    answer.send(42);
  });
  registered.wait();
  int got = 0;
  CHECK_NOTHROW(got = goro::run([&] { return answer.recv().value(); }, with_workers(workers)));
  CHECK(got == 42);
  helper.join();
}

TEST_CASE("a plain thread whose goro calls never blocked still counts for the deadlock detector",
          "[runtime][deadlock]") {
  // The helper's first goro call completes at once, whatever it is; then it
  // works outside goro before it sends: main must wait for it, not be told
  // it deadlocked. One row per kind of call, since each must register.
  const std::size_t workers = GORO_WORKERS();
  goro::Channel<int> ch(1);       // the helper's word to main: a failing run cannot strand it
  goro::Channel<int> scratch(8);  // what the first calls send
  const goro::Context ctx = goro::with_cancel(goro::background()).first;  // not a structured binding: lambdas capture it
  static const goro::ContextKey<int> key{"key"};
  goro::AtomicValue<int> atomic(1);
  goro::SyncMap<int, int> map;
  goro::Mutex mutex;
  goro::Cond cond(mutex);
  goro::Semaphore sem(1);
  goro::Once once;
  once.call([] {});
  goro::WaitGroup idle_group;
  goro::ErrGroup group;
  const std::vector<std::pair<const char*, std::function<void()>>> first_calls = {
      {"a buffered send", [&] { scratch.send(1); }},
      {"a try_send", [&] { CHECK(scratch.try_send(1)); }},
      {"a sleep", [&] { goro::this_fiber::sleep_for(1ms); }},
      {"Channel::size", [&] { (void)scratch.size(); }},
      {"Channel::closed", [&] { (void)scratch.closed(); }},
      {"Channel::capacity", [&] { (void)scratch.capacity(); }},
      {"making a channel", [&] { goro::Channel<int> fresh(1); }},
      {"background", [&] { (void)goro::background(); }},
      {"with_cancel", [&] { (void)goro::with_cancel(ctx); }},
      {"with_value", [&] { (void)goro::with_value(ctx, key, 1); }},
      {"without_cancel", [&] { (void)goro::without_cancel(ctx); }},
      {"with_cancel_cause", [&] { (void)goro::with_cancel_cause(ctx); }},
      {"Context::err", [&] { CHECK_FALSE(ctx.err()); }},
      {"Context::done", [&] { (void)ctx.done(); }},
      {"Context::deadline", [&] { CHECK_FALSE(ctx.deadline()); }},
      {"Context::value", [&] { CHECK(ctx.value(key) == nullptr); }},
      {"cause", [&] { CHECK_FALSE(goro::cause(ctx)); }},
      {"a CancelFunc", [&] { goro::CancelFunc()(); }},
      {"after_func", [&] { CHECK(goro::after_func(ctx, [] {})()); }},
      {"AtomicValue::load", [&] { CHECK(*atomic.load() == 1); }},
      {"AtomicValue::store", [&] { atomic.store(1); }},
      {"SyncMap::load", [&] { CHECK_FALSE(map.load(1)); }},
      {"SyncMap::range", [&] { map.range([](int, int) { return true; }); }},
      {"Cond::signal", [&] { cond.signal(); }},
      {"Cond::broadcast", [&] { cond.broadcast(); }},
      {"Semaphore::available", [&] { CHECK(sem.available() == 1); }},
      {"Once::call, already done", [&] { once.call([] { FAIL("ran twice"); }); }},
      {"WaitGroup::wait at zero", [&] { idle_group.wait(); }},
      {"ErrGroup::set_limit", [&] { group.set_limit(4); }},
      {"a Timer made and stopped", [&] { CHECK(goro::Timer(1h).stop()); }},
      {"worker_count", [&] { (void)goro::worker_count(); }},
      {"this_fiber::id", [&] { CHECK(goro::this_fiber::id() == 0); }},
  };
  for (const auto& row : first_calls) {
    const std::function<void()>& first_call = row.second;  // not a structured binding: the helper captures it
    INFO("first call: " << row.first);
    std::atomic<bool> first_call_made{false};
    std::thread helper([&] {
      first_call();
      first_call_made = true;
      std::this_thread::sleep_for(50ms);  // busy elsewhere, not blocked in goro
      ch.send(2);
    });
    // Before its first goro call the helper is rightly invisible to the detector.
    while (!first_call_made) std::this_thread::yield();
    int got = 0;
    CHECK_NOTHROW(got = goro::run([&] { return ch.recv().value(); }, with_workers(workers)));
    CHECK(got == 2);
    helper.join();
    while (scratch.try_recv()) {}
  }
}

TEST_CASE("goro's timer thread, firing a timer's channel, never counts as a user thread for the detector",
          "[runtime][deadlock]") {
  // With no runtime running only the timer thread fires after(): its send
  // on the timer's channel is a goro call, which must not register it as a
  // plain thread that could still move things (it would blind the detector
  // for the rest of the process).
  auto fired = goro::after(1ms);
  std::this_thread::sleep_for(30ms);  // a std sleep: this thread makes no goro call
  REQUIRE(fired.size() == 1);
  // A watchdog unblocks main if no deadlock is reported, so that a regression
  // fails this test instead of hanging it.
  goro::Channel<int> never;
  std::mutex m;
  std::condition_variable cv;
  bool finished = false;
  std::thread watchdog([&] {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, 5s, [&] { return finished; })) never.send(1);
  });
  CHECK_THROWS_AS(goro::run([&] { (void)never.recv(); }, with_workers(1)), goro::deadlock_error);
  {
    std::lock_guard lock(m);
    finished = true;
  }
  cv.notify_one();
  watchdog.join();
}

TEST_CASE("go from a plain thread while run() comes and goes: each fiber runs or is dropped, none leaks",
          "[runtime][threads]") {
  // A plain thread keeps spawning while runtimes start and stop. Each go()
  // either throws std::logic_error (no runtime, or one that is stopping) or
  // hands its fiber to a runtime that runs or unwinds it; every callable is
  // destroyed by the time the runtimes are gone, and every run() returns.
  const int runs = static_cast<int>(goro_test::scaled(40, 20, 10));
  auto token = std::make_shared<int>(0);  // each callable holds a copy
  std::atomic<bool> done{false};
  std::atomic<long> accepted{0}, refused{0}, ran{0};
  // At most kBacklog callables alive at once: a spawner that outruns the
  // workers (under TSan a fiber's first run costs about 1 ms) would queue
  // fibers faster than they run, and each run() would then last as long as
  // the flood it has to work through (minutes under a loaded TSan build).
  constexpr long kBacklog = 64;
  std::thread spawner([&] {
    while (!done.load()) {
      if (token.use_count() > kBacklog) {
        std::this_thread::sleep_for(50us);
        continue;
      }
      try {
        goro::go([token, &ran] { ++ran; });
        ++accepted;
      } catch (const std::logic_error&) {
        ++refused;
      }
      if ((accepted + refused) % 8 == 0) std::this_thread::yield();
    }
  });
  for (int r = 0; r < runs; ++r) goro::run([] { goro::this_fiber::sleep_for(1ms); }, with_workers(2));
  done = true;
  spawner.join();
  INFO("accepted " << accepted << ", refused " << refused << ", ran " << ran);
  CHECK(token.use_count() == 1);  // no fiber's callable outlived its runtime
  CHECK(ran <= accepted);
}

TEST_CASE("detect_deadlock = false lets fibers wait on threads goro never saw", "[runtime][deadlock]") {
  goro::Options o = with_workers(2);
  o.detect_deadlock = false;
  goro::WaitGroup release;
  release.add(1);
  std::atomic<bool> go_on{false};
  std::thread helper([&] {
    while (!go_on.load()) std::this_thread::sleep_for(1ms);
    std::this_thread::sleep_for(20ms);
    release.done();
  });
  CHECK_NOTHROW(goro::run(
      [&] {
        go_on = true;
        release.wait();
      },
      o));
  helper.join();
}

TEST_CASE("go outside a runtime throws std::logic_error", "[runtime]") {
  CHECK_THROWS_AS(goro::go([] {}), std::logic_error);
  CHECK(goro::worker_count() == 0);
}

TEST_CASE("run from inside a fiber throws std::logic_error", "[runtime]") {
  CHECK_THROWS_AS(goro::run([] { goro::run([] {}); }, with_workers(2)), std::logic_error);
}

TEST_CASE("a second concurrent runtime is refused with std::logic_error", "[runtime]") {
  std::atomic<bool> inside{false};
  std::atomic<bool> leave{false};
  std::thread first([&] {
    goro::run(
        [&] {
          inside = true;
          while (!leave.load()) goro::this_fiber::sleep_for(1ms);
        },
        with_workers(1));
  });
  while (!inside.load()) std::this_thread::sleep_for(1ms);
  CHECK_THROWS_AS(goro::run([] {}, with_workers(1)), std::logic_error);
  leave = true;
  first.join();
}

TEST_CASE("GORO_MAXPROCS sets the worker count when Options::workers is 0", "[runtime]") {
  ::setenv("GORO_MAXPROCS", "3", 1);
  CHECK(goro::run([] { return goro::worker_count(); }) == 3);
  // Digits only: no sign, no blanks, nothing that wraps around.
  for (const char* bad : {"zero", "", "-1", "-18446744073709551612", "+3", " 3", "3 ", "0", "99999999999999999999"}) {
    CAPTURE(bad);
    ::setenv("GORO_MAXPROCS", bad, 1);
    if (*bad) CHECK_THROWS_AS(goro::run([] {}), std::invalid_argument);
    else CHECK(goro::run([] { return goro::worker_count(); }) >= 1);  // set but empty: as if unset
  }
  ::unsetenv("GORO_MAXPROCS");
  for (const char* bad : {"-1", "+5", " 5", "18446744073709551616"}) {
    CAPTURE(bad);
    ::setenv("GORO_SCHED_SEED", bad, 1);
    CHECK_THROWS_WITH(goro::run([] {}), Catch::Contains("GORO_SCHED_SEED must be a non-negative integer"));
  }
  ::unsetenv("GORO_SCHED_SEED");
  CHECK(goro::run([] { return goro::worker_count(); }, with_workers(5)) == 5);
}

TEST_CASE("Options out of range throw std::invalid_argument naming them; tiny stacks are rounded up",
          "[runtime][misuse]") {
  goro::Options too_many;
  too_many.workers = 4097;
  CHECK_THROWS_WITH(goro::run([] {}, too_many), Catch::Contains("Options::workers is 4097"));
  goro::Options huge_stacks;
  huge_stacks.workers = 1;
  for (std::size_t size : {std::size_t{1} << 41, SIZE_MAX / 2, SIZE_MAX}) {
    huge_stacks.stack_size = size;
    CHECK_THROWS_WITH(goro::run([] {}, huge_stacks), Catch::Contains("Options::stack_size is " + std::to_string(size)));
  }
  ::setenv("GORO_MAXPROCS", "4097", 1);
  CHECK_THROWS_WITH(goro::run([] {}), Catch::Contains("up to 4096, got '4097'"));
  ::unsetenv("GORO_MAXPROCS");
  goro::Options tiny_stacks;
  tiny_stacks.workers = 2;
  tiny_stacks.stack_size = 0;  // rounded up to four pages
  CHECK(goro::run(
            [] {
              goro::WaitGroup wg;
              std::atomic<int> sum{0};
              for (int i = 0; i < 100; ++i) wg.go([&sum, i] { sum += i; });
              wg.wait();
              return sum.load();
            },
            tiny_stacks) == 4950);
}

TEST_CASE("2,000 fibers sleeping 100 ms finish together, parking fibers not threads",
          "[runtime][timer]") {
  const std::size_t n = scaled(2'000, 2'000, 500);
  auto start = std::chrono::steady_clock::now();
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (std::size_t i = 0; i < n; ++i) wg.go([] { goro::this_fiber::sleep_for(100ms); });
        wg.wait();
      },
      with_workers(2));
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(elapsed >= 100ms);
  // Sleeping threads instead of fibers would take n * 100 ms / 2 = 100 s.
  CHECK(elapsed < 5s);
}

TEST_CASE("sleep_until in the past returns at once; sleep on a plain thread sleeps the thread",
          "[runtime][timer]") {
  goro::run([] { goro::this_fiber::sleep_until(std::chrono::steady_clock::now() - 1s); },
            with_workers(1));
  auto start = std::chrono::steady_clock::now();
  goro::this_fiber::sleep_for(5ms);
  goro::this_fiber::yield();
  CHECK(std::chrono::steady_clock::now() - start >= 5ms);
  CHECK(goro::this_fiber::id() == 0);
}

TEST_CASE("sleep_until a time point before the clock's epoch returns at once, on fibers and plain threads",
          "[runtime][timer]") {
  // time_point::min() once overflowed into a negative deadline, which a
  // plain thread's sleep took for an endless one.
  const auto steady_min = std::chrono::steady_clock::time_point::min();
  const auto system_min = std::chrono::system_clock::time_point::min();
  goro::run(
      [&] {
        goro::this_fiber::sleep_until(steady_min);
        goro::this_fiber::sleep_until(system_min);
      },
      with_workers(1));
  auto returned = std::make_shared<std::atomic<int>>(0);
  std::thread sleeper([returned, steady_min, system_min] {
    goro::this_fiber::sleep_until(steady_min);
    goro::this_fiber::sleep_until(system_min);
    *returned = 1;
  });
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  while (*returned == 0 && std::chrono::steady_clock::now() < give_up) std::this_thread::sleep_for(1ms);
  const bool slept_past_deadline = *returned == 0;
  if (slept_past_deadline) sleeper.detach();  // hung: leave it, so the failure is reported
  else sleeper.join();
  REQUIRE_FALSE(slept_past_deadline);
  auto [ctx, cancel] = goro::with_deadline(goro::background(), steady_min);
  CHECK(ctx.err() == goro::errc::deadline_exceeded);
  cancel();
}

TEST_CASE("a polling loop that yields lets timers fire, and is unwound when main returns", "[runtime][timer]") {
  // docs/pitfalls.md, "Polling in a loop": fibers are not preempted, so a
  // loop that never blocks must yield. With one worker, the sleeper below
  // runs again only because the pollers yield; the endless poller ends only
  // because its yield throws the unwind once main has returned.
  bool poller_unwound = false;
  goro::run(
      [&] {
        goro::go([&] {
          struct Flag {
            bool& set;
            ~Flag() { set = true; }
          } on_unwind{poller_unwound};
          goro::Channel<goro::Unit> never;
          for (;;) {
            goro::select(goro::recv(never), goro::default_case());
            goro::this_fiber::yield();
          }
        });
        goro::Channel<goro::Unit> done;
        goro::go([done] {
          goro::this_fiber::sleep_for(5ms);
          done.close();
        });
        for (bool stop = false; !stop;) {
          goro::select(goro::recv(done, [&] { stop = true; }), goro::default_case());
          goro::this_fiber::yield();
        }
      },
      with_workers(1));
  CHECK(poller_unwound);
}

TEST_CASE("yield lets the other fibers of a worker run", "[runtime]") {
  std::vector<int> order;
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int id = 0; id < 2; ++id) {
          wg.go([&order, id] {
            for (int i = 0; i < 3; ++i) {
              order.push_back(id);
              goro::this_fiber::yield();
            }
          });
        }
        wg.wait();
      },
      with_workers(1));
  // Like Go, the fiber spawned last runs first (it sits in runnext); then
  // the two alternate at every yield.
  REQUIRE(order.size() == 6);
  for (std::size_t i = 1; i < order.size(); ++i) CHECK(order[i] != order[i - 1]);
}

TEST_CASE("exception state survives switches: catch blocks that park, uncaught_exceptions",
          "[runtime][exceptions]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = 50, rounds = 200;
  std::atomic<int> good{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int f = 0; f < fibers; ++f) {
          wg.go([&good, f] {
            for (int r = 0; r < rounds; ++r) {
              try {
                throw std::runtime_error(std::to_string(f * 1000 + r));
              } catch (const std::runtime_error& e) {
                goro::this_fiber::yield();  // others throw and catch meanwhile
                try {
                  throw;  // rethrows *this* fiber's exception
                } catch (const std::runtime_error& again) {
                  if (std::string(again.what()) == std::to_string(f * 1000 + r) &&
                      std::uncaught_exceptions() == 0)
                    good.fetch_add(1);
                }
              }
            }
          });
        }
        wg.wait();
      },
      with_workers(workers));
  CHECK(good.load() == fibers * rounds);
}

namespace {
// frame_misalignment() is 0 when its caller kept the ABI's 16-byte stack
// alignment (its frame address is the 16-aligned slot below its return
// address); a switch that resumed a fiber off by 8 makes it 8.
[[gnu::noinline]] std::uintptr_t frame_misalignment() {
  return reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) % 16;
}

// mix_across_switches() keeps eight values live across every yield, more
// than the caller-saved registers can hold, so the compiler keeps some in
// callee-saved ones: the switch must hand them back as they were.
[[gnu::noinline]] std::uint64_t mix_across_switches(std::uint64_t seed, int rounds, bool yield) {
  std::uint64_t a = seed, b = seed * 3, c = seed * 5, d = seed * 7;
  std::uint64_t e = seed ^ 0x9e3779b97f4a7c15ull, f = seed + 11, g = seed * 13, h = ~seed;
  for (int r = 0; r < rounds; ++r) {
    if (yield) goro::this_fiber::yield();
    a += h * 31; b ^= a >> 7; c += b * 17; d ^= c << 3;
    e += d * 19; f ^= e >> 5; g += f * 23; h ^= g << 9;
  }
  return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h;
}
}  // namespace

TEST_CASE("switches keep callee-saved registers and the stack's 16-byte alignment",
          "[runtime][switch]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = 16, rounds = 500;
  std::atomic<int> aligned{0}, intact{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int i = 0; i < fibers; ++i) {
          wg.go([&aligned, &intact, i] {
            if (frame_misalignment() == 0) aligned.fetch_add(1);  // a fresh frame
            const auto seed = static_cast<std::uint64_t>(i) + 1;
            if (mix_across_switches(seed, rounds, true) == mix_across_switches(seed, rounds, false))
              intact.fetch_add(1);
            if (frame_misalignment() == 0) aligned.fetch_add(1);  // a resumed one
          });
        }
        wg.wait();
      },
      with_workers(workers));
  CHECK(aligned.load() == 2 * fibers);
  CHECK(intact.load() == fibers);
}

TEST_CASE("fibers migrate between workers and keep their identity", "[runtime]") {
  std::atomic<int> moved{0};
  std::atomic<int> identity_lost{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int f = 0; f < 64; ++f) {
          wg.go([&moved, &identity_lost] {
            auto id = goro::this_fiber::id();
            auto thread = std::this_thread::get_id();
            for (int i = 0; i < 200; ++i) {
              goro::this_fiber::sleep_for(std::chrono::microseconds(50));
              if (goro::this_fiber::id() != id) identity_lost.fetch_add(1);
              if (std::this_thread::get_id() != thread) {
                moved.fetch_add(1);
                thread = std::this_thread::get_id();
              }
            }
          });
        }
        wg.wait();
      },
      with_workers(4));
  CHECK(identity_lost.load() == 0);
  // Migration is allowed, not required.
  SUCCEED("migrations observed: " << moved.load());
}

// The steal gate (detail/steal_gate.hpp) lets a worker take its runnext
// fiber with plain loads and stores: an owner section and a thief section must
// never overlap. Both sides update two plain counters in every section,
// which any overlap would tear (or lose an increment of), and TSan sees
// them as plain memory.
TEST_CASE("steal gate: owner and thief sections exclude each other", "[runtime][steal]") {
  goro::detail::AsymmetricFence::init();
  const char* env = std::getenv("GORO_MEMBARRIER");
  if (env != nullptr && std::string(env) == "0") CHECK_FALSE(goro::detail::AsymmetricFence::fast());
  goro::detail::StealGate gate;
  long shared_a = 0, shared_b = 0;  // guarded by the gate
  const long rounds = static_cast<long>(scaled(200'000, 100'000, 20'000));
  const long thief_rounds = static_cast<long>(scaled(2'000, 1'000, 200));
  std::atomic<bool> owner_done{false};
  std::atomic<long> thief_sections{0};
  std::thread thief([&] {
    while (!owner_done.load(std::memory_order_acquire)) {
      if (!gate.thief_try_enter()) continue;
      const long a = shared_a;
      shared_b = shared_b + 1;
      shared_a = a + 1;
      thief_sections.fetch_add(1, std::memory_order_relaxed);
      gate.thief_exit();
      // Steal like a scheduler does, now and then: a thief that re-entered
      // at once would keep the owner waiting most of the time (each entry is
      // a membarrier), and under a sanitizer the owner's rounds would crawl.
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  });
  long torn = 0;
  long owner_sections = 0;
  // Until both sides have had their share: a thief section always gets in
  // within one owner section of raising its flag.
  while (owner_sections < rounds || thief_sections.load(std::memory_order_relaxed) < thief_rounds) {
    goro::detail::StealGate::OwnerSection section(gate);
    if (shared_a != shared_b) ++torn;
    const long a = shared_a;
    shared_a = a + 1;
    shared_b = shared_b + 1;
    ++owner_sections;
  }
  owner_done.store(true, std::memory_order_release);
  thief.join();
  CHECK(torn == 0);
  CHECK(shared_a == owner_sections + thief_sections.load());
  CHECK(shared_b == owner_sections + thief_sections.load());
}

namespace {

using goro::detail::Fiber;
using goro::detail::LocalRunQueue;
using PopOrder = goro::detail::LocalRunQueue::PopOrder;

// Fibers for the run-queue tests: only their addresses and links are used.
std::vector<std::unique_ptr<Fiber>> make_fibers(std::size_t n) {
  std::vector<std::unique_ptr<Fiber>> fibers;
  for (std::size_t i = 0; i < n; ++i) fibers.push_back(std::make_unique<Fiber>(goro::detail::Stack{}, i));
  return fibers;
}

}  // namespace

TEST_CASE("run queue: the newest never-run spawn leaves from the tail, the rest from the head",
          "[runtime][runqueue]") {
  auto f = make_fibers(6);
  goro::detail::GlobalRunQueue overflow;
  LocalRunQueue q;
  q.push(f[0].get(), overflow);                 // woken: FIFO
  q.push(f[1].get(), overflow, /*lifo=*/true);  // spawned, never ran
  q.push(f[2].get(), overflow, /*lifo=*/true);
  q.push(f[3].get(), overflow);
  q.push(f[4].get(), overflow, /*lifo=*/true);
  CHECK(q.pop(PopOrder::newest_spawn_first) == f[4].get());
  // The tail is now a woken fiber: the head goes first.
  CHECK(q.pop(PopOrder::newest_spawn_first) == f[0].get());
  q.push(f[5].get(), overflow, /*lifo=*/true);
  // started_head_first serves a head that ran before; f[1] never ran.
  CHECK(q.pop(PopOrder::started_head_first) == f[5].get());
  CHECK(q.pop(PopOrder::oldest_first) == f[1].get());
  // A thief takes the oldest half.
  LocalRunQueue thief;
  CHECK(q.steal_into(thief) == f[2].get());
  CHECK(thief.empty());
  CHECK(q.pop(PopOrder::newest_spawn_first) == f[3].get());
  CHECK(q.pop(PopOrder::newest_spawn_first) == nullptr);
  CHECK(overflow.empty());
}

TEST_CASE("run queue: a full ring moves its oldest half to the global queue", "[runtime][runqueue]") {
  const std::size_t n = LocalRunQueue::kCapacity + 1;
  auto f = make_fibers(n);
  goro::detail::GlobalRunQueue overflow;
  LocalRunQueue q;
  for (std::size_t i = 0; i < n; ++i) q.push(f[i].get(), overflow, /*lifo=*/true);
  CHECK(q.size() == LocalRunQueue::kCapacity / 2);
  CHECK(overflow.size() == LocalRunQueue::kCapacity / 2 + 1);
  CHECK(overflow.pop() == f[0].get());  // the oldest went first
  // The ring keeps the newer half; the newest is not in it (it went along).
  CHECK(q.pop(PopOrder::newest_spawn_first) == f[n - 2].get());
  CHECK(q.pop(PopOrder::oldest_first) == f[LocalRunQueue::kCapacity / 2].get());
}

TEST_CASE("global run queue: fibers leave in the order they came, across chunks and batch sizes",
          "[runtime][runqueue]") {
  const std::size_t n = 1000;
  auto f = make_fibers(n);
  goro::detail::GlobalRunQueue q;
  std::size_t pushed = 0;
  for (std::size_t batch = 1; pushed < n; batch = batch * 3 % 257 + 1) {  // 1..257, chunk is 128
    const std::size_t k = std::min(batch, n - pushed);
    std::vector<Fiber*> fibers;
    for (std::size_t i = 0; i < k; ++i) fibers.push_back(f[pushed + i].get());
    if (k == 1) q.push(fibers[0]); else q.push_all(fibers.data(), k);
    pushed += k;
  }
  CHECK(q.size() == n);
  std::vector<Fiber*> out(n);
  std::size_t popped = 0;
  for (std::size_t max = 1; popped < n; max = max * 5 % 301 + 1) {
    const std::size_t got = q.pop_some(out.data() + popped, max);
    REQUIRE(got == std::min(max, n - popped));
    popped += got;
    CHECK(q.size() == n - popped);
  }
  std::size_t out_of_order = 0;
  for (std::size_t i = 0; i < n; ++i) out_of_order += out[i] != f[i].get();
  CHECK(out_of_order == 0);
  CHECK(q.pop() == nullptr);
  CHECK(q.pop_some(out.data(), 10) == 0);
  q.push(f[7].get());  // an emptied queue takes fibers again
  CHECK(q.pop() == f[7].get());
  CHECK(q.empty());
}

TEST_CASE("global run queue: with no memory for a chunk, fibers wait in order and none is lost",
          "[runtime][runqueue]") {
  if (!kCountsAllocations) return;  // the sanitizers' allocators cannot be made to fail
  auto f = make_fibers(8);
  goro::detail::GlobalRunQueue q;
  Fiber* batch[3] = {f[1].get(), f[2].get(), f[3].get()};
  t_fail_allocations = true;
  q.push(f[0].get());
  q.push_all(batch, 3);
  t_fail_allocations = false;
  q.push(f[4].get());  // into a chunk, after the spilled ones
  CHECK(q.size() == 5);
  Fiber* out[8] = {};
  REQUIRE(q.pop_some(out, 8) == 5);
  for (std::size_t i = 0; i < 5; ++i) CHECK(out[i] == f[i].get());
  CHECK(q.empty());
}

TEST_CASE("fiber block pool: out of memory, refill hands out what the pool holds, then throws; nothing is lost",
          "[runtime][blocks]") {
  if (!kCountsAllocations) return;  // the sanitizers' allocators cannot be made to fail
  using goro::detail::FiberBlockCache;
  using goro::detail::FiberBlockPool;
  FiberBlockPool& pool = FiberBlockPool::instance();
  constexpr std::size_t kBatch = 128;
  constexpr std::size_t kCaches = 100;  // more than the pool keeps (kRetain) between runtimes
  static_assert(kCaches * kBatch > FiberBlockPool::kRetain);
  // Everything the failing stretches use is allocated before them.
  std::vector<FiberBlockCache> caches(kCaches);
  std::vector<void*> taken, again;
  taken.reserve(kCaches * kBatch);
  again.reserve(kCaches * kBatch);
  struct FailingAllocations {
    FailingAllocations() { t_fail_allocations = true; }
    ~FailingAllocations() { t_fail_allocations = false; }
  };
  auto collect = [](FiberBlockCache& cache, std::vector<void*>& into) {
    into.insert(into.end(), cache.begin(), cache.end());
  };
  // Drain the pool: every refill that succeeds hands out pooled blocks, and
  // the first one the pool cannot serve throws, as does acquire().
  std::size_t filled = 0;
  bool refill_threw = false, acquire_threw = false;
  {
    FailingAllocations failing;
    for (; filled < kCaches && !refill_threw; ++filled) {
      try {
        pool.refill(caches[filled], kBatch);
        collect(caches[filled], taken);
      } catch (const std::bad_alloc&) {
        refill_threw = true;
      }
    }
    try {
      (void)pool.acquire();
    } catch (const std::bad_alloc&) {
      acquire_threw = true;
    }
  }
  CHECK(refill_threw);
  CHECK(acquire_threw);
  CHECK(std::set<void*>(taken.begin(), taken.end()).size() == taken.size());  // none handed out twice
  // Give every block back, then take as many again with allocation still
  // failing: the pool serves them all, and they are the same blocks.
  for (auto& cache : caches) pool.give_back(cache, cache.size());
  {
    FailingAllocations failing;
    for (std::size_t served = 0; served < taken.size(); served += kBatch) {
      FiberBlockCache& cache = caches[served / kBatch];
      pool.refill(cache, std::min(kBatch, taken.size() - served));
      collect(cache, again);
    }
  }
  CHECK(std::set<void*>(again.begin(), again.end()) == std::set<void*>(taken.begin(), taken.end()));
  for (auto& cache : caches) pool.give_back(cache, cache.size());
}

// Found by running the suite in random order: a refill that took the
// pool's last blocks went on to make the rest, and when growing the pool's
// array for them failed, threw std::bad_alloc with the blocks already in
// the cache (a spawn failed while its worker held blocks). Allocations are
// counted even when they fail, so the test also sees an attempt that
// happens to succeed.
TEST_CASE("fiber block pool: out of memory, a refill the pool can serve in part hands out that part, allocating nothing",
          "[runtime][blocks]") {
  if (!kCountsAllocations) return;  // the sanitizers' allocators cannot be counted or made to fail
  using goro::detail::FiberBlockCache;
  using goro::detail::FiberBlockPool;
  FiberBlockPool& pool = FiberBlockPool::instance();
  constexpr std::size_t kPooled = 5;
  std::vector<void*> pooled;
  pooled.reserve(kPooled);
  for (std::size_t i = 0; i < kPooled; ++i) pooled.push_back(pool.acquire());
  // Empty the pool into caches (each refill hands out pooled blocks while
  // there are any), then give it back exactly kPooled blocks.
  std::vector<FiberBlockCache> drained;
  drained.reserve(1'000);
  for (;;) {
    REQUIRE(drained.size() < drained.capacity());
    FiberBlockCache& c = drained.emplace_back();
    const std::uint64_t before = g_allocations.load();
    pool.refill(c, FiberBlockCache::kCapacity - 1);
    if (g_allocations.load() != before) break;  // the pool was empty: this refill made new blocks
  }
  for (void* block : pooled) pool.release(block);
  FiberBlockCache cache;
  const std::uint64_t before = g_allocations.load();
  t_fail_allocations = true;
  bool threw = false;
  try {
    pool.refill(cache, kPooled + 1);
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  t_fail_allocations = false;
  CHECK_FALSE(threw);
  CHECK(g_allocations.load() == before);
  CHECK(std::set<void*>(cache.begin(), cache.end()) == std::set<void*>(pooled.begin(), pooled.end()));
  pool.give_back(cache, cache.size());
  for (auto& c : drained) pool.give_back(c, c.size());
}

TEST_CASE("global run queue: producers and consumers on several threads take each fiber once",
          "[runtime][runqueue]") {
  const std::size_t per_producer = scaled(200'000, 100'000, 20'000);
  constexpr std::size_t kProducers = 2;
  auto f = make_fibers(per_producer * kProducers);
  std::vector<std::atomic<int>> taken(f.size());
  goro::detail::GlobalRunQueue q;
  std::atomic<std::size_t> consumed{0};
  auto consume = [&](std::size_t max) {
    std::vector<Fiber*> out(max);
    while (consumed.load() < f.size()) {
      const std::size_t got = q.pop_some(out.data(), max);
      for (std::size_t i = 0; i < got; ++i) taken[out[i]->id].fetch_add(1, std::memory_order_relaxed);
      consumed.fetch_add(got);
    }
  };
  std::vector<std::thread> threads;
  for (std::size_t p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      std::vector<Fiber*> batch;
      for (std::size_t i = 0; i < per_producer; ++i) {
        batch.push_back(f[p * per_producer + i].get());
        if (batch.size() == 1 + i % 150) {
          q.push_all(batch.data(), batch.size());
          batch.clear();
        }
      }
      q.push_all(batch.data(), batch.size());
    });
  }
  threads.emplace_back(consume, 1);
  threads.emplace_back(consume, 100);
  for (auto& t : threads) t.join();
  std::size_t wrong = 0;
  for (auto& t : taken) wrong += t.load() != 1;
  CHECK(wrong == 0);
  CHECK(q.empty());
}

TEST_CASE("run queue: owner pops at both ends while thieves steal; each fiber is taken once",
          "[runtime][runqueue]") {
  const std::size_t n = scaled(400'000, 200'000, 40'000);
  auto f = make_fibers(n);
  std::vector<std::atomic<int>> taken(n);
  goro::detail::GlobalRunQueue overflow;
  LocalRunQueue q;
  std::atomic<bool> done{false};
  auto take = [&](Fiber* fiber) { taken[fiber->id].fetch_add(1, std::memory_order_relaxed); };
  std::thread thief([&] {
    LocalRunQueue mine;
    while (!done.load(std::memory_order_acquire)) {
      if (Fiber* got = q.steal_into(mine)) {
        take(got);
        while (Fiber* more = mine.pop(PopOrder::oldest_first)) take(more);
      }
    }
  });
  // The ring stays short, so a thief often copies the very slot the owner
  // pops from the tail and then refills with a push.
  std::uint32_t rng = 12345;
  for (std::size_t i = 0; i < n; ++i) {
    rng = rng * 1664525u + 1013904223u;
    q.push(f[i].get(), overflow, (rng >> 16) % 8 != 0);
    if ((rng >> 20) % 4 != 0) {  // pop three in four, mostly from the tail
      const PopOrder order = (rng >> 24) % 4 != 0 ? PopOrder::newest_spawn_first : PopOrder::oldest_first;
      if (Fiber* got = q.pop(order)) take(got);
    }
  }
  while (Fiber* got = q.pop(PopOrder::newest_spawn_first)) take(got);
  done.store(true, std::memory_order_release);
  thief.join();
  while (Fiber* got = overflow.pop()) take(got);
  std::size_t wrong = 0;
  for (auto& t : taken) wrong += t.load() != 1;
  CHECK(wrong == 0);
}

namespace {

// fork_join_tree(): each fiber of a `fanout`-ary tree of `depth` levels below
// it spawns its children and sums their results; `alive` counts fibers that
// started and have not finished, and `peak` its maximum.
std::int64_t fork_join_tree(int depth, int fanout, std::atomic<int>& alive, std::atomic<int>& peak) {
  const int now = alive.fetch_add(1) + 1;
  for (int seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
  }
  std::int64_t sum = 1;
  if (depth > 0) {
    goro::Channel<std::int64_t> results(static_cast<std::size_t>(fanout));
    for (int i = 0; i < fanout; ++i) {
      goro::go([=, &alive, &peak] { results.send(fork_join_tree(depth - 1, fanout, alive, peak)); });
    }
    for (int i = 0; i < fanout; ++i) sum += results.recv().value();
  }
  alive.fetch_sub(1);
  return sum;
}

}  // namespace

TEST_CASE("a fork-join tree runs depth-first: few of its fibers are alive at once", "[runtime][runqueue]") {
  // 4,681 fibers; breadth-first, the 512 of the third level would all wait
  // at once for their children.
  const int depth = 4, fanout = 8;
  std::atomic<int> alive{0}, peak{0};
  const std::int64_t sum =
      goro::run([&] { return fork_join_tree(depth, fanout, alive, peak); }, with_workers(1));
  CHECK(sum == (1 + 8 + 64 + 512 + 4096));
  CHECK(peak.load() <= 2 * (depth + 1));
}

TEST_CASE("fork-join trees finish with every answer on any number of workers", "[runtime][runqueue]") {
  // Newest-spawn-first on each worker, thieves taking the oldest: every
  // fiber runs exactly once whatever the interleaving.
  const std::size_t workers = GORO_WORKERS();
  const int depth = goro_test::kTsan ? 3 : 5, fanout = 8;
  std::int64_t expected = 0;
  for (std::int64_t level = 1, d = 0; d <= depth; ++d, level *= fanout) expected += level;
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> alive{0}, peak{0};
    const std::int64_t sum =
        goro::run([&] { return fork_join_tree(depth, fanout, alive, peak); }, with_workers(workers));
    CHECK(sum == expected);
    CHECK(alive.load() == 0);
  }
}

TEST_CASE("an old spawn is not starved by newer spawns that keep the worker busy", "[runtime][runqueue]") {
  // One worker: `old` waits at the bottom of the ring while main keeps
  // forking pairs of children above it, so only the ring's stalled-head
  // turn can start it.
  const long give_up = 1'000'000;
  const long rounds = goro::run(
      [&] {
        std::atomic<bool> started{false};
        goro::go([&] { started = true; });
        long round = 0;
        for (; !started.load() && round < give_up; ++round) {
          goro::WaitGroup wg;
          wg.go([] {});
          wg.go([] {});
          wg.wait();
        }
        return round;
      },
      with_workers(1));
  CHECK(rounds < give_up);
}
