// select: ports of Go's select tests plus the contract of goro::select.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "test_support.hpp"
#include "throwing_move.hpp"

using namespace std::chrono_literals;
using goro_test::scaled;
using goro_test::with_threads;
using goro_test::with_workers;

#include "allocation_counter.hpp"  // g_allocations, kCountsAllocations

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

// Fairness: six channels, of which those in `ready` hold a value for every
// trial and the others stay empty; `trials` selects over all six, through
// the variadic form or the dynamic one. Returns how often each case won.
std::vector<int> selection_counts(const std::vector<int>& ready, int trials, bool dynamic) {
  std::vector<int> counts(6, 0);
  goro::run(
      [&] {
        std::vector<goro::Channel<int>> chans;
        for (int i = 0; i < 6; ++i) chans.emplace_back(trials + 1);
        for (int r : ready) {
          for (int i = 0; i < trials; ++i) chans[static_cast<std::size_t>(r)].send(i);
        }
        std::vector<goro::SelectCase> cases;
        for (auto& c : chans) cases.emplace_back(goro::recv(c));
        for (int i = 0; i < trials; ++i) {
          std::size_t k = dynamic ? goro::select(cases)
                                  : goro::select(goro::recv(chans[0]), goro::recv(chans[1]),
                                                 goro::recv(chans[2]), goro::recv(chans[3]),
                                                 goro::recv(chans[4]), goro::recv(chans[5]));
          counts[k]++;
        }
      },
      with_workers(1));
  return counts;
}

TEST_CASE("TestSelectFairness: always-ready cases split evenly within 5 sigma", "[select][go]") {
  const int trials = 12'000;
  const bool dynamic = GENERATE(false, true);
  const std::vector<int> ready = GENERATE(std::vector<int>{0, 1}, std::vector<int>{1, 3, 4},
                                          std::vector<int>{0, 1, 2, 3, 4, 5});
  const std::vector<int> counts = selection_counts(ready, trials, dynamic);
  const double p = 1.0 / static_cast<double>(ready.size());
  const double sigma = std::sqrt(trials * p * (1 - p));
  int total = 0;
  for (int i = 0; i < 6; ++i) {
    const bool is_ready = std::find(ready.begin(), ready.end(), i) != ready.end();
    INFO((dynamic ? "dynamic" : "variadic") << " select, case " << i << " won " << counts[i] << " times");
    if (is_ready) {
      CHECK(std::abs(counts[i] - trials * p) < 5 * sigma);
    } else {
      CHECK(counts[i] == 0);
    }
    total += counts[i];
  }
  CHECK(total == trials);
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
        // A value of another type is converted by copying: a losing case
        // leaves even an rvalue of it alone, and a winning one sends the copy.
        goro::Channel<std::optional<std::string>> names(1);
        names.send("taken");
        std::string name = "a name longer than any small-string buffer";
        k = goro::select(goro::send(names, std::move(name)), goro::default_case());
        CHECK(k == 1);
        CHECK(name == "a name longer than any small-string buffer");
        CHECK(names.recv()->value() == "taken");
        k = goro::select(goro::send(names, std::move(name)), goro::default_case());
        CHECK(k == 0);
        CHECK(names.recv()->value() == name);
      },
      with_workers(1));
}

// Moving a value to or from a parked select can throw (T's move): the party
// that made the move gets the exception, and the select goes on waiting as if
// nothing had happened, its value or its empty slot as it was.
TEST_CASE("a sender whose move throws leaves a parked select's recv case waiting", "[select][throwing-move]") {
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        goro::Channel<goro_test::FlakyMove> c;
        goro::Channel<int> other;
        int got = 0;
        std::size_t chosen = 99;
        goro::go([&] {
          chosen = goro::select(
              goro::recv(c, [&](std::optional<goro_test::FlakyMove>&& v) { got = v ? v->value : -1; }),
              goro::recv(other));
        });
        goro::this_fiber::yield();  // the select parks
        budget.moves_left = 0;
        CHECK_THROWS_AS(c.send(goro_test::FlakyMove(1, budget)), std::runtime_error);
        goro::this_fiber::yield();
        CHECK(chosen == 99);  // still waiting: not handed an empty value as if closed
        budget.moves_left = -1;
        c.send(goro_test::FlakyMove(2, budget));
        goro::this_fiber::yield();
        CHECK(chosen == 0);
        CHECK(got == 2);
      },
      with_workers(1));
}

