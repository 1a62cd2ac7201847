// Go conformance: the programs of Go's test/chan directory (doubleselect,
// fifo, goroutines, nonblock, select, select2 .. select7, sieve2, zerosize,
// powser) and test/ken/chan.go, rewritten in goro's own code. Each runs with
// 1, 2, 4 and 8 workers. (sieve1 and Go's runtime channel tests live in
// channel_test.cpp and select_test.cpp.)
//
// Checks made on helper fibers go through goro_test::Failures (Catch2's
// macros are not thread-safe); the test body reports them.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <optional>
#include <queue>
#include <string>
#include <variant>
#include <vector>

#include "fiber_failures.hpp"
#include "test_support.hpp"

using namespace std::chrono_literals;
using goro_test::Failures;
using goro_test::scaled;
using goro_test::with_workers;

#include "allocation_counter.hpp"  // g_allocations, kCountsAllocations

namespace {

// A hang guard, not a timing assertion: something that must finish gets this
// long before the test gives up on it.
constexpr auto kHangGuard = 60s;

void yield_n(int n) {
  for (int i = 0; i < n; ++i) goro::this_fiber::yield();
}

}  // namespace

// --- test/chan/doubleselect.go ------------------------------------------------
// A sender selects over four channels, four muxes funnel them into one; every
// value must arrive exactly once (no double delivery from a select).
TEST_CASE("doubleselect.go: each value sent through a 4-way select arrives exactly once",
          "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(10'000, 5'000, 1'000));
  Failures fails;
  int received = 0;
  goro::run(
      [&] {
        goro::Channel<int> c1, c2, c3, c4, cmux;
        goro::Channel<bool> done;
        goro::go([=] {
          for (int i = 0; i < n; ++i) {
            goro::select(goro::send(c1, i), goro::send(c2, i), goro::send(c3, i), goro::send(c4, i));
          }
          c1.close();
          c2.close();
          c3.close();
          c4.close();
        });
        for (const auto& in : {c1, c2, c3, c4}) {
          goro::go([in, cmux, done] {
            for (int v : in) cmux.send(v);
            done.send(true);
          });
        }
        goro::go([=] {
          for (int i = 0; i < 4; ++i) done.recv();
          cmux.close();
        });
        std::vector<char> seen(static_cast<std::size_t>(n), 0);
        for (int v : cmux) {
          if (!FCHECK(fails, v >= 0 && v < n)) continue;
          FCHECK(fails, seen[static_cast<std::size_t>(v)]++ == 0);  // no duplicate
          ++received;
        }
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
  CHECK(received == n);
}

// --- test/chan/fifo.go ----------------------------------------------------------
TEST_CASE("fifo.go: buffered FIFO, and a chain of receivers served in order", "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  constexpr int N = 10;
  Failures fails;
  goro::run(
      [&] {
        // AsynchFifo
        goro::Channel<int> ch(N);
        for (int i = 0; i < N; ++i) ch.send(i);
        for (int i = 0; i < N; ++i) FCHECK(fails, ch.recv() == i);

        // SynchFifo: link i waits for its turn on `in`, then must receive i.
        goro::Channel<int> sync;
        goro::Channel<int> in;
        goro::Channel<int> start = in;
        for (int i = 0; i < N; ++i) {
          goro::Channel<int> out;
          goro::go([&fails, sync, i, in, out] {
            in.recv();
            FCHECK(fails, sync.recv() == i);
            out.send(1);
          });
          in = out;
        }
        start.send(0);
        for (int i = 0; i < N; ++i) sync.send(i);
        in.recv();
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
}

// --- test/chan/goroutines.go ----------------------------------------------------
TEST_CASE("goroutines.go: a value relayed through a chain of 10,000 fibers", "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(10'000, 10'000, 1'000));
  int got = 0;
  goro::run(
      [&] {
        goro::Channel<int> leftmost;
        goro::Channel<int> left = leftmost, right = leftmost;
        for (int i = 0; i < n; ++i) {
          right = goro::Channel<int>();
          goro::go([left, right] { left.send(*right.recv()); });
          left = right;
        }
        goro::go([right] { right.send(1); });
        got = *leftmost.recv();
      },
      with_workers(workers));
  CHECK(got == 1);
}

// --- test/chan/nonblock.go ------------------------------------------------------
namespace {

void nonblock_pause() {
  yield_n(3);
  goro::this_fiber::sleep_for(10us);
}

// One element type through the nonblock.go protocol, on capacities 0 and 1.
template <class T>
void nonblock_type(Failures& fails, const T& first, const T& second) {
  constexpr int kMaxTries = 100'000;  // a hang guard (each try pauses ~10 us)
  for (int buffer = 0; buffer < 2; ++buffer) {
    goro::Channel<T> c(buffer);
    goro::Channel<bool> sync;
    // Receiving from an empty channel must not block.
    bool took = false;
    goro::select(goro::recv(c, [&] { took = true; }), goro::default_case());
    FCHECK(fails, !took);

    // A receiver is running: a non-blocking send eventually succeeds.
    goro::go([c, sync, first, &fails] {
      FCHECK(fails, c.recv() == first);
      sync.send(true);
    });
    int tries = 0;
    for (bool sent = false; !sent;) {
      T v = first;
      goro::select(goro::send(c, std::move(v), [&] { sent = true; }), goro::default_case([&] {
                     if (++tries > kMaxTries) {
                       fails.add("nonblock: send never succeeded, buffer " + std::to_string(buffer));
                       sent = true;
                     } else {
                       nonblock_pause();
                     }
                   }));
    }
    sync.recv();

    // A sender is running: a non-blocking receive eventually succeeds.
    goro::go([c, sync, second] {
      c.send(second);
      sync.send(true);
    });
    if (buffer > 0) sync.recv();
    tries = 0;
    std::optional<T> got;
    while (!got) {
      goro::select(goro::recv(c, [&](std::optional<T> v) { got = std::move(v); }),
                   goro::default_case([&] {
                     if (++tries > kMaxTries) {
                       fails.add("nonblock: receive never succeeded, buffer " + std::to_string(buffer));
                       got = second;
                     } else {
                       nonblock_pause();
                     }
                   }));
    }
    FCHECK(fails, *got == second);
    if (buffer == 0) sync.recv();
  }
}

}  // namespace

TEST_CASE("nonblock.go: non-blocking send and receive on capacities 0 and 1", "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  Failures fails;
  goro::run(
      [&] {
        nonblock_type<std::int32_t>(fails, 123, 234);
        nonblock_type<std::int64_t>(fails, 123456, 234567);
        nonblock_type<std::uint8_t>(fails, 7, 8);
        nonblock_type<bool>(fails, true, true);
        nonblock_type<std::string>(fails, "hello", "hello again, a longer string that allocates");
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
}

// --- test/chan/select.go ----------------------------------------------------------
// Every send value of a select is evaluated once per select, nil channel or not.
TEST_CASE("select.go: send expressions evaluated once per select; nil cases never chosen",
          "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  unsigned counter = 0, shift = 0;
  int sent_ab = -1, sent_a = -1;
  unsigned ab_bits = 0;
  goro::run(
      [&] {
        auto get_value = [&] {
          ++counter;
          return 1u << shift;
        };
        auto send_all = [&](goro::Channel<unsigned> a, goro::Channel<unsigned> b) {
          int i = 0;
          for (bool more = true; more;) {
            goro::select(goro::send(a, get_value(), [&] { ++i; a = nullptr; }),
                         goro::send(b, get_value(), [&] { ++i; b = nullptr; }),
                         goro::default_case([&] { more = false; }));
            ++shift;
          }
          return i;
        };
        goro::Channel<unsigned> a(1), b(1);
        sent_ab = send_all(a, b);
        ab_bits = *a.recv() | *b.recv();
        sent_a = send_all(a, nullptr);
      },
      with_workers(workers));
  CHECK(sent_ab == 2);
  CHECK(ab_bits == 3u);
  CHECK(sent_a == 1);
  CHECK(counter == 10u);
}

// --- test/chan/select2.go ---------------------------------------------------------
// Go checks that 100,000 blocking selects do not grow the heap. goro's
// contract is stronger: no heap allocation per select. We count allocations.
TEST_CASE("select2.go: 100,000 blocking selects allocate nothing per select", "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(100'000, 20'000, 3'000));
  std::uint64_t allocations = 0;
  int dummy_fired = 0;
  goro::run(
      [&] {
        goro::Channel<int> c, dummy;
        auto receive = [&] {
          for (int i = 0; i < n; ++i) {
            goro::select(goro::recv(c), goro::recv(dummy, [&] { ++dummy_fired; }));
          }
        };
        goro::go([c, n] {
          for (int i = 0; i < n; ++i) c.send(1);
        });
        receive();  // warm up: stacks, pools, run queues
        goro::go([c, n] {
          for (int i = 0; i < n; ++i) c.send(1);
        });
        goro::this_fiber::yield();  // let the spawn settle
        const std::uint64_t before = g_allocations.load();
        receive();
        allocations = g_allocations.load() - before;
      },
      with_workers(workers));
  CHECK(dummy_fired == 0);
  if (kCountsAllocations) {
    INFO(allocations << " allocations during " << n << " selects");
    CHECK(allocations < 64);  // not one per select (a few from idle workers are tolerated)
  }
}

// --- test/chan/select3.go ---------------------------------------------------------
namespace {

enum class Expect { blocks, proceeds };

// check_blocking() runs f on a fiber: `blocks` means it is still running
// after a while (it is unwound when the test's runtime stops); `proceeds`
// means it finishes.
template <class F>
void check_blocking(Failures& fails, const char* what, Expect expect, F f) {
  goro::Channel<bool> finished(1);
  goro::go([f, finished]() mutable {
    f();
    finished.send(true);
  });
  if (expect == Expect::blocks) {
    // Give it plenty of chances to (wrongly) finish.
    yield_n(20);
    bool done = false;
    goro::select(goro::recv(finished, [&] { done = true; }), goro::timeout(5ms));
    if (done) fails.add(std::string("select3: expected to block: ") + what);
  } else {
    bool done = false;
    goro::select(goro::recv(finished, [&] { done = true; }), goro::timeout(kHangGuard));
    if (!done) fails.add(std::string("select3: expected to proceed: ") + what);
  }
}

template <class F>
void check_throws_closed(Failures& fails, const char* what, F f) {
  try {
    f();
    fails.add(std::string("select3: expected channel_closed: ") + what);
  } catch (const goro::channel_closed&) {
  }
}

}  // namespace

TEST_CASE("select3.go: which operations and selects block", "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  Failures fails;
  goro::run(
      [&] {
        const goro::Channel<int> nilch = nullptr;
        const goro::Channel<int> closedch;
        closedch.close();
        auto unreachable = [&fails] { fails.add("select3: a nil channel's case ran"); };

        // Sending/receiving on a nil channel blocks.
        check_blocking(fails, "nil send", Expect::blocks, [=] { nilch.send(7); });
        check_blocking(fails, "nil recv", Expect::blocks, [=] { nilch.recv(); });
        // Nil channel cases are never selected.
        goro::select(goro::send(nilch, 7, unreachable), goro::default_case());
        goro::select(goro::recv(nilch, unreachable), goro::default_case());
        // Sending to a buffered channel with room never blocks.
        check_blocking(fails, "send with room", Expect::proceeds, [] {
          goro::Channel<int> ch(1);
          ch.send(7);
        });
        // Receiving from a closed channel never blocks, and yields nothing.
        check_blocking(fails, "recv closed", Expect::proceeds, [=, &fails] {
          for (int i = 0; i < 10; ++i) {
            FCHECK(fails, !closedch.recv().has_value());
            int zero = -1;
            goro::select(goro::recv(closedch, [&](int v) { zero = v; }));
            FCHECK(fails, zero == 0);
          }
        });
        // Sending to a closed channel throws.
        check_throws_closed(fails, "send on closed", [=] { closedch.send(7); });
        // Receiving from a channel nobody sends on blocks.
        check_blocking(fails, "recv unready", Expect::blocks, [] {
          goro::Channel<int> ch;
          ch.recv();
        });
        // An empty select blocks.
        check_blocking(fails, "empty select", Expect::blocks, [] { goro::select(); });
        // Selects with only nil channels block.
        check_blocking(fails, "select nil recv", Expect::blocks, [=] {
          goro::select(goro::recv(nilch, unreachable));
        });
        check_blocking(fails, "select nil send", Expect::blocks, [=] {
          goro::select(goro::send(nilch, 7, unreachable));
        });
        check_blocking(fails, "select nil recv+send", Expect::blocks, [=] {
          goro::select(goro::recv(nilch, unreachable), goro::send(nilch, 7, unreachable));
        });
        // Selects on non-ready channels block.
        check_blocking(fails, "select unready recv", Expect::blocks, [=] {
          goro::Channel<int> ch;
          goro::select(goro::recv(ch, unreachable));
        });
        // Selects with a default never block.
        check_blocking(fails, "select default", Expect::proceeds, [] { goro::select(goro::default_case()); });
        check_blocking(fails, "select nil recv default", Expect::proceeds, [=] {
          goro::select(goro::recv(nilch, unreachable), goro::default_case());
        });
        check_blocking(fails, "select nil send default", Expect::proceeds, [=] {
          goro::select(goro::send(nilch, 7, unreachable), goro::default_case());
        });
        // Selects with ready channels do not block and do not take default.
        check_blocking(fails, "select ready send", Expect::proceeds, [=, &fails] {
          goro::Channel<int> ch(1);
          goro::select(goro::send(ch, 7), goro::default_case([&] { fails.add("select3: default taken (send)"); }));
        });
        check_blocking(fails, "select ready recv", Expect::proceeds, [=, &fails] {
          goro::Channel<int> ch(1);
          ch.send(7);
          goro::select(goro::recv(ch), goro::default_case([&] { fails.add("select3: default taken (recv)"); }));
        });
        // Selects on closed channels behave like plain operations.
        check_blocking(fails, "select closed recv", Expect::proceeds, [=] { goro::select(goro::recv(closedch)); });
        check_blocking(fails, "select closed recv value", Expect::proceeds, [=] {
          goro::select(goro::recv(closedch, [](int) {}));
        });
        check_blocking(fails, "select closed recv optional", Expect::proceeds, [=] {
          goro::select(goro::recv(closedch, [](std::optional<int>) {}));
        });
        check_throws_closed(fails, "select send on closed", [=] { goro::select(goro::send(closedch, 7)); });
        // A select does not match its own send and receive on one channel.
        check_blocking(fails, "select sees itself", Expect::blocks, [] {
          goro::Channel<int> c;
          goro::select(goro::send(c, 1), goro::recv(c));
        });
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
}

// --- test/chan/select4.go ---------------------------------------------------------
// Only the chosen case's handler runs (Go: only the chosen case's left-hand
// side is evaluated).
TEST_CASE("select4.go: a ready case proceeds; the other case's handler never runs",
          "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  int x = 0;
  bool bad_called = false;
  goro::run(
      [&] {
        goro::Channel<int> c(1), c1;
        c.send(42);
        goro::select(goro::recv(c1, [&](int) { bad_called = true; }), goro::recv(c, [&](int v) { x = v; }));
      },
      with_workers(workers));
  CHECK(!bad_called);
  CHECK(x == 42);
}

// --- test/chan/select5.go ---------------------------------------------------------
// Go generates every shape of select; here every combination of three slots
// (each absent, a receive that is ready / never ready / nil / closed, or a send
// with room / to a full channel / nil) with no default, a default, or a
// timeout is run against the expected outcome.
namespace select5 {

enum Kind { absent, r_ready, r_empty, r_nil, r_closed, s_room, s_full, s_nil, kKinds };
enum Tail { no_tail, with_default, with_timeout };

bool ready(Kind k) { return k == r_ready || k == r_closed || k == s_room; }

struct Slot {
  Kind kind = absent;
  goro::Channel<int> r = nullptr;
  goro::Channel<int> s = nullptr;
};

Slot make_slot(Kind k, int i) {
  Slot slot;
  slot.kind = k;
  switch (k) {
    case r_ready:
      slot.r = goro::Channel<int>(1);
      slot.r.send(100 + i);
      break;
    case r_empty:
      slot.r = goro::Channel<int>();
      break;
    case r_closed:
      slot.r = goro::Channel<int>(1);
      slot.r.close();
      break;
    case s_room:
      slot.s = goro::Channel<int>(1);
      break;
    case s_full:
      slot.s = goro::Channel<int>(1);
      slot.s.send(-1);
      break;
    default:
      break;
  }
  return slot;
}

// run_one() runs one shape and checks the outcome; returns the case chosen.
std::size_t run_one(Failures& fails, const Kind (&kinds)[3], Tail tail) {
  Slot slots[3] = {make_slot(kinds[0], 0), make_slot(kinds[1], 1), make_slot(kinds[2], 2)};
  int evaluations = 0;
  auto value = [&](int i) {
    ++evaluations;
    return 200 + i;
  };
  int handled = 0;
  std::size_t handled_case = 99;
  std::optional<int> got;
  auto on_recv = [&](std::size_t index) {
    return [&, index](std::optional<int> v) {
      ++handled;
      handled_case = index;
      got = v;
    };
  };
  auto on_send = [&](std::size_t index) {
    return [&, index] {
      ++handled;
      handled_case = index;
    };
  };
  auto on_tail = [&] {
    ++handled;
    handled_case = 6;
  };
  std::size_t chosen = 99;
  switch (tail) {
    case no_tail:
      chosen = goro::select(goro::recv(slots[0].r, on_recv(0)), goro::send(slots[0].s, value(0), on_send(1)),
                            goro::recv(slots[1].r, on_recv(2)), goro::send(slots[1].s, value(1), on_send(3)),
                            goro::recv(slots[2].r, on_recv(4)), goro::send(slots[2].s, value(2), on_send(5)));
      break;
    case with_default:
      chosen = goro::select(goro::recv(slots[0].r, on_recv(0)), goro::send(slots[0].s, value(0), on_send(1)),
                            goro::recv(slots[1].r, on_recv(2)), goro::send(slots[1].s, value(1), on_send(3)),
                            goro::recv(slots[2].r, on_recv(4)), goro::send(slots[2].s, value(2), on_send(5)),
                            goro::default_case(on_tail));
      break;
    case with_timeout:
      chosen = goro::select(goro::recv(slots[0].r, on_recv(0)), goro::send(slots[0].s, value(0), on_send(1)),
                            goro::recv(slots[1].r, on_recv(2)), goro::send(slots[1].s, value(1), on_send(3)),
                            goro::recv(slots[2].r, on_recv(4)), goro::send(slots[2].s, value(2), on_send(5)),
                            goro::timeout(1us, on_tail));
      break;
  }
  const std::string shape = "shape " + std::to_string(kinds[0]) + "," + std::to_string(kinds[1]) + "," +
                            std::to_string(kinds[2]) + " tail " + std::to_string(tail) + " chose " +
                            std::to_string(chosen);
  const bool any_ready = ready(kinds[0]) || ready(kinds[1]) || ready(kinds[2]);
  if (evaluations != 3) fails.add(shape + ": send values evaluated " + std::to_string(evaluations) + " times");
  if (handled != 1 || handled_case != chosen) fails.add(shape + ": handler mismatch");
  if (!any_ready) {
    if (chosen != 6) fails.add(shape + ": nothing was ready but a channel case was chosen");
  } else {
    if (chosen >= 6) {
      fails.add(shape + ": a ready case was passed over");
    } else {
      const std::size_t slot = chosen / 2;
      const bool is_send = chosen % 2 == 1;
      const Kind k = kinds[slot];
      if (!ready(k) || is_send != (k == s_room)) fails.add(shape + ": chose a case that was not ready");
      if (k == r_ready && got != 100 + static_cast<int>(slot)) fails.add(shape + ": wrong value received");
      if (k == r_closed && got.has_value()) fails.add(shape + ": closed channel delivered a value");
      if (k == s_room && slots[slot].s.try_recv() != 200 + static_cast<int>(slot))
        fails.add(shape + ": sent value not in the channel");
    }
  }
  // Nothing else moved.
  for (std::size_t i = 0; i < 3; ++i) {
    if (i == chosen / 2 && chosen < 6) continue;
    const Slot& s = slots[i];
    if (s.kind == r_ready && s.r.size() != 1) fails.add(shape + ": a losing receive consumed a value");
    if (s.kind == s_room && s.s.size() != 0) fails.add(shape + ": a losing send delivered a value");
    if (s.kind == s_full && s.s.size() != 1) fails.add(shape + ": a full channel changed");
  }
  return chosen;
}

}  // namespace select5

TEST_CASE("select5.go: every select shape of three slots picks a ready case or the tail",
          "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int repeats = static_cast<int>(scaled(4, 2, 1));
  Failures fails;
  std::size_t shapes = 0;
  goro::run(
      [&] {
        using namespace select5;
        for (int a = 0; a < kKinds; ++a)
          for (int b = 0; b < kKinds; ++b)
            for (int c = 0; c < kKinds; ++c)
              for (Tail tail : {no_tail, with_default, with_timeout}) {
                const Kind kinds[3] = {Kind(a), Kind(b), Kind(c)};
                if (tail == no_tail && !ready(kinds[0]) && !ready(kinds[1]) && !ready(kinds[2])) continue;
                ++shapes;
                for (int r = 0; r < repeats; ++r) run_one(fails, kinds, tail);
              }
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
  CHECK(shapes == 512 * 3 - 5 * 5 * 5);  // all shapes but the 125 that would block forever
}

// --- test/chan/select6.go ---------------------------------------------------------
// Issue 2075: a select that lost on a channel must not corrupt that
// channel's wait queue for the waiters behind it.
TEST_CASE("select6.go: a losing select case leaves the channel's wait queue intact",
          "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(200, 100, 20));
  Failures fails;
  goro::run(
      [&] {
        for (int r = 0; r < rounds; ++r) {
          goro::Channel<bool> c1, c2, c3;
          goro::WaitGroup wg;
          wg.go([c1] { c1.recv(); });
          wg.go([c1, c2, c3, &fails] {
            goro::select(goro::recv(c1, [&] { fails.add("select6: dummy case ran"); }),
                         goro::recv(c2, [&] { c3.send(true); }));
            c1.recv();
          });
          wg.go([c2] { c2.send(true); });
          c3.recv();
          c1.send(true);
          c1.send(true);
          wg.wait();
        }
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
}

// --- test/chan/select7.go ---------------------------------------------------------
// Discarding receives (plain, one-case select, two-case select) against
// sends of the same three shapes.
TEST_CASE("select7.go: discarding receives against plain and select sends", "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  int completed = 0;
  goro::run(
      [&] {
        using Recv = void (*)(goro::Channel<int>);
        const Recv recvs[] = {
            [](goro::Channel<int> c) { c.recv(); },
            [](goro::Channel<int> c) { goro::select(goro::recv(c)); },
            [](goro::Channel<int> c) {
              goro::Channel<int> c2;
              goro::select(goro::recv(c), goro::recv(c2));
            },
        };
        for (int round = 0; round < 10; ++round) {
          for (Recv recv : recvs) {
            for (int send_kind = 0; send_kind < 3; ++send_kind) {
              goro::Channel<int> c;
              goro::go(recv, c);
              goro::this_fiber::yield();
              if (send_kind == 0) {
                c.send(1);
              } else if (send_kind == 1) {
                goro::select(goro::send(c, 1));
              } else {
                goro::Channel<int> c2;
                goro::select(goro::send(c, 1), goro::send(c2, 1));
              }
              ++completed;
            }
          }
        }
      },
      with_workers(workers));
  CHECK(completed == 90);
}

// --- test/chan/sieve2.go ----------------------------------------------------------
// The wheel-and-heap prime sieve: candidates coprime to 2,3,5,7; a merger
// fiber keeps a min-heap of "peek channels" (one fiber per prime producing
// its multiples) and emits the composites in order; the sieve feeds each
// prime it finds back to the merger through an unbounded send proxy (a
// select whose send case is nil while its queue is empty).
namespace sieve2 {

using I = std::int64_t;

// The gaps between consecutive numbers coprime to 210, starting from 11.
const std::vector<I>& wheel() {
  static const std::vector<I> gaps = [] {
    std::vector<I> coprime;
    for (I n = 11; n < 11 + 210 + 1; ++n)
      if (n % 2 && n % 3 && n % 5 && n % 7) coprime.push_back(n);
    std::vector<I> g;
    for (std::size_t i = 1; i < coprime.size(); ++i) g.push_back(coprime[i] - coprime[i - 1]);
    return g;
  }();
  return gaps;
}

// Iterates the numbers coprime to 210 from 11 on.
struct Candidates {
  I n = 11;
  std::size_t i = 0;
  I next() {
    I v = n;
    n += wheel()[i];
    i = (i + 1) % wheel().size();
    return v;
  }
};

struct PeekCh {
  I head;
  goro::Channel<I> ch;
  bool operator>(const PeekCh& o) const { return head > o.head; }
};

// multiples(p): p*m for every candidate m >= p, in increasing order.
PeekCh multiples(I p) {
  goro::Channel<I> ch;
  goro::go([ch, p] {
    Candidates m;
    I q = m.next();
    while (q < p) q = m.next();
    for (;; q = m.next()) ch.send(p * q);
  });
  return PeekCh{*ch.recv(), ch};
}

// sendproxy(out): a channel that never blocks its sender for long; a fiber
// forwards what it receives to `out` through an unbounded queue.
goro::Channel<I> sendproxy(goro::Channel<I> out) {
  goro::Channel<I> in(16);
  goro::go([in, out] {
    std::deque<I> queue;
    for (;;) {
      goro::Channel<I> target = queue.empty() ? goro::Channel<I>(nullptr) : out;
      I front = queue.empty() ? 0 : queue.front();
      goro::select(goro::recv(in, [&](I v) { queue.push_back(v); }),
                   goro::send(target, front, [&] { queue.pop_front(); }));
    }
  });
  return in;
}

// sieve(): the primes in increasing order.
goro::Channel<I> sieve() {
  goro::Channel<I> out(10);
  goro::Channel<I> composites(50);
  goro::Channel<I> primes(10);
  goro::go([out, composites, primes] {
    for (I p : {2, 3, 5, 7}) out.send(p);
    // The merger.
    goro::go([composites, primes] {
      std::priority_queue<PeekCh, std::vector<PeekCh>, std::greater<>> heap;
      I last = 0;
      for (;;) {
        I p = *primes.recv();
        PeekCh m = multiples(p);
        // Everything below p*p is final now: no later prime has a multiple there.
        while (!heap.empty() && heap.top().head < m.head) {
          PeekCh top = heap.top();
          heap.pop();
          if (top.head != last) composites.send(last = top.head);
          top.head = *top.ch.recv();
          heap.push(top);
        }
        composites.send(last = m.head);
        m.head = *m.ch.recv();
        heap.push(m);
      }
    });
    // The sieve proper.
    goro::Channel<I> feedback = sendproxy(primes);
    Candidates candidates;
    I p = candidates.next();  // 11: known prime, primes the merger
    feedback.send(p);
    out.send(p);
    p = candidates.next();
    for (;;) {
      I c = *composites.recv();
      for (; p < c; p = candidates.next()) {
        feedback.send(p);
        out.send(p);
      }
      if (p == c) p = candidates.next();
    }
  });
  return out;
}

}  // namespace sieve2

TEST_CASE("sieve2.go: wheel-and-heap prime sieve yields the first primes in order",
          "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  const std::size_t n = scaled(1000, 1000, 200);
  std::vector<sieve2::I> expected;
  for (sieve2::I k = 2; expected.size() < n; ++k) {
    bool prime = true;
    for (sieve2::I d = 2; d * d <= k && prime; ++d) prime = k % d != 0;
    if (prime) expected.push_back(k);
  }
  std::vector<sieve2::I> got;
  goro::run(
      [&] {
        goro::Channel<sieve2::I> primes = sieve2::sieve();
        while (got.size() < n) got.push_back(*primes.recv());
      },
      with_workers(workers));  // the pipeline's fibers are unwound here
  CHECK(got == expected);
}

// --- test/chan/zerosize.go --------------------------------------------------------
namespace {
struct Empty {
  bool operator==(const Empty&) const = default;
};

template <class T>
void zerosize_roundtrip(Failures& fails, const char* name) {
  for (int cap : {0, 1, 1 << 16}) {
    goro::Channel<T> c(cap);
    goro::go([c] {
      for (int i = 0; i < 100; ++i) c.send(T{});
      c.close();
    });
    int n = 0;
    for (T v : c) {
      (void)v;
      ++n;
    }
    if (n != 100) fails.add(std::string("zerosize: ") + name + " delivered " + std::to_string(n));
    // select over it, closed: always ready, never a value.
    bool closed_seen = false;
    goro::select(goro::recv(c, [&](std::optional<T> v) { closed_seen = !v; }));
    FCHECK(fails, closed_seen);
    if (cap > 0) {
      goro::Channel<T> d(cap);
      FCHECK(fails, d.try_send(T{}));
      FCHECK(fails, d.size() == 1u);
      FCHECK(fails, d.try_recv().has_value());
    }
  }
}
}  // namespace

TEST_CASE("zerosize.go: channels of empty element types", "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  Failures fails;
  goro::run(
      [&] {
        zerosize_roundtrip<goro::Unit>(fails, "Unit");
        zerosize_roundtrip<Empty>(fails, "struct{}");
        zerosize_roundtrip<std::monostate>(fails, "monostate");
        zerosize_roundtrip<std::array<int, 0>>(fails, "[0]int");
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
}

// --- test/chan/powser1.go ---------------------------------------------------------
// Power series as demand-driven streams of rationals: a consumer sends a
// request and then receives the next coefficient. Operators are fibers;
// split() duplicates a stream for two consumers, pulling its input only on
// demand and never blocking one consumer behind the other (exp's feedback
// loop depends on that).
namespace powser {

struct Rat {
  std::int64_t num = 0, den = 1;
  Rat() = default;
  Rat(std::int64_t n, std::int64_t d = 1) : num(n), den(d) {
    if (den < 0) num = -num, den = -den;
    std::int64_t g = std::gcd(num, den);
    if (g > 1) num /= g, den /= g;
  }
  friend Rat operator+(Rat a, Rat b) { return Rat(a.num * b.den + b.num * a.den, a.den * b.den); }
  friend Rat operator*(Rat a, Rat b) { return Rat(a.num * b.num, a.den * b.den); }
  friend Rat operator/(Rat a, std::int64_t k) { return Rat(a.num, a.den * k); }
  friend bool operator==(Rat a, Rat b) { return a.num == b.num && a.den == b.den; }
};

struct Series {
  goro::Channel<goro::Unit> req{1};  // at most one outstanding request
  goro::Channel<Rat> dat;
};

Rat get(const Series& s) {
  s.req.send(goro::Unit{});
  return *s.dat.recv();
}

// produce_into(s, next): serves s's requests with next(), one per request.
template <class F>
void produce_into(const Series& s, F next) {
  goro::go([s, next]() mutable {
    for (;;) {
      s.req.recv();
      s.dat.send(next());
    }
  });
}
template <class F>
Series produce(F next) {
  Series s;
  produce_into(s, std::move(next));
  return s;
}

Series from(std::vector<Rat> coeffs) {
  return produce([coeffs, i = std::size_t{0}]() mutable { return i < coeffs.size() ? coeffs[i++] : Rat(0); });
}
Series ones() {
  return produce([] { return Rat(1); });
}
Series add(Series f, Series g) {
  return produce([f, g] { return get(f) + get(g); });
}
Series cmul(Rat c, Series f) {
  return produce([c, f] { return c * get(f); });
}
Series xmul(Series f) {  // x * F
  return produce([f, first = true]() mutable {
    if (first) {
      first = false;
      return Rat(0);
    }
    return get(f);
  });
}
Series integ(Rat c, Series f) {  // c + integral of F
  return produce([c, f, n = 0]() mutable {
    Rat v = n == 0 ? c : get(f) / n;
    ++n;
    return v;
  });
}
Series deriv(Series f) {
  return produce([f, n = 0]() mutable {
    if (n == 0) {
      get(f);
      n = 1;
    }
    Rat v = get(f) * Rat(n);
    ++n;
    return v;
  });
}

std::pair<Series, Series> split(Series in) {
  Series a, b;
  goro::go([in, a, b] {
    std::deque<Rat> qa, qb;
    bool wa = false, wb = false, pulling = false;
    const goro::Channel<goro::Unit> no_req = nullptr;
    const goro::Channel<Rat> no_dat = nullptr;
    for (;;) {
      if (wa && !qa.empty()) {
        a.dat.send(qa.front());
        qa.pop_front();
        wa = false;
      }
      if (wb && !qb.empty()) {
        b.dat.send(qb.front());
        qb.pop_front();
        wb = false;
      }
      if (!pulling && ((wa && qa.empty()) || (wb && qb.empty()))) {
        in.req.send(goro::Unit{});
        pulling = true;
      }
      goro::select(goro::recv(wa ? no_req : a.req, [&] { wa = true; }),
                   goro::recv(wb ? no_req : b.req, [&] { wb = true; }),
                   goro::recv(pulling ? in.dat : no_dat, [&](Rat v) {
                     qa.push_back(v);
                     qb.push_back(v);
                     pulling = false;
                   }));
    }
  });
  return {a, b};
}

// (f0 + x F')(g0 + x G') = f0 g0 + x (f0 G' + g0 F' + x F' G')
Series mul(Series f, Series g) {
  return produce([f, g, rest = std::optional<Series>()]() mutable {
    if (rest) return get(*rest);
    Rat f0 = get(f), g0 = get(g);
    auto [f1, f2] = split(f);
    auto [g1, g2] = split(g);
    rest = add(add(cmul(f0, g1), cmul(g0, f1)), xmul(mul(f2, g2)));
    return f0 * g0;
  });
}

// exp(F) for F(0) == 0: X = 1 + integral(X * F'), a feedback loop.
Series exp(Series f) {
  Series x;
  auto [out, feedback] = split(x);
  Series m = mul(feedback, deriv(f));
  produce_into(x, [m, n = 0]() mutable {
    Rat v = n == 0 ? Rat(1) : get(m) / n;
    ++n;
    return v;
  });
  return out;
}

std::vector<Rat> take(const Series& s, int n) {
  std::vector<Rat> v;
  for (int i = 0; i < n; ++i) v.push_back(get(s));
  return v;
}

}  // namespace powser

TEST_CASE("powser1.go: power series pipelines (ones, integ, mul, exp, deriv)", "[conformance][go]") {
  using powser::Rat;
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(10, 8, 6));
  std::vector<Rat> ones_terms, integ_terms, square_terms, exp_terms, product_terms, deriv_terms;
  goro::run(
      [&] {
        using namespace powser;
        ones_terms = take(ones(), n);
        integ_terms = take(integ(Rat(0), ones()), n);                    // -log(1-x)
        square_terms = take(mul(ones(), ones()), n);                       // 1/(1-x)^2
        exp_terms = take(exp(from({Rat(0), Rat(1)})), n);                  // e^x
        product_terms = take(mul(exp(from({Rat(0), Rat(1)})), exp(from({Rat(0), Rat(-1)}))), n);  // 1
        deriv_terms = take(deriv(exp(from({Rat(0), Rat(1)}))), n);         // (e^x)' = e^x
      },
      with_workers(workers));  // the operator fibers are unwound here
  std::vector<Rat> want_ones(n, Rat(1)), want_integ, want_square, want_exp, want_product(n, Rat(0));
  std::int64_t fact = 1;
  for (int i = 0; i < n; ++i) {
    want_integ.push_back(i == 0 ? Rat(0) : Rat(1, i));
    want_square.push_back(Rat(i + 1));
    if (i > 0) fact *= i;
    want_exp.push_back(Rat(1, fact));
  }
  want_product[0] = Rat(1);
  CHECK(ones_terms == want_ones);
  CHECK(integ_terms == want_integ);
  CHECK(square_terms == want_square);
  CHECK(exp_terms == want_exp);
  CHECK(product_terms == want_product);
  CHECK(deriv_terms == want_exp);
}

// --- test/ken/chan.go -------------------------------------------------------------
// Senders, receivers and 8-way selectors over channels of capacity 0, 1, 10
// and 100; every channel carries 76 values (x00 .. x75) that must arrive in
// order; the totals of sends and receives are exact.
namespace ken {

constexpr int kEnd = 10000;

struct Chan {
  goro::Channel<int> sc = nullptr, rc = nullptr;  // send side, receive side (nil when done)
  int sv = 0, rv = 0;
};

class Ken {
 public:
  Ken(Failures& fails, int yield_spread) : fails_(fails), spread_(yield_spread) {}

  void tests(int c) {
    std::vector<Chan*> ca = mkchan(c, 4);
    test1(ca[0]);
    test1(ca[1]);
    test1(ca[2]);
    test1(ca[3]);
    wait();
    test2(c);
    wait();
    test3(c);
    wait();
    test4(c);
    wait();
    test5(c);
    wait();
    test6(c);
    wait();
  }

  int tots() const { return tots_.load(); }
  int totr() const { return totr_.load(); }

 private:
  int nrand(int n) {
    std::uint32_t x = randx_.fetch_add(10007, std::memory_order_relaxed);
    return static_cast<int>((x % 1000000u) % static_cast<std::uint32_t>(n));
  }
  void pause(int n) {
    for (int r = nrand(n); r >= 0; --r) goro::this_fiber::yield();
  }

  std::vector<Chan*> mkchan(int c, int n) {
    std::vector<Chan*> out;
    for (int i = 0; i < n; ++i) {
      cval_ += 100;
      Chan& ch = chans_.emplace_back();
      ch.sc = goro::Channel<int>(c);
      ch.rc = ch.sc;
      ch.sv = ch.rv = cval_;
      out.push_back(&ch);
    }
    return out;
  }

  int expect(int v, int v0) {
    if (v == v0) return v % 100 == 75 ? kEnd : v + 1;
    fails_.add("ken: got " + std::to_string(v) + " expected " + std::to_string(v0));
    return kEnd;
  }
  bool sent(Chan* c) {
    tots_.fetch_add(1);
    c->sv = expect(c->sv, c->sv);
    if (c->sv != kEnd) return false;
    c->sc = nullptr;
    return true;
  }
  bool received(Chan* c, int v) {
    totr_.fetch_add(1);
    c->rv = expect(c->rv, v);
    if (c->rv != kEnd) return false;
    c->rc = nullptr;
    return true;
  }

  void send(Chan* c) {
    do {
      pause(spread_);
      c->sc.send(c->sv);
    } while (!sent(c));
  }
  void recv(Chan* c) {
    int v;
    do {
      pause(spread_);
      v = c->rc.recv().value_or(-1);
    } while (!received(c, v));
  }
  void sel(Chan* r0, Chan* r1, Chan* r2, Chan* r3, Chan* s0, Chan* s1, Chan* s2, Chan* s3) {
    int a = 0;  // channels of ours still running
    for (Chan* r : {r0, r1, r2, r3}) a += r->rc ? 1 : 0;
    for (Chan* s : {s0, s1, s2, s3}) a += s->sc ? 1 : 0;
    while (a > 0) {
      pause(spread_ / 2 + 1);
      goro::select(goro::recv(r0->rc, [&](int v) { a -= received(r0, v); }),
                   goro::recv(r1->rc, [&](int v) { a -= received(r1, v); }),
                   goro::recv(r2->rc, [&](int v) { a -= received(r2, v); }),
                   goro::recv(r3->rc, [&](int v) { a -= received(r3, v); }),
                   goro::send(s0->sc, s0->sv, [&] { a -= sent(s0); }),
                   goro::send(s1->sc, s1->sv, [&] { a -= sent(s1); }),
                   goro::send(s2->sc, s2->sv, [&] { a -= sent(s2); }),
                   goro::send(s3->sc, s3->sv, [&] { a -= sent(s3); }));
    }
  }

  void go_send(Chan* c) { wg_.go([this, c] { send(c); }); }
  void go_recv(Chan* c) { wg_.go([this, c] { recv(c); }); }
  void go_sel(Chan* r0, Chan* r1, Chan* r2, Chan* r3, Chan* s0, Chan* s1, Chan* s2, Chan* s3) {
    wg_.go([=, this] { sel(r0, r1, r2, r3, s0, s1, s2, s3); });
  }
  void wait() {
    goro::this_fiber::yield();
    wg_.wait();
  }

  // direct send to direct recv
  void test1(Chan* c) {
    go_send(c);
    go_recv(c);
  }
  // direct send to select recv
  void test2(int c) {
    auto ca = mkchan(c, 4);
    for (Chan* ch : ca) go_send(ch);
    go_sel(ca[0], ca[1], ca[2], ca[3], &nc_, &nc_, &nc_, &nc_);
  }
  // select send to direct recv
  void test3(int c) {
    auto ca = mkchan(c, 4);
    for (Chan* ch : ca) go_recv(ch);
    go_sel(&nc_, &nc_, &nc_, &nc_, ca[0], ca[1], ca[2], ca[3]);
  }
  // select send to select recv
  void test4(int c) {
    auto ca = mkchan(c, 4);
    go_sel(&nc_, &nc_, &nc_, &nc_, ca[0], ca[1], ca[2], ca[3]);
    go_sel(ca[0], ca[1], ca[2], ca[3], &nc_, &nc_, &nc_, &nc_);
  }
  // selects sending and receiving on each other's channels
  void test5(int c) {
    auto ca = mkchan(c, 8);
    go_sel(ca[4], ca[5], ca[6], ca[7], ca[0], ca[1], ca[2], ca[3]);
    go_sel(ca[0], ca[1], ca[2], ca[3], ca[4], ca[5], ca[6], ca[7]);
  }
  // direct senders -> select -> select -> direct receivers
  void test6(int c) {
    auto ca = mkchan(c, 12);
    for (int i = 4; i < 8; ++i) go_send(ca[static_cast<std::size_t>(i)]);
    for (int i = 8; i < 12; ++i) go_recv(ca[static_cast<std::size_t>(i)]);
    go_sel(ca[4], ca[5], ca[6], ca[7], ca[0], ca[1], ca[2], ca[3]);
    go_sel(ca[0], ca[1], ca[2], ca[3], ca[8], ca[9], ca[10], ca[11]);
  }

  Failures& fails_;
  const int spread_;
  std::atomic<int> tots_{0}, totr_{0};
  std::atomic<std::uint32_t> randx_{0};
  int cval_ = 0;
  Chan nc_;                 // the nil channel pair
  std::deque<Chan> chans_;  // stable addresses
  goro::WaitGroup wg_;
};

}  // namespace ken

TEST_CASE("ken/chan.go: senders, receivers and 8-way selects; every value in order, totals exact",
          "[conformance][go]") {
  const std::size_t workers = GORO_WORKERS();
  Failures fails;
  ken::Ken k(fails, goro_test::kTsan ? 3 : 10);
  goro::run(
      [&] {
        for (int c : {0, 1, 10, 100}) k.tests(c);
      },
      with_workers(workers));
  REQUIRE_NO_FAILURES(fails);
  const int t = 4 * (4 * 4 + 8 + 12) * 76;  // buffer sizes * channels * values per channel
  CHECK(k.tots() == t);
  CHECK(k.totr() == t);
}
