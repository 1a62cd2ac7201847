// The sync toolbox: Mutex, RWMutex, Once, Cond, Semaphore, SyncMap,
// AtomicValue, ErrGroup, from fibers and plain threads.
#include <goro/channel.hpp>
#include <goro/context.hpp>
#include <goro/sync.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "test_support.hpp"
#include "throwing_move.hpp"

using goro_test::with_threads;

using namespace std::chrono_literals;
using goro_test::scaled;
using goro_test::with_workers;

namespace {

// Spins (yielding) until `pred` holds or `max_rounds` yields went by;
// returns whether it held. Tests use it where a broken primitive would
// otherwise hang.
template <class Pred>
bool eventually(Pred pred, long max_rounds = 2'000'000) {
  for (long i = 0; i < max_rounds; ++i) {
    if (pred()) return true;
    goro::this_fiber::yield();
  }
  return pred();
}

// Fragile is a SyncMap value whose copies and moves (and, if kAssignable,
// assignments) throw when its budget says so, leaving their source as it
// was. A move that succeeds empties its source (value -1), so a value moved
// out and never put back shows.
template <bool kAssignable>
struct Fragile {
  int value;
  goro_test::MoveBudget* budget;

  Fragile(int v, goro_test::MoveBudget& b) noexcept : value(v), budget(&b) {}
  Fragile(const Fragile& o) : value(o.value), budget(o.budget) { check(); }
  Fragile(Fragile&& o) : value(o.value), budget(o.budget) {
    check();
    o.value = -1;
  }
  Fragile& operator=(const Fragile& o)
    requires kAssignable
  {
    check();
    value = o.value;
    return *this;
  }
  Fragile& operator=(Fragile&& o)
    requires kAssignable
  {
    check();
    value = std::exchange(o.value, -1);
    return *this;
  }
  bool operator==(const Fragile& o) const { return value == o.value; }

  void check() const {
    if (!budget->allows_move()) throw std::runtime_error("Fragile: copy or move failed");
  }
};

// fail_each_step() runs `op` on a fresh map {1: 1}, first with its first
// copy or move of a value failing, then its second, ... until op gets
// through. After each failed call the map must still be {1: 1}. op disarms
// the budget (moves_left = -1) right after its call, before checking the
// result. Returns how many failures were injected.
template <class V, class Op>
int fail_each_step(goro_test::MoveBudget& budget, Op op) {
  for (int k = 0; k < 20; ++k) {
    goro::SyncMap<int, V> m;
    m.store(1, V(1, budget));
    budget.moves_left = k;
    bool threw = false;
    try {
      op(m);
    } catch (const std::runtime_error&) {
      threw = true;
    }
    budget.moves_left = -1;
    if (!threw) return k;
    CAPTURE(k);
    auto one = m.load(1);
    CHECK((one && one->value == 1));
    int entries = 0;
    m.range([&](const int&, const V&) { return ++entries, true; });
    CHECK(entries == 1);
  }
  FAIL("the call never got through");
  return -1;
}

}  // namespace

// ---------------------------------------------------------------------------
// Mutex

TEST_CASE("Mutex: the SafeCounter seed program counts exactly", "[mutex][seed]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = static_cast<int>(scaled(1000, 200, 40));
  const int increments = static_cast<int>(scaled(1000, 200, 50));
  struct SafeCounter {
    goro::Mutex mu;
    std::int64_t value = 0;  // guarded by mu; deliberately not atomic
  } counter;
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int f = 0; f < fibers; ++f) {
          wg.go([&] {
            for (int i = 0; i < increments; ++i) {
              std::lock_guard guard(counter.mu);
              std::int64_t v = counter.value;
              goro::this_fiber::yield();  // hold the lock across a switch
              counter.value = v + 1;
            }
          });
        }
        wg.wait();
      },
      with_workers(workers));
  CHECK(counter.value == std::int64_t{fibers} * increments);
}

TEST_CASE("Mutex: try_lock and the std lock adaptors", "[mutex]") {
  goro::Mutex mu;
  CHECK(mu.try_lock());
  CHECK_FALSE(mu.try_lock());
  mu.unlock();
  {
    std::lock_guard guard(mu);
    CHECK_FALSE(mu.try_lock());
  }
  {
    std::unique_lock lock(mu, std::try_to_lock);
    CHECK(lock.owns_lock());
  }
  goro::Mutex other;
  {
    std::scoped_lock both(mu, other);
    CHECK_FALSE(mu.try_lock());
    CHECK_FALSE(other.try_lock());
  }
  CHECK(mu.try_lock());
  CHECK(other.try_lock());
  mu.unlock();
  other.unlock();
}

TEST_CASE("Mutex: unlock of an unlocked mutex throws std::logic_error naming it", "[mutex][misuse]") {
  goro::Mutex mu;
  CHECK_THROWS_AS(mu.unlock(), std::logic_error);
  CHECK_THROWS_WITH(mu.unlock(), Catch::Contains("goro::Mutex") && Catch::Contains("unlock of unlocked"));
  mu.lock();  // the failed unlocks changed nothing
  CHECK_FALSE(mu.try_lock());
  mu.unlock();
  CHECK_THROWS_AS(mu.unlock(), std::logic_error);
}

TEST_CASE("Mutex: shared by fibers and plain threads", "[mutex][threads]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = static_cast<int>(scaled(64, 32, 8));
  const int threads = 3;
  const int per_party = static_cast<int>(scaled(20'000, 4'000, 500));
  goro::Mutex mu;
  std::int64_t value = 0;  // guarded by mu
  goro::run(
      [&] {
        goro::WaitGroup wg;
        auto work = [&] {
          for (int i = 0; i < per_party; ++i) {
            std::lock_guard guard(mu);
            ++value;
            if (i % 64 == 0) goro::this_fiber::yield();  // on a thread: yields the thread
          }
        };
        for (int f = 0; f < fibers; ++f) wg.go(work);
        std::vector<std::thread> pool;
        wg.add(threads);
        for (int t = 0; t < threads; ++t) {
          pool.emplace_back([&] {
            work();
            wg.done();
          });
        }
        wg.wait();  // parks the main fiber (a join here would block its worker)
        for (auto& t : pool) t.join();
      },
      with_threads(workers));
  CHECK(value == std::int64_t{fibers + threads} * per_party);
}

TEST_CASE("Mutex: a waiting thread is not starved by a fiber that re-locks at once", "[mutex][fairness]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<bool> thread_got_it{false};
  std::int64_t hog_rounds = 0;
  const std::int64_t cap = 200'000'000;
  goro::run(
      [&] {
        goro::Mutex mu;
        std::atomic<bool> thread_waiting{false};
        mu.lock();
        std::thread waiter([&] {
          thread_waiting = true;
          mu.lock();  // without starvation mode the hog could barge forever
          thread_got_it = true;
          mu.unlock();
        });
        while (!thread_waiting) std::this_thread::yield();
        std::this_thread::sleep_for(2ms);  // the thread is queued by now, most likely
        mu.unlock();
        while (!thread_got_it && hog_rounds < cap) {
          mu.lock();
          ++hog_rounds;
          mu.unlock();
        }
        waiter.join();
      },
      with_workers(workers));
  CHECK(thread_got_it);
  CHECK(hog_rounds < cap);
}

