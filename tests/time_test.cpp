// after, Timer and Ticker: Go's time package semantics.
#include <atomic>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include "test_support.hpp"

using namespace std::chrono_literals;
using goro_test::with_workers;

TEST_CASE("after delivers the time once, after the duration", "[time]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [] {
        auto start = std::chrono::steady_clock::now();
        auto ch = goro::after(10ms);
        auto when = ch.recv();
        REQUIRE(when);
        CHECK(*when - start >= 10ms);
        CHECK(std::chrono::steady_clock::now() - start >= 10ms);
        CHECK(!ch.try_recv());
      },
      with_workers(workers));
}

TEST_CASE("after in a select: the first of a channel and a timer wins", "[time]") {
  goro::run(
      [] {
        goro::Channel<int> never;
        CHECK(goro::select(goro::recv(never), goro::recv(goro::after(5ms))) == 1);
      },
      with_workers(2));
}

TEST_CASE("Timer stop and reset return Go's values", "[time]") {
  goro::run(
      [] {
        goro::Timer t(1h);
        CHECK(t.stop());   // stopped before firing
        CHECK(!t.stop());  // already stopped
        CHECK(!t.reset(5ms));  // was not active
        CHECK(t.channel().recv());
        CHECK(!t.stop());  // already fired
        CHECK(!t.reset(1h));
        CHECK(t.reset(5ms));  // was active
        CHECK(t.channel().recv());
      },
      with_workers(2));
}

TEST_CASE("Ticker ticks until stopped", "[time]") {
  goro::run(
      [] {
        goro::Ticker ticker(2ms);
        auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < 5; ++i) REQUIRE(ticker.channel().recv());
        CHECK(std::chrono::steady_clock::now() - start >= 8ms);
        ticker.stop();
        while (ticker.channel().try_recv()) {
        }
        goro::this_fiber::sleep_for(10ms);
        CHECK(!ticker.channel().try_recv());
      },
      with_workers(2));
}

TEST_CASE("Ticker::reset changes the period and restarts a stopped ticker", "[time]") {
  goro::run(
      [] {
        goro::Ticker ticker(1h);
        goro::this_fiber::sleep_for(5ms);
        CHECK(!ticker.channel().try_recv());  // a period of an hour: nothing yet
        auto start = std::chrono::steady_clock::now();
        ticker.reset(2ms);
        for (int i = 0; i < 3; ++i) REQUIRE(ticker.channel().recv());
        CHECK(std::chrono::steady_clock::now() - start >= 6ms);
        ticker.stop();
        while (ticker.channel().try_recv()) {
        }
        goro::this_fiber::sleep_for(10ms);
        CHECK(!ticker.channel().try_recv());
        ticker.reset(1ms);  // a stopped ticker starts again
        REQUIRE(ticker.channel().recv());
        CHECK_THROWS_AS(ticker.reset(0ms), std::invalid_argument);
        CHECK_THROWS_WITH(ticker.reset(-1ms), Catch::Contains("goro::Ticker::reset()"));
        REQUIRE(ticker.channel().recv());  // the refused reset changed nothing
        ticker.reset(1h);
        while (ticker.channel().try_recv()) {
        }
        goro::this_fiber::sleep_for(10ms);
        CHECK(!ticker.channel().try_recv());  // back to an hour
      },
      with_workers(2));
}

