// Misuse that other test files do not already cover; docs/misuse.md maps
// every misuse to the test that backs it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "child_process.hpp"
#include "test_support.hpp"

using goro_test::run_in_child;

using namespace std::chrono_literals;
using goro_test::with_workers;

namespace {


constexpr bool kForkTestsRun = !goro_test::kTsan && !goro_test::kAsan;

// expect_abort() runs `body` in a forked child, requires that the child
// ended by SIGABRT, and returns what it printed. Under a sanitizer, which
// these children would trip, it records the skip and returns nothing.
template <class F>
std::optional<std::string> expect_abort(F body) {
  if (!kForkTestsRun) {
    SUCCEED("skipped under sanitizers (forks a child that aborts)");
    return std::nullopt;
  }
  auto [out, status] = run_in_child(std::move(body));
  INFO("child output: " << out);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGABRT);
  return out;
}

}  // namespace

// --- Swallowing the unwind exception ---------------------------------------------
TEST_CASE("misuse: a fiber that swallows the unwind once and then returns lets run() return",
          "[misuse][unwind]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> swallowed{0}, rethrown_at_once{0}, destructors{0};
  goro::run(
      [&] {
        goro::Channel<int> never;
        goro::go([&, never] {
          struct Counted {
            std::atomic<int>& n;
            ~Counted() { n.fetch_add(1); }
          } counted{destructors};
          try {
            never.recv();  // blocked when main returns: throws the unwind
          } catch (...) {  // BUG in user code: swallows it
            swallowed.fetch_add(1);
          }
          // Every later blocking call throws again at once: nothing blocks a
          // stopping runtime.
          try {
            goro::this_fiber::sleep_for(1h);
          } catch (...) {
            rethrown_at_once.fetch_add(1);
          }
        });
        goro::this_fiber::sleep_for(1ms);
      },
      with_workers(workers));
  CHECK(swallowed.load() == 1);
  CHECK(rethrown_at_once.load() == 1);
  CHECK(destructors.load() == 1);
}

TEST_CASE("misuse: a fiber that swallows the unwind in a loop keeps run() from returning",
          "[misuse][unwind]") {
  if (!kForkTestsRun) {
    SUCCEED("skipped under sanitizers (forks a child that spins until an alarm kills it)");
    return;
  }
  // Documented behaviour (docs/pitfalls.md): the fiber spins, run() never
  // returns. The child proves it by being killed by its alarm, not exiting.
  auto [out, status] = run_in_child([] {
    ::alarm(1);
    goro::run(
        [] {
          goro::Channel<int> jobs;
          goro::go([jobs] {
            for (;;) {
              try {
                jobs.recv();
              } catch (...) {  // BUG: swallows goro's unwind
              }
            }
          });
          goro::this_fiber::sleep_for(1ms);
        },
        with_workers(2));
    std::puts("run returned");
  });
  INFO("child output: " << out);
  CHECK(out.find("run returned") == std::string::npos);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGALRM);
}

// --- Mutex misuse where the call is noexcept -----------------------------------------
TEST_CASE("misuse: unlock of an unlocked Mutex from a lock_guard destructor terminates naming it",
          "[misuse][mutex]") {
  const auto out = expect_abort([] {
    goro::Mutex mu;
    std::lock_guard guard(mu);
    mu.unlock();  // the guard's destructor unlocks again: noexcept, so terminate
  });
  if (!out) return;
  INFO("child output: " << *out);
  CHECK(out->find("goro::Mutex: unlock of unlocked mutex") != std::string::npos);
}

TEST_CASE("misuse: a destructor that blocks for good during shutdown unwinding ends the program, naming it",
          "[misuse][runtime]") {
  const auto out = expect_abort([] {
    goro::run(
        [] {
          goro::WaitGroup parked;
          parked.add(1);
          goro::go([&parked] {
            struct SendsOnExit {
              goro::Channel<int> ch;
              ~SendsOnExit() { ch.send(1); }  // nobody receives: blocks
            } guard;
            goro::Channel<int> never;
            parked.done();
            (void)never.recv();  // unwound when main returns; ~SendsOnExit then blocks
          });
          parked.wait();
        },
        with_workers(2));
  });
  if (!out) return;
  INFO("child output: " << *out);
  CHECK(out->find("blocked (chan send) in a destructor") != std::string::npos);
  CHECK(out->find("nothing can wake it") != std::string::npos);
}