TEST_CASE("Mutex: a waiting fiber is not starved by a fiber that re-locks at once and never blocks",
          "[mutex][fairness]") {
  // The hog never makes a blocking call, so it keeps its worker (as
  // documented); the waiter it wakes must still get to run on another one,
  // mark itself starving and be handed the lock. (With one worker nothing
  // else can run: pitfalls.md, "Polling in a loop".)
  const std::size_t workers = GENERATE(2, 4);
  std::atomic<bool> stop{false};
  bool got_it_while_hogged = false;
  goro::run(
      [&] {
        goro::Mutex mu;
        goro::WaitGroup hog_done;
        std::atomic<bool> hogging{false};
        hog_done.add(1);
        goro::go([&] {
          hogging = true;
          while (!stop.load()) {
            mu.lock();
            const auto until = std::chrono::steady_clock::now() + 20us;
            while (std::chrono::steady_clock::now() < until) {
            }
            mu.unlock();
          }
          hog_done.done();
        });
        while (!hogging) goro::this_fiber::yield();
        // Ends the hog after 30 s, so that a failure does not hang the suite.
        std::thread watchdog([&] {
          for (int i = 0; i < 30'000 && !stop.load(); ++i) std::this_thread::sleep_for(1ms);
          stop = true;
        });
        mu.lock();
        got_it_while_hogged = !stop.load();
        mu.unlock();
        stop = true;
        hog_done.wait();
        watchdog.join();
      },
      with_workers(workers));
  CHECK(got_it_while_hogged);
}

TEST_CASE("Mutex: starvation mode takes turns among long waiters", "[mutex][fairness]") {
  // Every fiber re-locks right after unlocking and holds the lock across a
  // sleep, so in normal mode the running fiber would win again and again
  // (barging). Waiters that wait over 1 ms switch the mutex to hand-off, so
  // no fiber gets many turns in a row while others wait.
  //
  // The fibers start together (after all have run once): a waiter is
  // woken into its worker's queue, and only when it runs can it notice it
  // has waited over 1 ms. Under TSan a fiber's first run takes 1-3 ms, so
  // a woken waiter queued behind siblings that never ran stayed there for
  // 10 ms and more while the holder barged. The hold is longer under TSan
  // for the same reason: there, 8 workers on 2 cores wait milliseconds for
  // a CPU, and each turn must outlast that for the count of turns to mean
  // what it means in the plain build.
  const std::size_t workers = GORO_WORKERS();
  const int fibers = 10;
  const int rounds = 20;
  const auto hold = goro_test::kTsan ? std::chrono::microseconds(1000) : std::chrono::microseconds(200);
  std::vector<int> order;  // guarded by the mutex
  goro::run(
      [&] {
        goro::Mutex mu;
        goro::WaitGroup wg, started;
        goro::Channel<int> start_line;
        started.add(fibers);
        for (int f = 0; f < fibers; ++f) {
          wg.go([&, f] {
            started.done();
            start_line.recv();  // returns once closed
            for (int r = 0; r < rounds; ++r) {
              std::lock_guard guard(mu);
              order.push_back(f);
              goro::this_fiber::sleep_for(hold);
            }
          });
        }
        started.wait();
        start_line.close();
        wg.wait();
      },
      with_workers(workers));
  REQUIRE(order.size() == static_cast<std::size_t>(fibers * rounds));
  // Longest run of consecutive turns by one fiber, ignoring the tail where
  // few fibers are left.
  std::size_t longest = 0, run = 0;
  for (std::size_t i = 0; i + fibers < order.size(); ++i) {
    run = (i > 0 && order[i] == order[i - 1]) ? run + 1 : 1;
    longest = std::max(longest, run);
  }
  CHECK(longest <= 10);
}

// ---------------------------------------------------------------------------
// RWMutex

TEST_CASE("RWMutex: readers overlap", "[rwmutex]") {
  const std::size_t workers = GORO_WORKERS();
  const int readers = 8;
  std::atomic<int> inside{0};
  std::atomic<int> saw_all{0};
  goro::run(
      [&] {
        goro::RWMutex rw;
        goro::WaitGroup wg;
        for (int r = 0; r < readers; ++r) {
          wg.go([&] {
            std::shared_lock lock(rw);
            inside.fetch_add(1);
            // Only possible if every reader is inside at once.
            if (eventually([&] { return inside.load() == readers; }, 1'000'000)) saw_all.fetch_add(1);
          });
        }
        wg.wait();
      },
      with_workers(workers));
  CHECK(saw_all.load() == readers);
}

TEST_CASE("RWMutex: a writer excludes readers and other writers", "[rwmutex]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = static_cast<int>(scaled(40, 20, 8));
  const int rounds = static_cast<int>(scaled(300, 100, 20));
  std::atomic<int> readers_in{0};
  std::atomic<int> writers_in{0};
  std::atomic<int> violations{0};
  std::int64_t shared_value = 0;  // written under the write lock only
  goro::run(
      [&] {
        goro::RWMutex rw;
        goro::WaitGroup wg;
        for (int f = 0; f < fibers; ++f) {
          wg.go([&, f] {
            for (int r = 0; r < rounds; ++r) {
              if ((f + r) % 4 == 0) {
                std::unique_lock lock(rw);
                if (writers_in.fetch_add(1) != 0 || readers_in.load() != 0) violations.fetch_add(1);
                std::int64_t v = shared_value;
                goro::this_fiber::yield();
                shared_value = v + 1;
                writers_in.fetch_sub(1);
              } else {
                std::shared_lock lock(rw);
                readers_in.fetch_add(1);
                if (writers_in.load() != 0) violations.fetch_add(1);
                goro::this_fiber::yield();
                readers_in.fetch_sub(1);
              }
            }
          });
        }
        wg.wait();
      },
      with_workers(workers));
  CHECK(violations.load() == 0);
  std::int64_t writes = 0;
  for (int f = 0; f < fibers; ++f) {
    for (int r = 0; r < rounds; ++r) writes += (f + r) % 4 == 0;
  }
  CHECK(shared_value == writes);
}

TEST_CASE("RWMutex: a writer is not starved by a flood of readers", "[rwmutex][fairness]") {
  // Reader fibers overlap each other continuously (each holds the read lock
  // across a yield), so at any moment some reader holds the lock: only
  // writer priority (a waiting writer stops new readers) lets a writer in
  // before the readers give up at `cap`. The writer is a plain thread, so
  // the test does not depend on how fibers are scheduled. `cap` is large:
  // it is only reached (slowly) if the writer starves.
  const std::size_t workers = GORO_WORKERS();
  const int readers = 16;
  const long cap = 2'000'000;
  std::atomic<long> reads{0};
  std::atomic<bool> writer_done{false};
  std::atomic<long> reads_when_writer_got_in{-1};
  goro::run(
      [&] {
        goro::RWMutex rw;
        goro::WaitGroup wg;
        for (int r = 0; r < readers; ++r) {
          wg.go([&] {
            while (!writer_done.load() && reads.load() < cap) {
              std::shared_lock lock(rw);
              reads.fetch_add(1);
              goro::this_fiber::yield();
            }
          });
        }
        std::thread writer([&] {
          while (reads.load() < readers) std::this_thread::yield();  // the flood is on
          std::unique_lock lock(rw);
          reads_when_writer_got_in = reads.load();
          writer_done = true;
        });
        wg.wait();
        writer.join();
      },
      with_threads(workers));
  CHECK(writer_done.load());
  CHECK(reads_when_writer_got_in.load() >= readers);
  CHECK(reads_when_writer_got_in.load() < cap);
}

TEST_CASE("RWMutex: blocked readers are admitted after the writer", "[rwmutex]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        goro::RWMutex rw;
        std::atomic<int> readers_done{0};
        rw.lock();
        goro::WaitGroup wg;
        for (int r = 0; r < 10; ++r) {
          wg.go([&] {
            std::shared_lock lock(rw);
            readers_done.fetch_add(1);
          });
        }
        for (int i = 0; i < 100; ++i) goro::this_fiber::yield();
        CHECK(readers_done.load() == 0);
        CHECK_FALSE(rw.try_lock_shared());
        rw.unlock();
        wg.wait();
        CHECK(readers_done.load() == 10);
        CHECK(rw.try_lock());
        rw.unlock();
      },
      with_workers(workers));
}

