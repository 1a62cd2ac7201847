// Thread-affine state across switches and migrations, without any special
// scheduling mode: with several workers, fibers that block are resumed on
// whichever worker picks them up, so these checks see many migrations.
//   - errno belongs to the fiber: preserved across blocking calls;
//   - std::uncaught_exceptions() is per fiber: stable in a destructor that
//     parks during unwinding, 0 in the fibers that run meanwhile;
//   - throw/catch with yields and parks inside catch blocks: `throw;` and
//     std::current_exception() name this fiber's exception, across about a
//     million switches.
#include <atomic>
#include <cerrno>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>

#include "fiber_failures.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using goro_test::Failures;
using goro_test::scaled;
using goro_test::with_workers;

namespace {

// glibc declares __errno_location() and pthread_self() `const`, so within
// one function the compiler computes &errno (and the thread id) once and
// reuses it after a call that migrated the fiber to another thread: the
// code then reads the *old* thread's errno. goro saves errno per fiber at
// every switch, but it cannot reach a stale address cached in user code.
// Hence these out-of-line accessors (the hazard itself is shown by the
// [!mayfail] test at the end, and documented in docs/misuse.md).
__attribute__((noinline)) void set_errno(int v) { errno = v; }
__attribute__((noinline)) int get_errno() { return errno; }
__attribute__((noinline)) std::thread::id thread_now() { return std::this_thread::get_id(); }

// Counts the times a fiber was seen on another thread than before.
struct MigrationCounter {
  std::atomic<std::uint64_t> migrations{0};
  void note(std::thread::id& last) {
    const std::thread::id now = thread_now();
    if (now != last) {
      migrations.fetch_add(1, std::memory_order_relaxed);
      last = now;
    }
  }
};

struct FiberError : std::runtime_error {
  FiberError(int fiber, int round)
      : std::runtime_error("fiber " + std::to_string(fiber) + " round " + std::to_string(round)),
        fiber(fiber),
        round(round) {}
  int fiber, round;
};

}  // namespace

TEST_CASE("errno is preserved across blocking calls on fibers", "[migration][errno]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = 64;
  const int rounds = static_cast<int>(scaled(300, 100, 100));
  Failures fails;
  MigrationCounter moved;
  goro::run(
      [&] {
        goro::Channel<int> ping(8);
        goro::Mutex mu;
        goro::WaitGroup wg;
        // A feeder keeps ping supplied so receivers park and wake.
        goro::go([ping] {
          for (;;) ping.send(1);
        });
        for (int f = 0; f < fibers; ++f) {
          wg.go([&, f] {
            std::thread::id last = thread_now();
            for (int r = 0; r < rounds; ++r) {
              const int mine = 1000 + f * 7 + r % 5;
              set_errno(mine);
              switch (r % 5) {
                case 0:
                  goro::this_fiber::yield();
                  break;
                case 1:
                  goro::this_fiber::sleep_for(20us);
                  break;
                case 2:
                  ping.recv();
                  break;
                case 3: {
                  std::lock_guard lock(mu);
                  goro::this_fiber::yield();  // others contend and park on mu
                  break;
                }
                default:
                  goro::select(goro::recv(ping), goro::timeout(50us));
                  break;
              }
              moved.note(last);
              if (const int now = get_errno(); now != mine) {
                fails.add("fiber " + std::to_string(f) + ": errno " + std::to_string(now) + " != " +
                          std::to_string(mine) + " after op " + std::to_string(r % 5));
              }
            }
          });
        }
        wg.wait();
      },
      with_workers(workers));  // the feeder is unwound here
  REQUIRE_NO_FAILURES(fails);
  SUCCEED("workers " << workers << ", migrations observed: " << moved.migrations.load());
}