// The same for a destructor that blocked before main returned, while its
// fiber's own exception propagated: the unwinding leaves that wait alone
// while anything can move, then ends the program naming it.
TEST_CASE("misuse: a destructor blocked for good before main returned ends the program, naming it",
          "[misuse][runtime]") {
  const auto out = expect_abort([] {
    goro::run(
        [] {
          goro::WaitGroup blocking;
          blocking.add(1);
          goro::go([&blocking] {
            struct ReceivesOnExit {
              goro::WaitGroup& blocking;
              goro::Channel<int> ch;
              ~ReceivesOnExit() {
                blocking.done();
                (void)ch.recv();  // nobody sends: blocks for good
              }
            };
            try {
              ReceivesOnExit guard{blocking, {}};
              throw std::runtime_error("the fiber's own error");
            } catch (const std::runtime_error&) {
              std::fprintf(stderr, "destructor finished\n");
            }
          });
          blocking.wait();
          goro::this_fiber::sleep_for(2ms);  // parked in the destructor (almost always)
        },
        with_workers(2));
  });
  if (!out) return;
  INFO("child output: " << *out);
  CHECK(out->find("blocked (chan receive) in a destructor") != std::string::npos);
  CHECK(out->find("nothing can wake it") != std::string::npos);
  CHECK(out->find("destructor finished") == std::string::npos);
}

// A destructor blocked at its scope's normal exit, with no exception in
// flight, cannot be told from any other wait: the unwinding claims it, and
// the unwind exception cannot leave the destructor. The program must end
// naming the fiber and its wait, not with a bare terminate.
TEST_CASE("misuse: a destructor blocked at a normal scope exit when main returns ends the program, naming it",
          "[misuse][runtime]") {
  const auto out = expect_abort([] {
    goro::run(
        [] {
          auto joined = std::make_shared<goro::WaitGroup>();
          joined->add(1);
          goro::WaitGroup blocking;
          blocking.add(1);
          goro::go([joined, &blocking] {
            struct JoinsOnExit {
              goro::WaitGroup& joined;
              goro::WaitGroup& blocking;
              ~JoinsOnExit() {
                blocking.done();
                joined.wait();  // nobody calls done(): blocked when main returns
              }
            };
            { JoinsOnExit guard{*joined, blocking}; }
            std::fprintf(stderr, "scope left\n");
          });
          blocking.wait();
          goro::this_fiber::sleep_for(2ms);  // parked in the destructor (almost always)
        },
        with_workers(2));
  });
  if (!out) return;
  INFO("child output: " << *out);
  CHECK(out->find("was blocked (sync.WaitGroup.Wait) in a destructor, or another function that cannot throw") !=
        std::string::npos);
  CHECK(out->find("scope left") == std::string::npos);
}

// The stuck check must not fire while shielded waits still make progress,
// and must fire once they stop: here one destructor's wait completes (a
// sleep), and another's never can (a receive nobody sends to). The program
// ends naming the second one only, after the first destructor finished.
TEST_CASE("misuse: after the destructors that can finish did, one blocked for good ends the program",
          "[misuse][runtime]") {
  const auto out = expect_abort([] {
    goro::run(
        [] {
          goro::WaitGroup parked;
          parked.add(2);
          goro::go([&parked] {
            struct SleepsOnExit {
              ~SleepsOnExit() {
                goro::this_fiber::sleep_for(std::chrono::milliseconds(20));
                std::fprintf(stderr, "sleeper finished\n");
              }
            } guard;
            goro::Channel<int> never;
            parked.done();
            (void)never.recv();
          });
          goro::go([&parked] {
            struct ReceivesOnExit {
              goro::Channel<int> ch;
              ~ReceivesOnExit() { (void)ch.recv(); }  // nobody sends: blocks for good
            } guard;
            goro::Channel<int> never;
            parked.done();
            (void)never.recv();
          });
          parked.wait();
        },
        with_workers(2));
  });
  if (!out) return;
  INFO("child output: " << *out);
  const auto finished = out->find("sleeper finished");
  const auto stuck = out->find("blocked (chan receive) in a destructor");
  REQUIRE(finished != std::string::npos);
  REQUIRE(stuck != std::string::npos);
  CHECK(finished < stuck);
  CHECK(out->find("nothing can wake it") != std::string::npos);
  CHECK(out->find("(sleep)") == std::string::npos);
}

// --- Self-deadlock ----------------------------------------------------------------------
TEST_CASE("misuse: locking a Mutex twice from one fiber is reported as a deadlock", "[misuse][deadlock]") {
  try {
    goro::run(
        [] {
          goro::Mutex mu;
          mu.lock();
          mu.lock();  // Go: fatal error: all goroutines are asleep - deadlock!
        },
        with_workers(2));
    FAIL("expected goro::deadlock_error");
  } catch (const goro::deadlock_error& e) {
    const std::string what = e.what();
    CHECK(what.rfind("all fibers are asleep - deadlock!", 0) == 0);
    CHECK(what.find("fiber 1 (main)") != std::string::npos);
  }
}