TEST_CASE("RWMutex: try_lock variants", "[rwmutex]") {
  goro::RWMutex rw;
  CHECK(rw.try_lock_shared());
  CHECK(rw.try_lock_shared());
  CHECK_FALSE(rw.try_lock());
  rw.unlock_shared();
  rw.unlock_shared();
  CHECK(rw.try_lock());
  CHECK_FALSE(rw.try_lock_shared());
  CHECK_FALSE(rw.try_lock());
  rw.unlock();
}

TEST_CASE("RWMutex: misuse throws std::logic_error naming it", "[rwmutex][misuse]") {
  goro::RWMutex rw;
  CHECK_THROWS_WITH(rw.unlock(), Catch::Contains("goro::RWMutex") && Catch::Contains("unlock"));
  CHECK_THROWS_AS(rw.unlock_shared(), std::logic_error);
  rw.lock();
  CHECK_THROWS_AS(rw.unlock_shared(), std::logic_error);  // held for writing, not reading
  rw.unlock();
  rw.lock_shared();
  CHECK_THROWS_AS(rw.unlock(), std::logic_error);  // held for reading, not writing
  rw.unlock_shared();
  CHECK(rw.try_lock());
  rw.unlock();
}

TEST_CASE("RWMutex: rlocker() with std::lock_guard takes a read lock that excludes writers",
          "[rwmutex][rlocker]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        goro::RWMutex rw;
        std::atomic<bool> writer_in{false};
        goro::WaitGroup wg;
        {
          auto reader = rw.rlocker();
          std::lock_guard lock(reader);  // rw.lock_shared()
          CHECK_FALSE(rw.try_lock());    // a reader holds it: no writer
          CHECK(rw.try_lock_shared());   // but other readers share it
          rw.unlock_shared();
          wg.go([&] {
            std::lock_guard write(rw);
            writer_in = true;
          });
          for (int i = 0; i < 200; ++i) goro::this_fiber::yield();
          CHECK_FALSE(writer_in.load());  // the writer waits for our read lock
        }                                 // rw.unlock_shared(): the writer gets in
        wg.wait();
        CHECK(writer_in.load());
        // While a writer holds it, the RLocker's lock waits.
        rw.lock();
        auto reader = rw.rlocker();
        CHECK_FALSE(reader.try_lock());
        std::atomic<bool> reader_in{false};
        wg.go([&, reader]() mutable {
          std::unique_lock lock(reader);
          reader_in = true;
        });
        for (int i = 0; i < 200; ++i) goro::this_fiber::yield();
        CHECK_FALSE(reader_in.load());
        rw.unlock();
        wg.wait();
        CHECK(reader_in.load());
        CHECK(rw.try_lock());  // every read lock was released
        rw.unlock();
      },
      with_workers(workers));
}

TEST_CASE("RWMutex: rlocker() misuse throws like unlock_shared()", "[rwmutex][rlocker][misuse]") {
  goro::RWMutex rw;
  auto reader = rw.rlocker();
  CHECK_THROWS_WITH(reader.unlock(), Catch::Contains("goro::RWMutex") && Catch::Contains("unlock_shared"));
  rw.lock();
  CHECK_THROWS_AS(reader.unlock(), std::logic_error);  // held for writing, not reading
  rw.unlock();
}

// ---------------------------------------------------------------------------
// Once

TEST_CASE("Once: 10 fibers, the body runs once and everyone sees its effect", "[once][seed]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> calls{0};
  std::atomic<int> saw_effect{0};
  goro::run(
      [&] {
        goro::Once once;
        int config = 0;  // written by the once body only
        goro::WaitGroup wg;
        for (int f = 0; f < 10; ++f) {
          wg.go([&] {
            once.call([&] {
              calls.fetch_add(1);
              goro::this_fiber::sleep_for(1ms);  // the others arrive and wait meanwhile
              config = 42;
            });
            if (config == 42) saw_effect.fetch_add(1);
          });
        }
        wg.wait();
        CHECK(once.done());
      },
      with_workers(workers));
  CHECK(calls.load() == 1);
  CHECK(saw_effect.load() == 10);
}

TEST_CASE("Once: a throwing body lets the next caller try again", "[once]") {
  goro::Once once;
  int attempts = 0;
  CHECK_THROWS_AS(once.call([&] {
    ++attempts;
    throw std::runtime_error("first attempt fails");
  }),
                  std::runtime_error);
  CHECK_FALSE(once.done());
  once.call([&](int add) { attempts += add; }, 10);
  CHECK(attempts == 11);
  CHECK(once.done());
  once.call([&] { attempts = -1; });  // done: not called
  CHECK(attempts == 11);
}

TEST_CASE("Once: a call from inside its own body throws std::logic_error", "[once][misuse]") {
  goro::Once once;
  CHECK_THROWS_WITH(once.call([&] { once.call([] {}); }), Catch::Contains("goro::Once"));
  CHECK_FALSE(once.done());
  once.call([] {});
  CHECK(once.done());
}

// ---------------------------------------------------------------------------
// Cond

TEST_CASE("Cond: a bounded queue with signal", "[cond]") {
  const std::size_t workers = GORO_WORKERS();
  const int items = static_cast<int>(scaled(20'000, 5'000, 500));
  std::int64_t sum = 0;
  goro::run(
      [&] {
        goro::Mutex mu;
        goro::Cond not_empty(mu), not_full(mu);
        std::deque<int> queue;  // guarded by mu
        const std::size_t capacity = 8;
        goro::WaitGroup wg;
        wg.go([&] {
          for (int i = 1; i <= items; ++i) {
            std::unique_lock lock(mu);
            not_full.wait([&] { return queue.size() < capacity; });
            queue.push_back(i);
            not_empty.signal();
          }
        });
        wg.go([&] {
          for (int i = 1; i <= items; ++i) {
            std::unique_lock lock(mu);
            while (queue.empty()) not_empty.wait();
            sum += queue.front();
            queue.pop_front();
            not_full.signal();
          }
        });
        wg.wait();
      },
      with_workers(workers));
  CHECK(sum == std::int64_t{items} * (items + 1) / 2);
}

TEST_CASE("Cond: broadcast wakes every waiter, fibers and threads", "[cond]") {
  const std::size_t workers = GORO_WORKERS();
  const int fibers = 20;
  std::atomic<int> woken{0};
  goro::run(
      [&] {
        goro::Mutex mu;
        goro::Cond cond(mu);
        bool go_on = false;  // guarded by mu
        int waiting = 0;     // guarded by mu
        goro::WaitGroup wg;
        for (int f = 0; f < fibers; ++f) {
          wg.go([&] {
            std::unique_lock lock(mu);
            ++waiting;
            cond.wait([&] { return go_on; });
            woken.fetch_add(1);
          });
        }
        wg.add(1);
        std::thread plain([&] {
          {
            std::unique_lock lock(mu);
            ++waiting;
            cond.wait([&] { return go_on; });
            woken.fetch_add(1);
          }
          wg.done();
        });
        CHECK(eventually([&] {
          std::lock_guard guard(mu);
          return waiting == fibers + 1;
        }));
        {
          std::lock_guard guard(mu);
          go_on = true;
        }
        cond.broadcast();
        wg.wait();
        plain.join();
      },
      with_workers(workers));
  CHECK(woken.load() == fibers + 1);
}