// channels.md "When moving T can throw": goro moves a received value once;
// code that binds it by reference (handlers taking T&&, const T& or
// std::optional<T>&&; `for (T&& v : ch)`) makes no second move, so a T
// whose every later move throws is still handed over. A handler taking T
// by value moves once more, after the commit: that move's exception leaves
// select.
TEST_CASE("received values bound by reference are handed over with no second move", "[select][throwing-move]") {
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        using goro_test::FlakyMove;
        goro::Channel<FlakyMove> c(8);
        for (int i = 1; i <= 8; ++i) c.send(FlakyMove(i, budget));
        int got = 0;
        budget.moves_left = 1;  // out of the channel, and no further
        goro::select(goro::recv(c, [&](FlakyMove&& v) { got = v.value; }));
        CHECK(got == 1);
        budget.moves_left = 1;
        goro::select(goro::recv(c, [&](const FlakyMove& v) { got = v.value; }));
        CHECK(got == 2);
        budget.moves_left = 1;
        goro::select(goro::recv(c, [&](std::optional<FlakyMove>&& v) { got = v ? v->value : -1; }));
        CHECK(got == 3);
        budget.moves_left = 1;
        CHECK_THROWS_AS(goro::select(goro::recv(c, [&](FlakyMove v) { got = v.value; })), std::runtime_error);
        CHECK(got == 3);  // the by-value handler never ran
        c.close();
        int sum = 0;
        budget.moves_left = 1;
        for (FlakyMove&& v : c) {
          sum += v.value;
          budget.moves_left = 1;  // the next value's one move
        }
        CHECK(sum == 5 + 6 + 7 + 8);
      },
      with_workers(1));
}

TEST_CASE("a receiver whose move throws leaves a parked select's send case waiting with its value",
          "[select][throwing-move]") {
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        goro::Channel<goro_test::FlakyMove> c;
        goro::Channel<int> other;
        int handled = 0;
        std::size_t chosen = 99;
        goro::go([&] {
          goro_test::FlakyMove mine(5, budget);
          chosen = goro::select(goro::send(c, mine, [&] { ++handled; }), goro::recv(other));
        });
        goro::this_fiber::yield();  // the select parks
        budget.moves_left = 0;
        CHECK_THROWS_AS(c.recv(), std::runtime_error);
        goro::this_fiber::yield();
        CHECK(chosen == 99);
        CHECK(handled == 0);
        budget.moves_left = -1;
        auto v = c.recv();
        REQUIRE(v);
        CHECK(v->value == 5);
        goro::this_fiber::yield();
        CHECK(chosen == 0);
        CHECK(handled == 1);
      },
      with_workers(1));
}

namespace {
// LateThrowingCase: a select case that pass 0 finds not ready and that throws
// from its poll under every lock in pass 1, as a case whose value's move
// throws does when its partner arrives between the two passes.
struct LateThrowingCase : goro::detail::NoPort {
  using Port = goro::detail::NoPort;
  static constexpr bool kIsDefault = false;
  static constexpr bool kIsTimeout = false;
  explicit LateThrowingCase(goro::detail::ChanBase* c) : chan(c) {}
  goro::detail::ChanBase* chan;
  goro::detail::ChanBase* channel() const noexcept { return chan; }
  Port* port() noexcept { return this; }
  bool poll(goro::detail::WakeList&) { throw std::runtime_error("move failed"); }
  void enqueue(goro::detail::Parker::Ticket, goro::detail::SelectRecord*, std::size_t) noexcept {}
  void dequeue() noexcept {}
  void finish() {}
};
}  // namespace