TEST_CASE("misuse: receiving from a channel nobody will send on, from every fiber, is a deadlock",
          "[misuse][deadlock]") {
  try {
    goro::run(
        [] {
          goro::Channel<int> a, b;
          goro::go([a, b] { b.send(*a.recv()); });  // waits for main
          b.recv();                                  // waits for the fiber
        },
        with_workers(4));
    FAIL("expected goro::deadlock_error");
  } catch (const goro::deadlock_error& e) {
    const std::string what = e.what();
    CHECK(what.find("[chan receive]") != std::string::npos);
    CHECK(what.find("fiber 2") != std::string::npos);
  }
}

// --- Timers ---------------------------------------------------------------------------
TEST_CASE("misuse: a Ticker with a non-positive period throws std::invalid_argument", "[misuse][time]") {
  CHECK_THROWS_AS(goro::Ticker(0ms), std::invalid_argument);
  CHECK_THROWS_WITH(goro::Ticker(-5ms), Catch::Contains("goro::Ticker"));
}

TEST_CASE("misuse: a moved-from Timer or Ticker throws std::logic_error naming it; stop() is harmless",
          "[misuse][time]") {
  goro::Timer timer(1h);
  goro::Timer kept = std::move(timer);
  CHECK_THROWS_AS(timer.channel(), std::logic_error);
  CHECK_THROWS_WITH(timer.channel(), "goro::Timer::channel() on a moved-from Timer");
  CHECK_THROWS_WITH(timer.reset(1ms), "goro::Timer::reset() on a moved-from Timer");
  CHECK_FALSE(timer.stop());  // nothing left to stop
  CHECK(kept.stop());         // the timer moved on, still armed, and stops
  timer = goro::Timer(1h);    // a moved-from Timer can be assigned a new one
  CHECK(timer.stop());

  goro::Ticker ticker(1h);
  goro::Ticker kept_ticker = std::move(ticker);
  CHECK_THROWS_WITH(ticker.channel(), "goro::Ticker::channel() on a moved-from Ticker");
  CHECK_THROWS_WITH(ticker.reset(1ms), "goro::Ticker::reset() on a moved-from Ticker");
  ticker.stop();  // does nothing
  kept_ticker.stop();
  CHECK_FALSE(kept_ticker.channel().try_recv());
}

// --- Exceptions that escape a fiber ------------------------------------------------------
TEST_CASE("misuse: an exception escaping a fiber stops the runtime and reaches run()'s caller",
          "[misuse][runtime]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<bool> blocked_fiber_unwound{false};
  CHECK_THROWS_WITH(goro::run(
                        [&] {
                          goro::go([] { throw std::runtime_error("escaped from fiber"); });
                          goro::go([&] {
                            struct Flag {
                              std::atomic<bool>& f;
                              ~Flag() { f = true; }
                            } flag{blocked_fiber_unwound};
                            goro::Channel<int> never;
                            never.recv();
                          });
                          goro::Channel<int> never;
                          never.recv();  // main blocks for good: the failure must still stop things
                        },
                        with_workers(workers)),
                    "escaped from fiber");
  CHECK(blocked_fiber_unwound.load());
}

// --- Channels ---------------------------------------------------------------------------
TEST_CASE("misuse: every kind of send on a closed channel throws; the value stays with the caller",
          "[misuse][channel]") {
  goro::run(
      [] {
        goro::Channel<std::unique_ptr<int>> c(1);
        c.close();
        auto v = std::make_unique<int>(7);
        CHECK_THROWS_AS(c.send(std::make_unique<int>(1)), goro::channel_closed);
        CHECK_THROWS_AS(c.try_send(std::move(v)), goro::channel_closed);
        REQUIRE(v);  // try_send did not take it
        CHECK_THROWS_AS(goro::select(goro::send(c, std::move(v)), goro::default_case()), goro::channel_closed);
        REQUIRE(v);  // nor did select
        CHECK(*v == 7);
        CHECK_THROWS_WITH(c.close(), Catch::Contains("close of closed channel"));
        goro::SendChannel<std::unique_ptr<int>> send_only = c;
        CHECK_THROWS_AS(send_only.close(), goro::channel_closed);
        goro::Channel<int> nil = nullptr;
        CHECK_THROWS_WITH(nil.close(), Catch::Contains("close of nil channel"));
      },
      with_workers(1));
}