TEST_CASE("Cond: signal wakes exactly one waiter", "[cond]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        goro::Mutex mu;
        goro::Cond cond(mu);
        int tokens = 0;  // guarded by mu
        int waiting = 0;
        std::atomic<int> woken{0};
        goro::WaitGroup wg;
        for (int f = 0; f < 3; ++f) {
          wg.go([&] {
            std::unique_lock lock(mu);
            ++waiting;
            while (tokens == 0) cond.wait();
            --tokens;
            woken.fetch_add(1);
          });
        }
        CHECK(eventually([&] {
          std::lock_guard guard(mu);
          return waiting == 3;
        }));
        {
          std::lock_guard guard(mu);
          tokens = 1;
        }
        cond.signal();
        CHECK(eventually([&] { return woken.load() == 1; }));
        for (int i = 0; i < 200; ++i) goro::this_fiber::yield();
        CHECK(woken.load() == 1);
        {
          std::lock_guard guard(mu);
          tokens = 2;
        }
        cond.broadcast();
        wg.wait();
        CHECK(woken.load() == 3);
      },
      with_workers(workers));
}

TEST_CASE("Cond: wait without holding the mutex throws std::logic_error", "[cond][misuse]") {
  goro::Mutex mu;
  goro::Cond cond(mu);
  CHECK_THROWS_WITH(cond.wait(), Catch::Contains("goro::Cond"));
  CHECK(&cond.mutex() == &mu);
}

TEST_CASE("Cond: a waiter still parked when main returns is unwound with the mutex released",
          "[cond][unwind]") {
  goro::Mutex mu;
  goro::Cond cond(mu);
  goro::run(
      [&] {
        goro::go([&] {
          std::unique_lock lock(mu);
          cond.wait();  // never signalled
        });
        for (int i = 0; i < 100; ++i) goro::this_fiber::yield();
      },
      with_workers(2));
  // The unwound waiter re-locked the mutex and its unique_lock released it.
  CHECK(mu.try_lock());
  mu.unlock();
}

// A Cond waiter unwound while its mutex is held by a lock nobody will ever
// release (locked without a guard by a fiber that was itself unwound, or by
// main, which returned) must not keep run() from returning: once nothing
// else can move, the waiter adopts that hold and its guard releases it.
TEST_CASE("Cond: waiters unwound while their mutex's holder abandoned it still let run end", "[cond][unwind]") {
  enum class Holder { unwound_fiber, main, deadlocked_fiber };
  for (std::size_t workers : {1, 2}) {
    for (Holder holder : {Holder::unwound_fiber, Holder::main, Holder::deadlocked_fiber}) {
      CAPTURE(workers, static_cast<int>(holder));
      goro::Mutex mu;
      goro::Cond cond(mu);
      std::atomic<int> left{0};
      auto body = [&] {
        goro::Channel<int> never, waiting(2);
        for (int i = 0; i < 2; ++i) {
          goro::go([&] {
            struct CountLeaving {
              std::atomic<int>& left;
              ~CountLeaving() { ++left; }
            } count{left};
            std::unique_lock lock(mu);
            waiting.send(1);  // buffered: sent with the mutex held
            cond.wait();      // never signalled
          });
          (void)waiting.recv();
        }
        if (holder == Holder::main) {
          mu.lock();  // free only once both waiters are parked in wait()
          return;     // holding it
        }
        goro::Channel<int> locked(1);
        goro::go([&, never, locked]() mutable {
          mu.lock();  // Go style, no guard: the unwinding leaves it locked
          locked.send(1);
          (void)never.recv();
          mu.unlock();
        });
        (void)locked.recv();
        if (holder == Holder::deadlocked_fiber) (void)never.recv();
      };
      if (holder == Holder::deadlocked_fiber) {
        CHECK_THROWS_AS(goro::run(body, with_workers(workers)), goro::deadlock_error);
      } else {
        goro::run(body, with_workers(workers));
      }
      CHECK(left.load() == 2);
      // The last waiter's guard released the adopted hold.
      CHECK(mu.try_lock());
      mu.unlock();
    }
  }
}

TEST_CASE("Cond: may be destroyed once its waiters are woken, before they re-lock the mutex", "[cond]") {
  // As std::condition_variable allows: the notifier, holding the mutex,
  // wakes the waiters and destroys the Cond at once; the waiters re-lock the
  // mutex after that and must touch nothing of the Cond.
  SECTION("the Cond's memory is freed at once (ASan sees any later use)") {
    const std::size_t workers = GORO_WORKERS();
    const int rounds = static_cast<int>(scaled(300, 100, 30));
    goro::run(
        [&] {
          for (int r = 0; r < rounds; ++r) {
            const bool one = r % 2 == 0;  // signal() one waiter, or broadcast() to three
            const int waiters = one ? 1 : 3;
            goro::Mutex mu;  // outlives the Cond
            auto cond = std::make_unique<goro::Cond>(mu);
            bool ready = false;  // guarded by mu
            int waiting = 0;     // guarded by mu
            goro::WaitGroup wg;
            for (int w = 0; w < waiters; ++w) {
              wg.go([&, c = cond.get()] {
                std::unique_lock lock(mu);
                ++waiting;
                c->wait([&] { return ready; });
              });
            }
            CHECK(eventually([&] {
              std::lock_guard guard(mu);
              return waiting == waiters;
            }));
            {
              std::lock_guard guard(mu);
              ready = true;
              if (one) cond->signal(); else cond->broadcast();
              cond.reset();  // every waiter is woken
            }
            wg.wait();
          }
        },
        with_workers(workers));
  }
  SECTION("the Cond's storage holds a Cond of another mutex by the time the waiter runs") {
    // One worker: the woken waiter runs only once the notifier parks, so it
    // finds the new Cond in the old one's place. A wait() that still read
    // the Cond would re-lock `other` instead of `mu`.
    bool locked_other = false;
    goro::run(
        [&] {
          goro::Mutex mu, other;
          alignas(goro::Cond) unsigned char storage[sizeof(goro::Cond)];
          goro::Cond* cond = new (storage) goro::Cond(mu);
          bool ready = false;    // guarded by mu
          bool waiting = false;  // guarded by mu
          goro::WaitGroup wg;
          wg.go([&] {
            std::unique_lock lock(mu);
            waiting = true;
            cond->wait([&] { return ready; });
            if (other.try_lock()) {
              other.unlock();
            } else {  // wait() re-locked `other`: put things right for `lock`
              locked_other = true;
              other.unlock();
              mu.lock();
            }
          });
          CHECK(eventually([&] {
            std::lock_guard guard(mu);
            return waiting;
          }));
          {
            std::lock_guard guard(mu);
            ready = true;
            cond->broadcast();
            cond->~Cond();
            cond = new (storage) goro::Cond(other);
          }
          wg.wait();
          cond->~Cond();
        },
        with_workers(1));
    CHECK_FALSE(locked_other);
  }
}

// ---------------------------------------------------------------------------
// Semaphore

TEST_CASE("Semaphore: bounds concurrent holders under 100 fibers", "[semaphore]") {
  const std::size_t workers = GORO_WORKERS();
  const int limit = 5;
  std::atomic<int> holders{0};
  std::atomic<int> peak{0};
  std::atomic<int> finished{0};
  goro::run(
      [&] {
        goro::Semaphore sem(limit);
        goro::WaitGroup wg;
        for (int f = 0; f < 100; ++f) {
          wg.go([&] {
            for (int r = 0; r < 3; ++r) {
              sem.acquire();
              int now = holders.fetch_add(1) + 1;
              int seen = peak.load();
              while (now > seen && !peak.compare_exchange_weak(seen, now)) {
              }
              goro::this_fiber::yield();
              holders.fetch_sub(1);
              sem.release();
            }
            finished.fetch_add(1);
          });
        }
        wg.wait();
        CHECK(sem.available() == limit);
      },
      with_workers(workers));
  CHECK(finished.load() == 100);
  CHECK(peak.load() <= limit);
  CHECK(peak.load() >= 1);
}