TEST_CASE("a poll that throws under every lock releases them all", "[select][throwing-move]") {
  goro::detail::ChanBase first, second;
  LateThrowingCase a(&first), b(&second);
  CHECK_THROWS_AS(goro::detail::select_static(a, b), std::runtime_error);
  CHECK(first.lock.try_lock());
  CHECK(second.lock.try_lock());
  first.lock.unlock();
  second.lock.unlock();
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

TEST_CASE("a case passed as an lvalue to the variadic select is rearmed each call", "[select]") {
  goro::run(
      [] {
        goro::Channel<int> c(1);
        c.send(5);
        std::optional<int> got;
        auto rc = goro::recv(c, [&](std::optional<int> v) { got = v; });
        goro::select(rc);
        CHECK(got == 5);
        c.close();
        goro::select(rc);
        CHECK(!got.has_value());  // not the value left over from the first call
      },
      with_workers(1));
}

// count_to() is a generator: the only handle to its channel is the one it
// returns.
goro::RecvChannel<int> count_to(int n) {
  goro::Channel<int> out;
  goro::go([out, n] {
    for (int i = 0; i < n; ++i) out.send(i);
    out.close();
  });
  return out;
}

TEST_CASE("a case made from a temporary channel handle keeps the channel alive", "[select]") {
  // Run under ASan, a case that kept only a raw pointer reads freed memory:
  // after(d)'s channel dies when its timer fires, a generator's when the
  // handle it returned is gone.
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [] {
        auto timer_case = goro::recv(goro::after(1ms));
        goro::this_fiber::sleep_for(10ms);  // the timer has fired, no handle left
        CHECK(goro::select(timer_case) == 0);

        std::vector<int> got;
        bool closed = false;
        auto gen_case = goro::recv(count_to(3), [&](std::optional<int> v) {
          if (v) got.push_back(*v); else closed = true;
        });
        while (!closed) goro::select(gen_case);
        CHECK(got == std::vector<int>{0, 1, 2});

        int v = 7;
        auto send_case = goro::send(goro::Channel<int>(1), v);  // the case is the channel's only owner
        CHECK(goro::select(send_case) == 0);

        std::vector<goro::SelectCase> cases;
        cases.emplace_back(goro::recv(goro::after(1ms)));
        std::vector<int> from_gen;
        cases.emplace_back(goro::recv(count_to(2), [&](std::optional<int> x) {
          if (x) from_gen.push_back(*x);
        }));
        goro::this_fiber::sleep_for(10ms);
        bool timer_won = false;
        while (!timer_won || from_gen.size() < 2) {
          const std::size_t i = goro::select(cases);
          if (i == 0) {
            timer_won = true;
            cases[0] = goro::recv(goro::Channel<goro::TimePoint>(nullptr));  // never again
          }
        }
        CHECK(from_gen == std::vector<int>{0, 1});
      },
      with_workers(workers));
}

// --- Dynamic select: goro::select(std::span<goro::SelectCase>) -----------------

namespace {

// MoveProbe tells whether it was moved from.
struct MoveProbe {
  int value = 0;
  bool moved_from = false;
  explicit MoveProbe(int v) : value(v) {}
  MoveProbe(MoveProbe&& o) noexcept : value(o.value) { o.moved_from = true; }
  MoveProbe& operator=(MoveProbe&& o) noexcept {
    value = o.value;
    moved_from = false;
    o.moved_from = true;
    return *this;
  }
};

}  // namespace

// Ordinary cases (recv or send of a small T or std::string, handler capturing
// two references) are stored inline: no allocation when the list is built.
static_assert(goro::SelectCase::inline_size >= 144);
static_assert(std::is_nothrow_move_constructible_v<goro::SelectCase>);
static_assert(!std::is_copy_constructible_v<goro::SelectCase>);
static_assert(!std::is_constructible_v<goro::SelectCase, goro::SelectCase&>);