TEST_CASE("std::uncaught_exceptions() is per fiber, stable across parks in a destructor",
          "[migration][exceptions]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = 32;
  const int rounds = static_cast<int>(scaled(200, 60, 60));
  Failures fails;
  goro::run(
      [&] {
        goro::WaitGroup wg;
        // Fibers that switch a lot outside any unwinding: they must see 0.
        std::atomic<bool> stop{false};
        goro::WaitGroup bystanders;
        for (int b = 0; b < 4; ++b) {
          bystanders.go([&] {
            while (!stop.load()) {
              if (std::uncaught_exceptions() != 0) fails.add("bystander sees an uncaught exception");
              goro::this_fiber::yield();
            }
          });
        }
        for (int f = 0; f < fibers; ++f) {
          wg.go([&, f] {
            struct ParksWhileUnwinding {
              Failures& fails;
              int f;
              ~ParksWhileUnwinding() {
                const int during = std::uncaught_exceptions();
                if (during != 1) fails.add("fiber " + std::to_string(f) + ": uncaught " + std::to_string(during));
                for (int i = 0; i < 3; ++i) {
                  goro::this_fiber::yield();
                  goro::this_fiber::sleep_for(10us);
                  if (std::uncaught_exceptions() != during) {
                    fails.add("fiber " + std::to_string(f) + ": uncaught_exceptions changed across a switch");
                  }
                }
              }
            };
            for (int r = 0; r < rounds; ++r) {
              try {
                ParksWhileUnwinding guard{fails, f};
                throw FiberError(f, r);
              } catch (const FiberError& e) {
                if (e.fiber != f || e.round != r) fails.add("caught another fiber's exception");
              }
              if (std::uncaught_exceptions() != 0) fails.add("uncaught_exceptions not 0 after catch");
            }
          });
        }
        wg.wait();
        stop = true;
        bystanders.wait();
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
}

TEST_CASE("throw/catch with yields inside catch blocks across ~1,000,000 switches",
          "[migration][exceptions]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = 100;
  // About 5 switches per round: 100 fibers * 2,000 rounds * 5 = 1,000,000.
  const int rounds = static_cast<int>(scaled(2000, 200, 200));
  Failures fails;
  std::atomic<std::uint64_t> switches{0};
  MigrationCounter moved;
  goro::run(
      [&] {
        goro::Channel<int> tokens(fibers);
        for (int i = 0; i < fibers; ++i) tokens.send(i);
        goro::WaitGroup wg;
        for (int f = 0; f < fibers; ++f) {
          wg.go([&, f] {
            std::thread::id last = thread_now();
            std::uint64_t local_switches = 0;
            for (int r = 0; r < rounds; ++r) {
              try {
                throw FiberError(f, r);
              } catch (const FiberError& outer) {
                goro::this_fiber::yield();  // others throw and catch meanwhile
                ++local_switches;
                std::exception_ptr held = std::current_exception();
                // A nested exception, caught after a park, inside the outer handler.
                try {
                  throw std::logic_error("inner " + std::to_string(f));
                } catch (const std::logic_error& inner) {
                  int t = *tokens.recv();  // may park
                  tokens.send(t);
                  goro::this_fiber::yield();
                  local_switches += 2;
                  if (std::string(inner.what()) != "inner " + std::to_string(f)) fails.add("inner exception lost");
                }
                goro::this_fiber::yield();
                ++local_switches;
                moved.note(last);
                // `throw;` still rethrows the outer exception of this fiber.
                try {
                  throw;
                } catch (const FiberError& again) {
                  if (&again != &outer || again.fiber != f || again.round != r)
                    fails.add("rethrow gave another exception, fiber " + std::to_string(f));
                }
                if (std::current_exception() != held) fails.add("current_exception changed");
                goro::this_fiber::yield();
                ++local_switches;
              }
              if (std::current_exception()) fails.add("current_exception outside a handler");
            }
            switches.fetch_add(local_switches);
          });
        }
        wg.wait();
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
  CHECK(switches.load() == static_cast<std::uint64_t>(fibers) * static_cast<std::uint64_t>(rounds) * 5u);
  SUCCEED("workers " << workers << ", switches " << switches.load() << ", migrations observed "
                     << moved.migrations.load());
}

// The hazard described at the top: plain `errno` read in the same function
// after a blocking call that migrated the fiber. At -O2 the compiler reuses
// &errno computed before the call, so it may read another thread's errno.
// goro cannot prevent that; the test documents it and may fail (it passes
// with one worker, where nothing migrates).
TEST_CASE("plain errno in the same function across a migrating call (known hazard)",
          "[migration][errno][!mayfail]") {
  if (goro_test::kTsan) {
    // Reading another thread's errno is a real data race, and TSan says so.
    SUCCEED("skipped under TSan: the stale read is a data race on another thread's errno");
    return;
  }
  std::atomic<int> stale{0};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int f = 0; f < 64; ++f) {
          wg.go([&stale, f] {
            for (int r = 0; r < 100; ++r) {
              errno = 5000 + f;
              goro::this_fiber::sleep_for(10us);
              if (errno != 5000 + f) stale.fetch_add(1);
            }
          });
        }
        wg.wait();
      },
      with_workers(4));
  INFO("reads of errno that saw another fiber's value: " << stale.load());
  CHECK(stale.load() == 0);
}