TEST_CASE("Semaphore: weighted acquire is FIFO, a large request is not starved", "[semaphore]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        goro::Semaphore sem(10);
        sem.acquire(8);
        std::atomic<bool> big_in{false};
        std::atomic<int> small_in{0};
        goro::WaitGroup wg;
        wg.go([&] {
          sem.acquire(10);  // waits for everything
          big_in = true;
          sem.release(10);
        });
        // Until the big waiter queues, try_acquire(1) succeeds (and is undone).
        CHECK(eventually([&] {
          if (!sem.try_acquire(1)) return true;
          sem.release(1);
          return false;
        }));
        for (int i = 0; i < 4; ++i) {
          wg.go([&] {
            sem.acquire(1);  // fits, but queues behind the big request
            small_in.fetch_add(1);
            sem.release(1);
          });
        }
        for (int i = 0; i < 100; ++i) goro::this_fiber::yield();
        CHECK_FALSE(big_in.load());
        CHECK(small_in.load() == 0);
        sem.release(8);
        wg.wait();
        CHECK(big_in.load());
        CHECK(small_in.load() == 4);
        CHECK(sem.available() == 10);
      },
      with_workers(workers));
}

TEST_CASE("Semaphore: try_acquire and misuse", "[semaphore][misuse]") {
  goro::Semaphore sem(3);
  CHECK(sem.size() == 3);
  CHECK(sem.try_acquire(2));
  CHECK_FALSE(sem.try_acquire(2));
  CHECK(sem.try_acquire(1));
  CHECK(sem.available() == 0);
  sem.release(3);
  CHECK_THROWS_WITH(sem.release(1), Catch::Contains("goro::Semaphore") && Catch::Contains("released more than held"));
  CHECK(sem.available() == 3);  // unchanged by the failed release
  CHECK_THROWS_AS(sem.acquire(4), std::logic_error);  // could never succeed
  CHECK_THROWS_AS(sem.acquire(-1), std::logic_error);
  CHECK_THROWS_AS(goro::Semaphore(-1), std::logic_error);
  CHECK_FALSE(sem.try_acquire(4));
  sem.acquire(0);
  CHECK(sem.available() == 3);
}

TEST_CASE("Semaphore: acquire(ctx) gives up when the context is cancelled", "[semaphore][context]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        goro::Semaphore sem(2);
        sem.acquire(2);
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        std::error_code result;
        std::atomic<bool> returned{false};
        goro::WaitGroup wg;
        wg.go([&, ctx = ctx] {
          result = sem.acquire(ctx, 1);
          returned = true;
        });
        for (int i = 0; i < 100; ++i) goro::this_fiber::yield();
        CHECK_FALSE(returned.load());
        cancel();
        wg.wait();
        CHECK(result == goro::errc::canceled);
        CHECK(sem.available() == 0);  // took nothing
        sem.release(2);
        CHECK(sem.acquire(ctx, 1) == goro::errc::canceled);  // a done context is checked first
        auto [live, stop] = goro::with_cancel(goro::background());
        CHECK_FALSE(sem.acquire(live, 2));
        CHECK(sem.available() == 0);
        sem.release(2);
        stop();
      },
      with_workers(workers));
}

TEST_CASE("Semaphore: acquire(ctx) times out, and is granted when units come back first",
          "[semaphore][context]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        goro::Semaphore sem(1);
        sem.acquire();
        auto [ctx, cancel] = goro::with_timeout(goro::background(), 20ms);
        CHECK(sem.acquire(ctx, 1) == goro::errc::deadline_exceeded);
        CHECK(sem.acquire(ctx, 5) == goro::errc::deadline_exceeded);  // larger than size: waits for ctx
        cancel();

        auto [ctx2, cancel2] = goro::with_timeout(goro::background(), 10s);
        std::thread releaser([&] {
          std::this_thread::sleep_for(5ms);
          sem.release();
        });
        CHECK_FALSE(sem.acquire(ctx2, 1));  // granted well before the deadline
        releaser.join();
        sem.release();
        cancel2();
      },
      goro_test::with_workers(workers));
}