TEST_CASE("dynamic select: fan-in over 64 channels from 64 producers through one reused case list",
          "[select][dynamic]") {
  const std::size_t workers = GORO_WORKERS();
  constexpr int kChannels = 64;
  int per = static_cast<int>(scaled(2'000, 500, 40));
  goro::run(
      [&] {
        std::vector<goro::Channel<int>> in;
        for (int k = 0; k < kChannels; ++k) in.emplace_back(k % 4);  // capacities 0..3
        for (int k = 0; k < kChannels; ++k) {
          goro::go([ch = in[k], k, per] {
            for (int i = 0; i < per; ++i) ch.send(k * per + i);
            ch.close();
          });
        }
        std::vector<std::uint8_t> seen(static_cast<std::size_t>(kChannels * per), 0);
        std::int64_t sum = 0, count = 0;
        bool closed = false;
        std::vector<goro::SelectCase> cases;
        for (int k = 0; k < kChannels; ++k) {
          cases.emplace_back(goro::recv(in[k], [&](std::optional<int> v) {
            if (!v) {
              closed = true;
              return;
            }
            seen[static_cast<std::size_t>(*v)]++;
            sum += *v;
            ++count;
          }));
        }
        const goro::Channel<int> nil = nullptr;
        const std::int64_t total = static_cast<std::int64_t>(kChannels) * per;
        int open = kChannels;
        // One select per value and one per close; a bound, so a broken
        // select fails here instead of spinning.
        for (std::int64_t round = 0; open > 0 && round < total + kChannels; ++round) {
          closed = false;
          std::size_t i = goro::select(cases);
          REQUIRE(i < cases.size());
          if (closed) {
            cases[i] = goro::recv(nil);  // Go's idiom: a nil channel switches the case off
            --open;
          }
        }
        CHECK(open == 0);
        CHECK(count == total);
        CHECK(sum == total * (total - 1) / 2);
        CHECK(std::all_of(seen.begin(), seen.end(), [](std::uint8_t n) { return n == 1; }));
      },
      with_workers(workers));
}

TEST_CASE("dynamic select: default is taken only when no case is ready", "[select][dynamic]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(5'000, 1'000, 200));
  goro::run(
      [&] {
        // Nothing ready: default, at once.
        goro::Channel<int> empty(1), full(1);
        full.send(0);
        bool ran_default = false;
        std::vector<goro::SelectCase> idle;
        idle.emplace_back(goro::recv(empty));
        idle.emplace_back(goro::send(full, 1));
        idle.emplace_back(goro::default_case([&] { ran_default = true; }));
        CHECK(goro::select(idle) == 2);
        CHECK(ran_default);
        CHECK(full.size() == 1);
        // A ready case is never passed over for default (TestNonblockSelectRace).
        goro::Channel<bool> done(1);
        for (int i = 0; i < n; ++i) {
          goro::Channel<int> c1(1), c2(1);
          c1.send(1);
          goro::go([=] {
            bool ok = true;
            std::vector<goro::SelectCase> cases;
            cases.emplace_back(goro::recv(c1));
            cases.emplace_back(goro::recv(c2));
            cases.emplace_back(goro::default_case([&] { ok = false; }));
            goro::select(cases);
            done.send(ok);
          });
          c2.send(1);
          std::vector<goro::SelectCase> drain;
          drain.emplace_back(goro::recv(c1));
          drain.emplace_back(goro::recv(c2));
          goro::select(drain);
          REQUIRE(*done.recv());
        }
      },
      with_workers(workers));
}

TEST_CASE("dynamic select: the timeout case fires when nothing else is ready", "[select][dynamic]") {
  goro::run(
      [] {
        goro::Channel<int> never, nil = nullptr;
        bool timed_out = false;
        // The deadline is fixed when goro::timeout() is called, so the clock
        // starts before the case is built.
        const auto start = std::chrono::steady_clock::now();
        std::vector<goro::SelectCase> cases;
        cases.emplace_back(goro::recv(never));
        cases.emplace_back(goro::recv(nil));
        cases.emplace_back(goro::timeout(20ms, [&] { timed_out = true; }));
        CHECK(goro::select(cases) == 2);
        CHECK(timed_out);
        CHECK(std::chrono::steady_clock::now() - start >= 20ms);
        // A ready channel wins over a pending timeout.
        goro::Channel<int> ready(1);
        ready.send(1);
        std::vector<goro::SelectCase> race;
        race.emplace_back(goro::timeout(10s));
        race.emplace_back(goro::recv(ready));
        CHECK(goro::select(race) == 1);
      },
      with_workers(2));
}

TEST_CASE("dynamic select: a send case's value moves only if that case wins", "[select][dynamic]") {
  goro::run(
      [] {
        goro::Channel<MoveProbe> full(1), ready(1);
        full.send(MoveProbe(0));
        MoveProbe mine(42);
        std::vector<goro::SelectCase> cases;
        cases.emplace_back(goro::send(full, mine));  // refers to `mine`
        cases.emplace_back(goro::default_case());
        CHECK(!mine.moved_from);  // building the case did not touch it
        CHECK(goro::select(cases) == 1);
        CHECK(!mine.moved_from);  // the losing case left it alone
        // Polled and lost to a ready recv (in random order: 20 rounds).
        goro::Channel<int> other(1);
        cases[1] = goro::recv(other);
        for (int i = 0; i < 20; ++i) {
          other.send(i);
          CHECK(goro::select(cases) == 1);
          CHECK(!mine.moved_from);
        }
        // Parked, and lost to a recv woken by another fiber.
        goro::Channel<MoveProbe> nobody;
        cases[0] = goro::send(nobody, mine);
        goro::go([other] {
          goro::this_fiber::sleep_for(1ms);
          other.send(1);
        });
        CHECK(goro::select(cases) == 1);
        CHECK(!mine.moved_from);
        cases[0] = goro::send(full, mine);
        cases[1] = goro::send(ready, mine);
        CHECK(goro::select(cases) == 1);
        CHECK(mine.moved_from);
        CHECK(ready.recv()->value == 42);
        // A case made from an rvalue owns its value, moved in when the case
        // was made, so the SelectCase cannot outlive what it sends.
        std::vector<goro::SelectCase> owned;
        owned.emplace_back(goro::send(ready, MoveProbe(7)));
        CHECK(goro::select(owned) == 0);
        CHECK(ready.recv()->value == 7);
      },
      with_workers(2));
}

TEST_CASE("dynamic select: a reused send case sends its variable's current value", "[select][dynamic]") {
  const std::size_t workers = GORO_WORKERS();
  const int n = static_cast<int>(scaled(2'000, 500, 100));
  goro::run(
      [&] {
        goro::Channel<int> out;
        goro::Channel<std::int64_t> total;
        goro::go([=] {
          std::int64_t sum = 0, expect = 0;
          for (int v : out) {
            if (v != expect) sum = -1'000'000'000;  // out of order or repeated
            sum += v;
            ++expect;
          }
          total.send(sum);
        });
        int next = 0;
        std::vector<goro::SelectCase> cases;
        cases.emplace_back(goro::send(out, next, [&] { ++next; }));
        while (next < n) goro::select(cases);
        out.close();
        CHECK(*total.recv() == static_cast<std::int64_t>(n) * (n - 1) / 2);
      },
      with_workers(workers));
}

TEST_CASE("dynamic select: closed recv cases are always ready; a chosen send on closed throws",
          "[select][dynamic]") {
  goro::run(
      [] {
        goro::Channel<int> c(1), never;
        c.send(7);
        c.close();
        std::optional<int> got;
        int calls = 0;
        std::vector<goro::SelectCase> cases;
        cases.emplace_back(goro::recv(never));
        cases.emplace_back(goro::recv(c, [&](std::optional<int> v) {
          got = v;
          ++calls;
        }));
        CHECK(goro::select(cases) == 1);  // drains the buffer first
        CHECK(got == 7);
        for (int i = 0; i < 3; ++i) {  // then delivers nullopt, again and again
          got = 99;
          CHECK(goro::select(cases) == 1);
          CHECK(!got.has_value());
        }
        CHECK(calls == 4);
        int zero = -1;  // the T form gets T{}
        cases[1] = goro::recv(c, [&](int v) { zero = v; });
        CHECK(goro::select(cases) == 1);
        CHECK(zero == 0);

        std::vector<goro::SelectCase> sends;
        sends.emplace_back(goro::recv(never));
        sends.emplace_back(goro::send(c, 1));
        CHECK_THROWS_AS(goro::select(sends), goro::channel_closed);
        CHECK_THROWS_AS(goro::select(sends), goro::channel_closed);  // reused: same answer
        // Closed while the select is parked on it.
        goro::Channel<int> later;
        goro::go([later] {
          goro::this_fiber::sleep_for(1ms);
          later.close();
        });
        sends[1] = goro::send(later, 1);
        CHECK_THROWS_AS(goro::select(sends), goro::channel_closed);
      },
      with_workers(2));
}

TEST_CASE("dynamic select: nil channel cases are never ready", "[select][dynamic]") {
  goro::run(
      [] {
        goro::Channel<int> nil = nullptr;
        std::vector<goro::SelectCase> cases;
        for (int i = 0; i < 10; ++i) {
          cases.emplace_back(goro::recv(nil));
          cases.emplace_back(goro::send(nil, i));
        }
        cases.emplace_back(goro::default_case());
        for (int i = 0; i < 100; ++i) CHECK(goro::select(cases) == 20);
        cases.back() = goro::timeout(5ms);
        CHECK(goro::select(cases) == 20);
      },
      with_workers(1));
}

TEST_CASE("dynamic select: misuse throws std::invalid_argument naming it, before any commit",
          "[select][dynamic]") {
  goro::run(
      [] {
        goro::Channel<int> ready(1), room(1);
        ready.send(1);
        MoveProbe value(3);
        goro::Channel<MoveProbe> probe_room(1);
        auto make = [&] {
          std::vector<goro::SelectCase> cases;
          cases.emplace_back(goro::recv(ready));
          cases.emplace_back(goro::send(probe_room, value));
          return cases;
        };
        auto check = [&](std::vector<goro::SelectCase> cases, const std::string& words) {
          try {
            goro::select(cases);
            FAIL("no exception for: " << words);
          } catch (const std::invalid_argument& e) {
            INFO(e.what());
            CHECK(std::string(e.what()).find(words) != std::string::npos);
          }
          CHECK(ready.size() == 1);  // nothing committed
          CHECK(probe_room.size() == 0);
          CHECK(!value.moved_from);
        };
        auto two_defaults = make();
        two_defaults.emplace_back(goro::default_case());
        two_defaults.emplace_back(goro::default_case());
        check(std::move(two_defaults), "at most one default_case");
        auto two_timeouts = make();
        two_timeouts.emplace_back(goro::timeout(1ms));
        two_timeouts.emplace_back(goro::timeout(1ms));
        check(std::move(two_timeouts), "at most one timeout case");
        auto both = make();
        both.emplace_back(goro::timeout(1ms));
        both.emplace_back(goro::default_case());
        check(std::move(both), "timeout and default_case cannot both appear");
        auto moved = make();
        goro::SelectCase taken = std::move(moved[0]);
        CHECK(moved[0].empty());
        check(std::move(moved), "moved from");
        // logic_error catches it too (invalid_argument is one).
        std::vector<goro::SelectCase> again;
        again.emplace_back(goro::default_case());
        again.emplace_back(goro::default_case());
        CHECK_THROWS_AS(goro::select(again), std::logic_error);
      },
      with_workers(1));
}

TEST_CASE("dynamic select: no heap allocation per select with up to 64 cases", "[select][dynamic]") {
  int n = static_cast<int>(scaled(20'000, 5'000, 1'000));
  std::uint64_t ready_allocs = 0, blocking_allocs = 0;
  bool all_inline = false;
  goro::run(
      [&] {
        // 64 buffered channels, always ready: each handler puts its value back.
        std::vector<goro::Channel<int>> c;
        for (int k = 0; k < 64; ++k) c.emplace_back(1);
        for (auto& ch : c) ch.send(1);
        std::int64_t sum = 0;
        std::vector<goro::SelectCase> cases;
        for (auto& ch : c) {
          cases.emplace_back(goro::recv(ch, [&sum, &ch](int v) {
            sum += v;
            ch.try_send(std::move(v));
          }));
        }
        // Ordinary cases of std::string too: recv, and send of an owned value.
        goro::Channel<std::string> text(1);
        std::string word = "w";
        cases.emplace_back(goro::recv(text, [&sum, &word](std::optional<std::string> v) {
          sum += static_cast<std::int64_t>(v ? v->size() : 0) + static_cast<std::int64_t>(word.size());
        }));
        cases.emplace_back(goro::send(text, std::string("owned"), [&sum, &word] { sum += word.size(); }));
        all_inline = std::all_of(cases.begin(), cases.end(), [](const auto& k) { return k.stored_inline(); });
        cases.erase(cases.begin() + 64, cases.end());  // back to the 64 always-ready ones
        for (int i = 0; i < 100; ++i) goro::select(cases);  // warm up
        std::uint64_t before = g_allocations.load();
        for (int i = 0; i < n; ++i) goro::select(cases);
        ready_allocs = g_allocations.load() - before;
        CHECK(sum == n + 100);

        // Blocking: 63 silent channels and one fed by another fiber, so every
        // select parks (the select2.go pattern, 64 wide).
        std::vector<goro::Channel<int>> quiet(63);
        goro::Channel<int> fed;
        int got = 0;
        std::vector<goro::SelectCase> wait;
        for (auto& q : quiet) wait.emplace_back(goro::recv(q));
        wait.emplace_back(goro::recv(fed, [&](int v) { got += v; }));
        auto feed = [fed, n] {
          for (int i = 0; i < n; ++i) fed.send(1);
        };
        goro::go(feed);
        for (int i = 0; i < n; ++i) goro::select(wait);  // warm up
        goro::go(feed);
        goro::this_fiber::yield();
        before = g_allocations.load();
        for (int i = 0; i < n; ++i) goro::select(wait);
        blocking_allocs = g_allocations.load() - before;
        CHECK(got == 2 * n);
      },
      with_workers(1));
  CHECK(all_inline);
  if (kCountsAllocations) {
    INFO(ready_allocs << " allocations in " << n << " ready selects, " << blocking_allocs
                      << " in " << n << " blocking ones");
    CHECK(ready_allocs == 0);
    CHECK(blocking_allocs < 64);  // not one per select (the spawned feeder is not per select)
  }
}

TEST_CASE("dynamic select: more than 64 cases and handlers too big to store inline", "[select][dynamic]") {
  goro::run(
      [] {
        constexpr int kChannels = 200;  // scratch beyond the inline 64
        std::vector<goro::Channel<int>> c;
        for (int k = 0; k < kChannels; ++k) c.emplace_back(1);
        std::vector<goro::SelectCase> cases;
        std::vector<int> hits(kChannels, 0);
        for (int k = 0; k < kChannels; ++k) {
          cases.emplace_back(goro::recv(c[k], [&hits, k](int) { hits[k]++; }));
          cases.emplace_back(goro::recv(c[k], [&hits, k](int) { hits[k]++; }));  // same channel twice
        }
        for (int k = 0; k < kChannels; ++k) c[k].send(k);
        for (int k = 0; k < kChannels; ++k) {
          std::size_t i = goro::select(cases);
          CHECK(c[i / 2].size() == 0);
        }
        CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));

        std::array<char, 512> big{};
        big[0] = 'x';
        char seen = 0;
        goro::SelectCase large = goro::recv(c[0], [big, &seen](int) { seen = big[0]; });
        CHECK(!large.stored_inline());
        std::vector<goro::SelectCase> one;
        one.push_back(std::move(large));
        c[0].send(1);
        CHECK(goro::select(one) == 0);
        CHECK(seen == 'x');
      },
      with_workers(1));
}

TEST_CASE("dynamic select: an empty list blocks forever (reported as deadlock)", "[select][dynamic]") {
  CHECK_THROWS_AS(goro::run(
                      [] {
                        std::vector<goro::SelectCase> none;
                        goro::select(none);
                      },
                      with_workers(1)),
                  goro::deadlock_error);
}

TEST_CASE("dynamic select: a fiber selects over channels fed by plain threads", "[select][dynamic][threads]") {
  const std::size_t workers = GORO_WORKERS();
  constexpr int kThreads = 4;
  int per = static_cast<int>(scaled(5'000, 1'000, 200));
  std::vector<goro::Channel<int>> in;
  for (int k = 0; k < kThreads; ++k) in.emplace_back(k);  // capacities 0..3
  std::vector<std::thread> senders;
  for (int k = 0; k < kThreads; ++k) {
    senders.emplace_back([ch = in[k], k, per] {
      for (int i = 0; i < per; ++i) ch.send(k * per + i);
      ch.close();
    });
  }
  const std::int64_t total = static_cast<std::int64_t>(kThreads) * per;
  std::int64_t sum = 0, count = 0;
  std::vector<int> last(kThreads, -1);
  bool in_order = true;
  goro::run(
      [&] {
        std::vector<goro::SelectCase> cases;
        std::vector<int> ids;  // ids[i]: the channel of cases[i]
        int closed_at = -1;
        for (int k = 0; k < kThreads; ++k) {
          ids.push_back(k);
          cases.emplace_back(goro::recv(in[k], [&, k](std::optional<int> v) {
            if (!v) {
              closed_at = k;
              return;
            }
            if (*v <= last[k]) in_order = false;  // FIFO per channel
            last[k] = *v;
            sum += *v;
            ++count;
          }));
        }
        int open = kThreads;
        for (std::int64_t round = 0; open > 0 && round < total + kThreads; ++round) {
          closed_at = -1;
          std::size_t i = goro::select(cases);
          if (closed_at >= 0) {
            REQUIRE(closed_at == ids[i]);
            cases.erase(cases.begin() + static_cast<std::ptrdiff_t>(i));  // after select returned
            ids.erase(ids.begin() + static_cast<std::ptrdiff_t>(i));
            --open;
          }
        }
        CHECK(open == 0);
      },
      with_threads(workers));
  for (auto& ch : in) {
    while (ch.recv()) {  // only if the select loop above failed: unblock the senders
    }
  }
  for (auto& t : senders) t.join();
  CHECK(count == total);
  CHECK(sum == total * (total - 1) / 2);
  CHECK(in_order);
}