TEST_CASE("Ticker reset and stop racing its ticks leave at most one schedule", "[time][threads]") {
  // The timer thread schedules each next tick while two threads reset and
  // stop the ticker. Were the node ever queued twice, the copy stop() does
  // not remove would keep ticking (or corrupt the heap).
  goro::Ticker ticker(std::chrono::microseconds(20));
  const int n = static_cast<int>(goro_test::scaled(20'000, 5'000, 1'000));
  auto hammer = [&](int seed) {
    for (int i = 0; i < n; ++i) {
      if ((i + seed) % 3 == 0) ticker.stop();
      else ticker.reset(std::chrono::microseconds(5 + (i * 7 + seed) % 40));
    }
  };
  std::thread a(hammer, 0), b(hammer, 1);
  int ticks = 0;
  for (int i = 0; i < 200; ++i) {
    if (ticker.channel().try_recv()) ++ticks;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  a.join();
  b.join();
  INFO("ticks seen while racing: " << ticks);
  ticker.reset(std::chrono::microseconds(20));  // still a working ticker
  CHECK(ticker.channel().recv());
  ticker.stop();
  while (ticker.channel().try_recv()) {
  }
  std::this_thread::sleep_for(5ms);
  CHECK(!ticker.channel().try_recv());
}

// timers_due_with() makes `crowd` after() timers due at `due` too, so the
// timer heap's run_due() takes them all off at once and fires them one by
// one: a timer it took first waits "in flight" while the crowd fires. Then
// it spins until `slack` past `due`, into that window.
std::vector<goro::RecvChannel<goro::TimePoint>> timers_due_with(std::chrono::steady_clock::time_point due,
                                                                 std::size_t crowd,
                                                                 std::chrono::microseconds slack) {
  std::vector<goro::RecvChannel<goro::TimePoint>> others;
  for (std::size_t i = 0; i < crowd; ++i) others.push_back(goro::after(due - std::chrono::steady_clock::now()));
  while (std::chrono::steady_clock::now() < due + slack) {
  }
  return others;
}

TEST_CASE("stop, reset and destruction settle a firing in flight: nothing arrives after them", "[time]") {
  // Go's reuse pattern, `if (!t.stop()) drain; t.reset(d)`, must leave
  // nothing stale, and no tick may follow Ticker::stop() or a destroyed
  // Timer, even when stop() comes while the firing is on its way.
  const int rounds = static_cast<int>(goro_test::scaled(150, 60, 30));
  int stale_timer = 0, late_tick = 0, late_destroyed = 0, in_flight_seen = 0;
  goro::run(
      [&] {
        for (int r = 0; r < rounds; ++r) {
          const auto due = std::chrono::steady_clock::now() + 2ms;
          goro::Timer timer(2ms);
          std::optional<goro::Ticker> ticker(std::in_place, 2ms);
          std::optional<goro::Timer> doomed(std::in_place, 2ms);
          auto tick = ticker->channel();
          auto doomed_channel = doomed->channel();
          auto crowd = timers_due_with(due, 2000, std::chrono::microseconds(100 + 50 * (r % 4)));
          if (!timer.stop()) {
            ++in_flight_seen;
            CHECK(timer.channel().try_recv());  // the firing is there by now
          }
          timer.reset(1h);
          ticker->stop();
          doomed.reset();  // ~Timer
          (void)tick.try_recv();
          (void)doomed_channel.try_recv();
          goro::this_fiber::sleep_for(3ms);
          if (timer.channel().try_recv()) ++stale_timer;
          if (tick.try_recv()) ++late_tick;
          if (doomed_channel.try_recv()) ++late_destroyed;
        }
      },
      with_workers(2));
  INFO("rounds where stop() came after the firing: " << in_flight_seen);
  CHECK(stale_timer == 0);
  CHECK(late_tick == 0);
  CHECK(late_destroyed == 0);
}

TEST_CASE("Timer reset racing its own firing keeps the timer heap intact", "[time]") {
  // reset() of a timer whose firing is in flight must not queue the node
  // again while run_due's list still holds it: two lists would share it,
  // one would skip the rest of its timers and both would fire it.
  const int rounds = static_cast<int>(goro_test::scaled(150, 60, 30));
  int missing = 0, fired = 0;
  goro::run(
      [&] {
        for (int r = 0; r < rounds; ++r) {
          const auto due = std::chrono::steady_clock::now() + 2ms;
          goro::Timer timer(2ms);
          auto crowd = timers_due_with(due, 2000, std::chrono::microseconds(100 + 50 * (r % 4)));
          timer.reset(0ns);  // fire again, at once
          for (auto& c : crowd) {
            if (goro::select(goro::recv(c), goro::timeout(2s)) != 0) ++missing;
            if (missing) return;  // one lost timer is enough: do not wait out the rest
          }
          if (goro::select(goro::recv(timer.channel()), goro::timeout(2s)) == 0) ++fired;
        }
      },
      with_workers(2));
  CHECK(missing == 0);
  CHECK(fired == rounds);
}

TEST_CASE("timers work on plain threads without a runtime", "[time][threads]") {
  auto start = std::chrono::steady_clock::now();
  CHECK(goro::after(5ms).recv());
  CHECK(std::chrono::steady_clock::now() - start >= 5ms);
  goro::Channel<int> never;
  CHECK(goro::select(goro::recv(never), goro::timeout(5ms)) == 1);
}

TEST_CASE("timers still pending when run() returns fire afterwards, though a fiber's deadline was earlier",
          "[time][threads]") {
  // The timer thread sleeps until the earliest deadline it saw. A fiber's
  // deadline (a sleep, a select timeout) is added without waking it, so when
  // the timer below is made it may be asleep for good: once the fiber's
  // deadline is gone and the workers with it, it must look again.
  enum class Shape { unwound_sleep, select_timeout_ended_early, context_deadline };
  const Shape shape = GENERATE(Shape::unwound_sleep, Shape::select_timeout_ended_early, Shape::context_deadline);
  // The timer thread runs, and sleeps with nothing pending. (The 10 s bounds
  // below only keep a failure from hanging the suite.)
  CHECK(goro::select(goro::recv(goro::after(0ms)), goro::timeout(10s)) == 0);
  goro::RecvChannel<goro::TimePoint> timer = nullptr;
  goro::Context ctx = goro::background();
  goro::run([&] {
    goro::Channel<int> early;
    goro::go([shape, early] {
      if (shape == Shape::select_timeout_ended_early) {
        goro::select(goro::recv(early), goro::timeout(200ms));
      } else {
        goro::this_fiber::sleep_for(200ms);  // unwound when main returns
      }
    });
    goro::this_fiber::sleep_for(1ms);  // the fiber's deadline is queued: the earliest
    if (shape == Shape::context_deadline) {
      ctx = goro::with_timeout(goro::background(), 300ms).first;  // later than the fiber's
    } else {
      timer = goro::after(300ms);
    }
    if (shape == Shape::select_timeout_ended_early) early.send(1);
  });
  INFO("shape " << static_cast<int>(shape));
  if (shape == Shape::context_deadline) {
    CHECK(goro::select(goro::recv(ctx.done()), goro::timeout(10s)) == 0);
    CHECK(ctx.err() == goro::errc::deadline_exceeded);
  } else {
    CHECK(goro::select(goro::recv(timer), goro::timeout(10s)) == 0);
  }
}

TEST_CASE("a select timeout parks fibers, not threads: 1,000 concurrent timeouts", "[time]") {
  const int n = goro_test::kTsan ? 200 : 1000;
  std::atomic<int> timed_out{0};
  auto start = std::chrono::steady_clock::now();
  goro::run(
      [&] {
        goro::WaitGroup wg;
        goro::Channel<int> never;
        for (int i = 0; i < n; ++i)
          wg.go([&] {
            if (goro::select(goro::recv(never), goro::timeout(50ms)) == 1) timed_out++;
          });
        wg.wait();
      },
      with_workers(2));
  CHECK(timed_out.load() == n);
  CHECK(std::chrono::steady_clock::now() - start < 5s);
}

// "Forever" written as the largest duration or time point must wait, not
// overflow into the past and fire at once; a negative one is "now".
TEST_CASE("deadlines saturate: the largest durations and time points never fire, negative ones fire now",
          "[time][deadline]") {
  using namespace std::chrono;
  using HoursOnSystemClock = time_point<system_clock, hours>;
  goro::Options options;
  options.workers = 2;
  options.detect_deadlock = false;  // the sleepers below never wake; main's return unwinds them
  goro::run(
      [] {
        std::atomic<int> woke{0};
        goro::go([&] { goro::this_fiber::sleep_for(hours::max()); ++woke; });
        goro::go([&] { goro::this_fiber::sleep_until(steady_clock::time_point::max()); ++woke; });
        goro::go([&] { goro::this_fiber::sleep_until(HoursOnSystemClock::max()); ++woke; });
        goro::go([&] {
          goro::Channel<int> never;
          goro::select(goro::recv(never), goro::timeout(hours::max()));
          ++woke;
        });
        goro::Timer timer(hours::max());
        auto later = goro::after(seconds::max());
        goro::Ticker ticker(hours::max());  // a valid period, not a non-positive one
        auto [ctx, cancel] = goro::with_deadline(goro::background(), HoursOnSystemClock::max());
        goro::this_fiber::sleep_for(30ms);
        CHECK(woke.load() == 0);
        CHECK_FALSE(timer.channel().try_recv());
        CHECK_FALSE(later.try_recv());
        CHECK_FALSE(ticker.channel().try_recv());
        CHECK_FALSE(ctx.err());
        CHECK(timer.stop());  // still armed
        CHECK_FALSE(timer.reset(hours::max()));
        CHECK(timer.stop());
        cancel();

        const auto start = steady_clock::now();
        goro::this_fiber::sleep_for(-1s);
        goro::this_fiber::sleep_until(steady_clock::time_point::min());
        goro::this_fiber::sleep_until(HoursOnSystemClock::min());
        CHECK(goro::Timer(-5ms).channel().recv());
        CHECK(goro::after(hours::min()).recv());
        goro::this_fiber::sleep_for(duration<double>(std::numeric_limits<double>::quiet_NaN()));
        goro::this_fiber::sleep_for(duration<double>(-std::numeric_limits<double>::infinity()));
        goro::Timer forever{duration<double>(std::numeric_limits<double>::infinity())};
        CHECK(forever.stop());  // still armed
        // 32-bit counts convert exactly where they fit and saturate where not.
        goro::Timer hours32{duration<int, std::ratio<3600>>(std::numeric_limits<int>::max())};
        CHECK(hours32.stop());
        auto [ms32, cancel_ms32] =
            goro::with_timeout(goro::background(), duration<int, std::milli>(std::numeric_limits<int>::max()));
        REQUIRE(ms32.deadline());
        const auto left = *ms32.deadline() - steady_clock::now();  // INT_MAX ms: 24.86 days
        CHECK(left > hours(24 * 24));
        CHECK(left < hours(25 * 24));
        cancel_ms32();
        auto [past, cancel_past] = goro::with_timeout(goro::background(), hours::min());
        CHECK(past.err() == goro::errc::deadline_exceeded);
        cancel_past();
        CHECK(steady_clock::now() - start < 5s);
      },
      options);
}

TEST_CASE("Timer and Ticker are movable", "[time]") {
  goro::run(
      [] {
        auto make = [] { return goro::Timer(std::chrono::milliseconds(2)); };
        goro::Timer t = make();
        goro::Timer moved = std::move(t);
        CHECK(moved.channel().recv());
        std::vector<goro::Ticker> tickers;
        tickers.emplace_back(std::chrono::milliseconds(1));
        tickers.push_back(goro::Ticker(std::chrono::milliseconds(1)));
        for (auto& k : tickers) CHECK(k.channel().recv());
      },
      with_workers(2));
}