// Every acquire(ctx) here races the end of its context (a cancel from another
// fiber after a random number of yields, or a timeout of a few microseconds
// fired by the timer thread) against the releases of the other fibers. Each
// call must either take its whole weight (returning {}) or take nothing
// (returning the context's error): no unit is lost or granted twice.
TEST_CASE("Semaphore: acquire(ctx) racing cancellation, timeouts and releases loses no unit",
          "[semaphore][context][stress]") {
  const std::size_t workers = GORO_WORKERS();
  constexpr std::int64_t kSize = 4;
  constexpr int kFibers = 16;
  const int rounds = static_cast<int>(scaled(1'000, 300, 60));
  std::atomic<std::int64_t> granted{0}, refused{0}, in_use{0};
  std::atomic<bool> overdrawn{false}, wrong_error{false};
  std::int64_t available_after = -1;
  bool whole_after = false;
  goro::run(
      [&] {
        goro::Semaphore sem(kSize);
        goro::WaitGroup acquirers, cancellers;
        for (int f = 0; f < kFibers; ++f) {
          acquirers.go([&, f] {
            std::uint64_t rng = 0x9E3779B97F4A7C15ULL * static_cast<std::uint64_t>(f + 1);
            for (int r = 0; r < rounds; ++r) {
              rng ^= rng << 13;
              rng ^= rng >> 7;
              rng ^= rng << 17;
              const std::int64_t weight = 1 + static_cast<std::int64_t>(rng % 3);
              const bool by_timer = (rng >> 8) % 3 == 0;
              auto [ctx, cancel] = by_timer
                                       ? goro::with_timeout(goro::background(),
                                                            std::chrono::microseconds((rng >> 16) % 50))
                                       : goro::with_cancel(goro::background());
              if (!by_timer) {
                cancellers.go([cancel = cancel, yields = (rng >> 16) % 4] {
                  for (std::uint64_t i = 0; i < yields; ++i) goro::this_fiber::yield();
                  cancel();
                });
              }
              const std::error_code e = sem.acquire(ctx, weight);
              if (!e) {
                if (in_use.fetch_add(weight) + weight > kSize) overdrawn = true;
                goro::this_fiber::yield();
                in_use.fetch_sub(weight);
                sem.release(weight);
                ++granted;
              } else {
                if (e != (by_timer ? goro::errc::deadline_exceeded : goro::errc::canceled)) wrong_error = true;
                ++refused;
              }
              cancel();
            }
          });
        }
        acquirers.wait();
        cancellers.wait();
        available_after = sem.available();
        whole_after = sem.try_acquire(kSize);
      },
      with_workers(workers));
  CHECK_FALSE(overdrawn.load());
  CHECK_FALSE(wrong_error.load());
  CHECK(granted.load() + refused.load() == std::int64_t{kFibers} * rounds);
  CHECK(granted.load() > 0);
  CHECK(refused.load() > 0);
  CHECK(available_after == kSize);
  CHECK(whole_after);
}

TEST_CASE("Semaphore: acquire(ctx) on a plain thread with no runtime", "[semaphore][context][threads]") {
  goro::Semaphore sem(1);
  sem.acquire();
  // The deadline counts from with_timeout(), so the wait is timed from just
  // before it (the first timer of a process may take a while to set up).
  auto start = std::chrono::steady_clock::now();
  auto [ctx, cancel] = goro::with_timeout(goro::background(), 20ms);
  CHECK(sem.acquire(ctx, 1) == goro::errc::deadline_exceeded);
  CHECK(std::chrono::steady_clock::now() - start >= 15ms);
  std::thread releaser([&] {
    std::this_thread::sleep_for(5ms);
    sem.release();
  });
  auto [ctx2, cancel2] = goro::with_cancel(goro::background());
  CHECK_FALSE(sem.acquire(ctx2, 1));
  releaser.join();
  sem.release();
  cancel();
  cancel2();
}

// ---------------------------------------------------------------------------
// SyncMap

TEST_CASE("SyncMap: Go's sync.Map operations", "[syncmap]") {
  goro::SyncMap<std::string, int> m;
  CHECK_FALSE(m.load("a"));
  m.store("a", 1);
  CHECK(m.load("a") == 1);
  m.store("a", 2);
  CHECK(m.load("a") == 2);

  auto [v, loaded] = m.load_or_store("a", 10);
  CHECK(v == 2);
  CHECK(loaded);
  auto [w, loaded_b] = m.load_or_store("b", 20);
  CHECK(w == 20);
  CHECK_FALSE(loaded_b);

  CHECK(m.load_and_delete("b") == 20);
  CHECK_FALSE(m.load_and_delete("b"));
  CHECK_FALSE(m.load("b"));

  CHECK_FALSE(m.swap("c", 3));
  CHECK(m.swap("c", 4) == 3);
  CHECK(m.compare_and_swap("c", 4, 5));
  CHECK_FALSE(m.compare_and_swap("c", 4, 6));
  CHECK(m.load("c") == 5);
  CHECK_FALSE(m.compare_and_delete("c", 4));
  CHECK(m.compare_and_delete("c", 5));
  CHECK_FALSE(m.load("c"));

  m.erase("a");
  m.erase("never there");
  CHECK_FALSE(m.load("a"));

  for (int i = 0; i < 10; ++i) m.store(std::to_string(i), i);
  int seen = 0, sum = 0;
  m.range([&](const std::string&, const int& value) {
    ++seen;
    sum += value;
    return true;
  });
  CHECK(seen == 10);
  CHECK(sum == 45);
  int stopped_after = 0;
  m.range([&](const std::string&, const int&) { return ++stopped_after < 3; });
  CHECK(stopped_after == 3);
  // f may change the map: it works on a snapshot.
  m.range([&](const std::string& key, const int&) {
    m.erase(key);
    return true;
  });
  int left = 0;
  m.range([&](const std::string&, const int&) { return ++left, true; });
  CHECK(left == 0);
  m.store("x", 1);
  m.clear();
  CHECK_FALSE(m.load("x"));
}

TEST_CASE("SyncMap: a value that cannot be assigned (a const member) can be replaced", "[syncmap]") {
  // store(), swap() and compare_and_swap() over an existing key replace the
  // value without assigning it, and leave one entry per key.
  struct Record {
    const int id;
    std::string name;
    bool operator==(const Record&) const = default;
  };
  static_assert(!std::is_move_assignable_v<Record>);
  goro::SyncMap<int, Record> m;
  m.store(1, Record{1, "one"});
  m.store(1, Record{10, "ten"});
  CHECK(m.load(1)->id == 10);
  CHECK(m.swap(1, Record{11, "eleven"})->name == "ten");
  CHECK(m.compare_and_swap(1, Record{11, "eleven"}, Record{12, "twelve"}));
  CHECK_FALSE(m.compare_and_swap(1, Record{11, "eleven"}, Record{13, "thirteen"}));
  CHECK(m.load(1) == Record{12, "twelve"});
  m.store(2, Record{2, "two"});
  int entries = 0;
  m.range([&](const int&, const Record&) { return ++entries, true; });
  CHECK(entries == 2);
}

TEMPLATE_TEST_CASE("SyncMap: a call whose copy or move of a value throws changes nothing", "[syncmap]",
                   Fragile<true>, Fragile<false>) {
  // Every copy and move of V a call makes is failed in turn: the call must
  // throw and leave the map as it was, or succeed with its full effect.
  using V = TestType;
  static_assert(std::is_move_assignable_v<V> == std::is_same_v<V, Fragile<true>>);
  goro_test::MoveBudget budget;
  auto value_of = [](auto& m, int key) {
    auto v = m.load(key);
    return v ? v->value : 0;
  };
  SECTION("swap over an existing key") {
    CHECK(fail_each_step<V>(budget, [&](auto& m) {
            auto previous = m.swap(1, V(2, budget));
            budget.moves_left = -1;
            CHECK((previous && previous->value == 1));
            CHECK(value_of(m, 1) == 2);
          }) >= 1);
  }
  SECTION("swap of a new key") {
    fail_each_step<V>(budget, [&](auto& m) {
      auto previous = m.swap(2, V(2, budget));
      budget.moves_left = -1;
      CHECK_FALSE(previous);
      CHECK(value_of(m, 2) == 2);
    });
  }
  SECTION("store over an existing key, and of a new one") {
    CHECK(fail_each_step<V>(budget, [&](auto& m) {
            m.store(1, V(2, budget));
            budget.moves_left = -1;
            CHECK(value_of(m, 1) == 2);
          }) >= 1);
    fail_each_step<V>(budget, [&](auto& m) {
      m.store(2, V(2, budget));
      budget.moves_left = -1;
      CHECK(value_of(m, 2) == 2);
    });
  }
  SECTION("compare_and_swap") {
    CHECK(fail_each_step<V>(budget, [&](auto& m) {
            const V expected(1, budget);
            const bool swapped = m.compare_and_swap(1, expected, V(2, budget));
            budget.moves_left = -1;
            CHECK(swapped);
            CHECK(value_of(m, 1) == 2);
          }) >= 1);
  }
  SECTION("load_or_store of a new key: stores nothing if copying the result throws") {
    CHECK(fail_each_step<V>(budget, [&](auto& m) {
            auto [v, loaded] = m.load_or_store(2, V(2, budget));
            budget.moves_left = -1;
            CHECK_FALSE(loaded);
            CHECK(v.value == 2);
            CHECK(value_of(m, 2) == 2);
          }) >= 2);
  }
  SECTION("load_or_store of an existing key") {
    fail_each_step<V>(budget, [&](auto& m) {
      auto [v, loaded] = m.load_or_store(1, V(3, budget));
      budget.moves_left = -1;
      CHECK(loaded);
      CHECK(v.value == 1);
    });
  }
  SECTION("load_and_delete and compare_and_delete") {
    CHECK(fail_each_step<V>(budget, [&](auto& m) {
            auto v = m.load_and_delete(1);
            budget.moves_left = -1;
            CHECK((v && v->value == 1));
            CHECK_FALSE(m.load(1));
          }) >= 1);
    fail_each_step<V>(budget, [&](auto& m) {
      const V expected(1, budget);
      const bool deleted = m.compare_and_delete(1, expected);
      budget.moves_left = -1;
      CHECK(deleted);
      CHECK_FALSE(m.load(1));
    });
  }
}

TEST_CASE("SyncMap: concurrent loads and stores from fibers and threads", "[syncmap][threads]") {
  const std::size_t workers = GORO_WORKERS();
  const int keys = 64;
  const int rounds = static_cast<int>(scaled(20'000, 5'000, 500));
  std::atomic<int> bad{0};
  goro::SyncMap<int, std::pair<int, int>> m;  // invariant: value.first == value.second
  for (int k = 0; k < keys; ++k) m.store(k, {0, 0});
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int f = 0; f < 8; ++f) {
          wg.go([&, f] {
            for (int i = 0; i < rounds; ++i) {
              int k = (i * 7 + f) % keys;
              if (i % 16 == 0) {
                m.store(k, {i, i});
              } else if (auto v = m.load(k); !v || v->first != v->second) {
                bad.fetch_add(1);
              }
              if (i % 256 == 0) goro::this_fiber::yield();
            }
          });
        }
        wg.add(2);
        std::vector<std::thread> threads;
        for (int t = 0; t < 2; ++t) {
          threads.emplace_back([&, t] {
            for (int i = 0; i < rounds; ++i) {
              int k = (i * 13 + t) % keys;
              auto [v, loaded] = m.load_or_store(k, {-1, -1});
              if (!loaded || v.first != v.second) bad.fetch_add(1);
            }
            wg.done();
          });
        }
        wg.wait();
        for (auto& t : threads) t.join();
      },
      with_threads(workers));
  CHECK(bad.load() == 0);
}

// ---------------------------------------------------------------------------
// AtomicValue

TEST_CASE("AtomicValue: load, store, swap, compare_and_swap", "[atomicvalue]") {
  goro::AtomicValue<std::string> v;
  CHECK(v.load() == nullptr);
  v.store("one");
  auto one = v.load();
  REQUIRE(one);
  CHECK(*one == "one");
  auto old = v.swap("two");
  CHECK(old == one);  // the same object
  CHECK(*v.load() == "two");
  CHECK(*one == "one");  // a snapshot never changes

  CHECK_FALSE(v.compare_and_swap(one, "three"));  // `one` is no longer current
  auto two = v.load();
  CHECK(v.compare_and_swap(two, "three"));
  CHECK(*v.load() == "three");
  // Identity, not equality: an equal string in another object does not match.
  CHECK_FALSE(v.compare_and_swap(std::make_shared<const std::string>("three"), "four"));

  goro::AtomicValue<int> empty;
  CHECK(empty.compare_and_swap(nullptr, 7));  // null matches null
  CHECK(*empty.load() == 7);
  goro::AtomicValue<int> initial(5);
  CHECK(*initial.load() == 5);
  auto shared = std::make_shared<const int>(9);
  initial.store(shared);
  CHECK(initial.load() == shared);
}

TEST_CASE("AtomicValue: readers always see a whole value while writers replace it",
          "[atomicvalue][threads]") {
  const std::size_t workers = GORO_WORKERS();
  struct Pair {
    std::int64_t a, b;  // invariant: a == b
  };
  const int rounds = static_cast<int>(scaled(50'000, 10'000, 1'000));
  goro::AtomicValue<Pair> value(Pair{0, 0});
  std::atomic<int> torn{0};
  std::atomic<bool> stop{false};
  goro::run(
      [&] {
        goro::WaitGroup wg;
        for (int r = 0; r < 6; ++r) {
          wg.go([&] {
            while (!stop.load()) {
              auto p = value.load();
              if (!p || p->a != p->b) torn.fetch_add(1);
              goro::this_fiber::yield();
            }
          });
        }
        wg.add(1);
        std::thread writer([&] {
          for (int i = 1; i <= rounds; ++i) {
            if (i % 3 == 0) {
              auto cur = value.load();
              value.compare_and_swap(cur, Pair{cur->a + 1, cur->a + 1});
            } else {
              auto cur = value.load();
              value.store(Pair{cur->a + 1, cur->a + 1});
            }
          }
          wg.done();
        });
        wg.go([&] {  // a fiber writer too, with swap
          for (int i = 0; i < rounds / 10; ++i) {
            auto cur = value.load();
            value.compare_and_swap(cur, Pair{cur->a + 1, cur->a + 1});
            goro::this_fiber::yield();
          }
        });
        // Stop the readers once both writers are done.
        while (wg.count() > 6) goro::this_fiber::yield();
        stop = true;
        wg.wait();
        writer.join();
      },
      with_threads(workers));
  CHECK(torn.load() == 0);
  CHECK(value.load()->a > 0);
}

// ---------------------------------------------------------------------------
// ErrGroup

TEST_CASE("ErrGroup: wait returns {} when every function succeeds", "[errgroup]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> ran{0};
  goro::run(
      [&] {
        goro::ErrGroup group;
        for (int i = 0; i < 50; ++i) group.go([&] { ran.fetch_add(1); });
        for (int i = 0; i < 50; ++i) {
          group.go([&]() -> std::error_code {
            ran.fetch_add(1);
            return {};
          });
        }
        CHECK_FALSE(group.wait());
      },
      with_workers(workers));
  CHECK(ran.load() == 100);
}

TEST_CASE("ErrGroup: copies and moved-from handles name the same group", "[errgroup]") {
  goro::run(
      [] {
        goro::ErrGroup group;
        goro::ErrGroup moved = std::move(group);
        goro::ErrGroup copy = moved;
        std::atomic<int> ran{0};
        group.go([&] { ++ran; });  // NOLINT(bugprone-use-after-move): the point of the test
        moved.go([&]() -> std::error_code {
          ++ran;
          return std::make_error_code(std::errc::io_error);
        });
        copy.go([&] { ++ran; });
        CHECK(group.wait() == std::errc::io_error);  // the one group saw all three
        CHECK(ran.load() == 3);
        CHECK(copy.wait() == std::errc::io_error);
      },
      with_workers(2));
}

TEST_CASE("ErrGroup: the first error_code is returned, the first exception rethrown", "[errgroup]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        goro::ErrGroup group;
        group.go([]() -> std::error_code { return std::make_error_code(std::errc::io_error); });
        group.go([] {});
        CHECK(group.wait() == std::errc::io_error);

        goro::ErrGroup throwing;
        throwing.go([] { throw std::runtime_error("boom"); });
        CHECK_THROWS_WITH(throwing.wait(), "boom");
        CHECK_THROWS_WITH(throwing.wait(), "boom");  // every wait() reports it

        // Only the first failure counts.
        auto [ordered, first_failed] = goro::ErrGroup::with_context(goro::background());
        ordered.go([]() -> std::error_code { return std::make_error_code(std::errc::timed_out); });
        ordered.go([ctx = first_failed] {
          ctx.done().recv();  // closed once the first failure is recorded
          throw std::runtime_error("second");
        });
        CHECK(ordered.wait() == std::errc::timed_out);
      },
      with_workers(workers));
}

TEST_CASE("ErrGroup: with_context cancels the context on the first failure", "[errgroup][context]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> saw_cancel{0};
  goro::run(
      [&] {
        auto [group, ctx] = goro::ErrGroup::with_context(goro::background());
        for (int i = 0; i < 10; ++i) {
          group.go([&saw_cancel, ctx = ctx]() -> std::error_code {
            ctx.done().recv();  // until a sibling fails
            saw_cancel.fetch_add(1);
            return ctx.err();
          });
        }
        group.go([]() -> std::error_code { return std::make_error_code(std::errc::connection_reset); });
        CHECK(group.wait() == std::errc::connection_reset);
        CHECK(ctx.err() == goro::errc::canceled);

        // wait() cancels the context even when nothing failed (Go's rule).
        auto [ok_group, ok_ctx] = goro::ErrGroup::with_context(goro::background());
        ok_group.go([] {});
        CHECK_FALSE(ok_group.wait());
        CHECK(ok_ctx.err() == goro::errc::canceled);
      },
      with_workers(workers));
  CHECK(saw_cancel.load() == 10);
}

TEST_CASE("ErrGroup: the first failure is the context's cause", "[errgroup][context][cause]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        // An error_code failure: the cause is a system_error holding it.
        auto [by_code, code_ctx] = goro::ErrGroup::with_context(goro::background());
        by_code.go([]() -> std::error_code { return std::make_error_code(std::errc::connection_reset); });
        CHECK(by_code.wait() == std::errc::connection_reset);
        try {
          std::rethrow_exception(goro::cause(code_ctx));
        } catch (const std::system_error& e) {
          CHECK(e.code() == std::errc::connection_reset);
        }

        // An exception failure: the cause is that very exception.
        auto [by_throw, throw_ctx] = goro::ErrGroup::with_context(goro::background());
        by_throw.go([] { throw std::runtime_error("disk on fire"); });
        CHECK_THROWS_WITH(by_throw.wait(), "disk on fire");
        try {
          std::rethrow_exception(goro::cause(throw_ctx));
        } catch (const std::runtime_error& e) {
          CHECK(std::string(e.what()) == "disk on fire");
        }

        // No failure: wait() cancels without a cause, so cause() falls back
        // to a system_error of err().
        auto [ok, ok_ctx] = goro::ErrGroup::with_context(goro::background());
        ok.go([] {});
        CHECK_FALSE(ok.wait());
        try {
          std::rethrow_exception(goro::cause(ok_ctx));
        } catch (const std::system_error& e) {
          CHECK(e.code() == goro::errc::canceled);
        }
      },
      with_workers(workers));
}

TEST_CASE("WaitGroup::go and ErrGroup::go call their copy of f once, as an rvalue; move-only f is fine",
          "[waitgroup][errgroup]") {
  const std::size_t workers = GORO_WORKERS();
  struct Tally {  // callable only as an rvalue, and move-only
    std::unique_ptr<int> weight;
    std::atomic<int>* total;
    void operator()() && { *total += *weight; }
  };
  struct Failing {
    std::unique_ptr<int> code;
    std::error_code operator()() && { return {*code, std::generic_category()}; }
  };
  std::atomic<int> total{0};
  std::error_code failed;
  goro::run(
      [&] {
        goro::WaitGroup wg;
        wg.go(Tally{std::make_unique<int>(1), &total});
        wg.go([t = Tally{std::make_unique<int>(10), &total}]() mutable { std::move(t)(); });
        wg.wait();
        goro::ErrGroup group;
        group.go(Tally{std::make_unique<int>(100), &total});
        CHECK(group.try_go(Tally{std::make_unique<int>(1000), &total}));
        group.go(Failing{std::make_unique<int>(EIO)});
        failed = group.wait();
      },
      with_workers(workers));
  CHECK(total == 1111);
  CHECK(failed == std::error_code(EIO, std::generic_category()));
}

TEST_CASE("ErrGroup: set_limit bounds concurrency; try_go fails at the limit", "[errgroup]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  goro::run(
      [&] {
        goro::ErrGroup group;
        group.set_limit(3);
        for (int i = 0; i < 30; ++i) {
          group.go([&] {
            int now = running.fetch_add(1) + 1;
            int seen = peak.load();
            while (now > seen && !peak.compare_exchange_weak(seen, now)) {
            }
            goro::this_fiber::sleep_for(100us);
            running.fetch_sub(1);
          });
        }
        CHECK_FALSE(group.wait());

        goro::Channel<goro::Unit> gate;
        goro::ErrGroup limited;
        limited.set_limit(1);
        CHECK(limited.try_go([&] { gate.recv(); }));
        CHECK_FALSE(limited.try_go([] {}));
        CHECK_THROWS_WITH(limited.set_limit(5), Catch::Contains("goro::ErrGroup") && Catch::Contains("set_limit"));
        gate.close();
        CHECK_FALSE(limited.wait());
        limited.set_limit(-1);  // fine once nothing runs
        CHECK(limited.try_go([] {}));
        limited.wait();

        goro::ErrGroup none;
        none.set_limit(0);
        CHECK_FALSE(none.try_go([] {}));
      },
      with_workers(workers));
  CHECK(peak.load() <= 3);
  CHECK(peak.load() >= 1);
}

TEST_CASE("ErrGroup: a go() waiting for a slot counts as running: set_limit throws until its function ends",
          "[errgroup]") {
  // F1 holds the only slot and S's go() waits for it. When F1 ends, the
  // slot passes to S's go() and the group's wait() returns (F1 was the only
  // function started), so W tries set_limit() while S's go() holds a slot
  // it took under the old limit. That used to be accepted in the moment
  // before S's function started (one worker makes W run then); the function
  // then gave its slot back to the new Semaphore: std::terminate for a
  // limit > 0. F2 waits for W's attempt, so with any scheduling the attempt
  // comes while S's go() has not finished.
  bool refused = false;
  bool second_ran = false;
  goro::run(
      [&] {
        goro::ErrGroup group;
        group.set_limit(1);
        goro::Channel<goro::Unit> gate, tried;
        group.go([&] { gate.recv(); });  // F1
        goro::WaitGroup helpers;
        helpers.go([&] {  // S
          group.go([&] {  // F2
            tried.recv();
            second_ran = true;
          });
        });
        helpers.go([&] {  // W
          group.wait();
          try {
            group.set_limit(-1);
          } catch (const std::logic_error&) {
            refused = true;
          }
          tried.close();
        });
        for (int i = 0; i < 100; ++i) goro::this_fiber::yield();  // S and W block
        gate.close();
        helpers.wait();
        CHECK_FALSE(group.wait());
        group.set_limit(2);  // fine once nothing runs or waits
        goro::Channel<goro::Unit> hold;
        CHECK(group.try_go([&] { hold.recv(); }));
        CHECK(group.try_go([&] { hold.recv(); }));
        CHECK_FALSE(group.try_go([] {}));
        hold.close();
        CHECK_FALSE(group.wait());
      },
      with_workers(1));
  CHECK(refused);
  CHECK(second_ran);
}

TEST_CASE("ErrGroup: set_limit racing go() and try_go() from fibers and threads", "[errgroup][threads]") {
  // set_limit() succeeds only while no go() or try_go() is in progress and
  // no function runs; go() and try_go() read the limit under the group's
  // lock. Every go() runs its function, concurrency never passes the largest
  // limit set, and every slot goes back to the Semaphore it came from (a
  // mix-up throws from a destructor: std::terminate).
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(300, 100, 20));
  std::atomic<int> started{0};
  std::atomic<int> ran{0};
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  goro::run(
      [&] {
        auto body = [&] {
          int now = running.fetch_add(1) + 1;
          int seen = peak.load();
          while (now > seen && !peak.compare_exchange_weak(seen, now)) {
          }
          goro::this_fiber::yield();
          running.fetch_sub(1);
          ran.fetch_add(1);
        };
        for (int r = 0; r < rounds; ++r) {
          goro::ErrGroup group;
          group.set_limit(1);
          goro::WaitGroup callers;
          for (int f = 0; f < 2; ++f) {
            callers.go([&] {
              started.fetch_add(1);
              group.go(body);
            });
          }
          callers.add(1);
          std::thread plain([&] {
            started.fetch_add(1);
            group.go(body);
            if (group.try_go(body)) started.fetch_add(1);
            callers.done();
          });
          for (int i = 0; i < 20; ++i) {
            try {
              group.set_limit(1 + i % 2);
            } catch (const std::logic_error&) {
            }
            goro::this_fiber::yield();
          }
          callers.wait();
          plain.join();
          CHECK_FALSE(group.wait());
        }
      },
      with_threads(workers));
  CHECK(ran.load() == started.load());
  CHECK(peak.load() <= 2);
}

// ---------------------------------------------------------------------------
// Seed program: the worker pool (Go by Example's "Worker Pools", plus a
// Mutex-guarded tally and a WaitGroup).

TEST_CASE("Worker pool seed program", "[seed]") {
  const std::size_t workers = GORO_WORKERS();
  const int jobs_count = static_cast<int>(scaled(1000, 300, 100));
  const int pool_size = 8;
  goro::run(
      [&] {
        goro::Channel<int> jobs(100);
        goro::Channel<int> results(100);
        goro::Mutex mu;
        std::vector<int> per_worker(pool_size, 0);  // guarded by mu
        goro::WaitGroup wg;
        for (int w = 0; w < pool_size; ++w) {
          wg.go([&, w] {
            for (int j : jobs) {
              goro::this_fiber::yield();  // "work"
              {
                std::lock_guard guard(mu);
                ++per_worker[w];
              }
              results.send(j * 2);
            }
          });
        }
        goro::go([&] {
          for (int j = 1; j <= jobs_count; ++j) jobs.send(j);
          jobs.close();
        });
        goro::go([&] {
          wg.wait();
          results.close();
        });
        std::set<int> got;
        std::int64_t sum = 0;
        for (int r : results) {
          got.insert(r);
          sum += r;
        }
        CHECK(got.size() == static_cast<std::size_t>(jobs_count));
        CHECK(sum == std::int64_t{jobs_count} * (jobs_count + 1));
        int total = 0;
        for (int n : per_worker) total += n;
        CHECK(total == jobs_count);
      },
      with_workers(workers));
}
