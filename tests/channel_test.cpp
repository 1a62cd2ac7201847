// Channels: ports of Go's channel tests (runtime/chan_test.go, test/chan) in
// goro's own code, plus goro-specific contract checks.
#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "test_support.hpp"
#include "throwing_move.hpp"

using namespace std::chrono_literals;
using goro_test::scaled;
using goro_test::with_workers;

// --- Misuse must not compile -------------------------------------------------
template <class C>
concept CanRecv = requires(C c) { c.recv(); };
template <class C>
concept CanTryRecv = requires(C c) { c.try_recv(); };
template <class C>
concept CanRange = requires(C c) { c.begin(); };
template <class C>
concept CanSend = requires(C c) { c.send(1); };
template <class C>
concept CanTrySend = requires(C c) { c.try_send(1); };
template <class C>
concept CanClose = requires(C c) { c.close(); };

static_assert(CanRecv<goro::Channel<int>> && CanSend<goro::Channel<int>> && CanClose<goro::Channel<int>>);
static_assert(!CanRecv<goro::SendChannel<int>> && !CanTryRecv<goro::SendChannel<int>> &&
              !CanRange<goro::SendChannel<int>>);
static_assert(CanSend<goro::SendChannel<int>> && CanClose<goro::SendChannel<int>>);
static_assert(!CanSend<goro::RecvChannel<int>> && !CanTrySend<goro::RecvChannel<int>> &&
              !CanClose<goro::RecvChannel<int>>);
static_assert(CanRecv<goro::RecvChannel<int>> && CanRange<goro::RecvChannel<int>>);
static_assert(std::is_convertible_v<goro::Channel<int>, goro::SendChannel<int>>);
static_assert(std::is_convertible_v<goro::Channel<int>, goro::RecvChannel<int>>);
static_assert(!std::is_convertible_v<goro::SendChannel<int>, goro::RecvChannel<int>>);

// --- Go's TestChan ------------------------------------------------------------
TEST_CASE("TestChan: semantics across capacities 0..199", "[channel][go]") {
  const std::size_t workers = static_cast<std::size_t>(GENERATE(1, 2, 4));
  const int max_cap = goro_test::kTsan ? 20 : 200;
  goro::run(
      [&] {
        for (int cap = 0; cap < max_cap; ++cap) {
          // Receive from an empty channel blocks.
          {
            goro::Channel<int> c(cap);
            std::atomic<bool> recv1{false}, recv2{false};
            goro::WaitGroup wg;
            wg.go([&] { c.recv(); recv1 = true; });
            wg.go([&] { c.recv(); recv2 = true; });
            goro::this_fiber::sleep_for(100us);
            REQUIRE(!recv1.load());
            REQUIRE(!recv2.load());
            c.send(0);
            c.send(0);
            wg.wait();
            REQUIRE(recv1.load());
            REQUIRE(recv2.load());
          }
          // Send to a full channel blocks.
          {
            goro::Channel<int> c(cap);
            for (int i = 0; i < cap; ++i) c.send(i);
            std::atomic<bool> sent{false};
            goro::WaitGroup wg;
            wg.go([&] { c.send(0); sent = true; });
            goro::this_fiber::sleep_for(100us);
            REQUIRE(!sent.load());
            c.recv();
            wg.wait();
            REQUIRE(sent.load());
          }
          // Closed channel: buffered values first, then nullopt forever.
          {
            goro::Channel<int> c(cap);
            for (int i = 0; i < cap; ++i) c.send(i);
            c.close();
            for (int i = 0; i < cap; ++i) REQUIRE(c.recv() == i);
            REQUIRE(!c.recv());
            REQUIRE(!c.recv());
            REQUIRE(!c.try_recv());
          }
          // Close unblocks receivers.
          {
            goro::Channel<int> c(cap);
            goro::WaitGroup wg;
            std::atomic<int> got_closed{0};
            for (int i = 0; i < 3; ++i)
              wg.go([&] {
                if (!c.recv()) got_closed.fetch_add(1);
              });
            goro::this_fiber::sleep_for(100us);
            c.close();
            wg.wait();
            REQUIRE(got_closed.load() == 3);
          }
          // FIFO, with a concurrent sender.
          {
            goro::Channel<int> c(cap);
            goro::go([c] {
              for (int i = 0; i < 100; ++i) c.send(i);
            });
            for (int i = 0; i < 100; ++i) REQUIRE(c.recv() == i);
          }
          // size and capacity.
          {
            goro::Channel<int> c(cap);
            REQUIRE(c.capacity() == static_cast<std::size_t>(cap));
            for (int i = 0; i < cap; ++i) c.send(i);
            REQUIRE(c.size() == static_cast<std::size_t>(cap));
          }
        }
      },
      with_workers(workers));
}

TEST_CASE("TestMultiConsumer: 23 consumers, 271,828 items, sum and count exact", "[channel][go]") {
  const std::size_t workers = GORO_WORKERS();
  const int n_workers = 23;
  const int n_items = static_cast<int>(scaled(271'828, 271'828, 27'182));
  std::int64_t expect_sum = 0;
  for (int i = 0; i < n_items; ++i) expect_sum += i;
  goro::run(
      [&] {
        goro::Channel<int> q(static_cast<int>(n_workers * 10));  // Go uses 2*n to expose races
        goro::Channel<std::int64_t> r(n_workers);
        goro::WaitGroup wg;
        std::atomic<std::int64_t> total{0};
        std::atomic<int> count{0};
        for (int w = 0; w < n_workers; ++w) {
          wg.go([&] {
            for (int v : q) {
              if (v % 2 == 0) goro::this_fiber::yield();  // mix in some scheduling
              total.fetch_add(v);
              count.fetch_add(1);
            }
          });
        }
        for (int i = 0; i < n_items; ++i) q.send(i);
        q.close();
        wg.wait();
        CHECK(count.load() == n_items);
        CHECK(total.load() == expect_sum);
      },
      with_workers(workers));
}

// --- Prime sieve, test/chan/sieve1.go ----------------------------------------
TEST_CASE("prime sieve (sieve1.go)", "[channel][go]") {
  const std::size_t workers = GORO_WORKERS();
  const std::vector<int> expected = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47,
                                     53, 59, 61, 67, 71, 73, 79, 83, 89, 97};
  std::vector<int> primes;
  goro::run(
      [&] {
        goro::Channel<int> ch;
        goro::go([ch] {
          for (int i = 2;; ++i) ch.send(i);
        });
        goro::RecvChannel<int> src = ch;
        for (std::size_t i = 0; i < expected.size(); ++i) {
          int prime = *src.recv();
          primes.push_back(prime);
          goro::Channel<int> next;
          goro::go([src, next, prime] {
            for (;;) {
              int v = *src.recv();
              if (v % prime != 0) next.send(v);
            }
          });
          src = next;
        }
      },
      with_workers(workers));  // the filters are unwound when main returns
  CHECK(primes == expected);
}

// --- Close semantics ------------------------------------------------------------
TEST_CASE("close: send and close on a closed channel throw goro::channel_closed", "[channel]") {
  goro::Channel<int> c(2);
  c.send(1);
  c.close();
  CHECK(c.closed());
  CHECK_THROWS_AS(c.send(2), goro::channel_closed);
  CHECK_THROWS_WITH(c.close(), Catch::Contains("close of closed channel"));
  int v = 3;
  CHECK_THROWS_AS(c.try_send(std::move(v)), goro::channel_closed);
  CHECK(c.recv() == 1);
  CHECK(!c.recv());
  static_assert(std::is_base_of_v<std::logic_error, goro::channel_closed>);
  goro::Channel<int> nil = nullptr;
  CHECK_THROWS_AS(nil.close(), goro::channel_closed);
}

TEST_CASE("close wakes a blocked sender with channel_closed", "[channel]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [] {
        goro::Channel<int> c;
        std::atomic<bool> threw{false};
        goro::WaitGroup wg;
        wg.go([&] {
          try {
            c.send(1);
          } catch (const goro::channel_closed&) {
            threw = true;
          }
        });
        goro::this_fiber::sleep_for(1ms);
        c.close();
        wg.wait();
        CHECK(threw.load());
      },
      with_workers(workers));
}

// --- Types ----------------------------------------------------------------------
struct NoDefault {
  explicit NoDefault(int v) : value(v) {}
  int value;
};

TEST_CASE("move-only and non-default-constructible values pass through", "[channel]") {
  goro::run(
      [] {
        goro::Channel<std::unique_ptr<int>> c(1);
        goro::go([c] {
          for (int i = 0; i < 10; ++i) c.send(std::make_unique<int>(i));
          c.close();
        });
        int expect = 0;
        for (auto p : c) CHECK(*p == expect++);
        CHECK(expect == 10);

        goro::Channel<NoDefault> nd;
        goro::go([nd] { nd.send(NoDefault(5)); });
        CHECK(nd.recv()->value == 5);
      },
      with_workers(2));
}

TEST_CASE("values are moved, never copied", "[channel]") {
  struct Counted {
    int* copies;
    explicit Counted(int* c) : copies(c) {}
    Counted(const Counted& o) : copies(o.copies) { ++*copies; }
    Counted(Counted&&) noexcept = default;
    Counted& operator=(Counted&&) noexcept = default;
  };
  int copies = 0;
  goro::run(
      [&] {
        goro::Channel<Counted> unbuffered, buffered(4);
        goro::go([&] {
          unbuffered.send(Counted(&copies));
          buffered.send(Counted(&copies));
        });
        unbuffered.recv();
        buffered.recv();
      },
      with_workers(2));
  CHECK(copies == 0);
}

TEST_CASE("a value whose move throws leaves the channel intact and unlocked", "[channel]") {
  // Such a T takes the general path (the buffered fast path holds the bare
  // lock and requires a move that cannot throw): a throwing move must
  // propagate to the caller, leave the buffer as it was, and release the
  // channel's lock, so later operations neither hang nor see a half-moved
  // value.
  struct Fragile {
    int value;
    bool* fail_moves;
    Fragile(int v, bool* f) : value(v), fail_moves(f) {}
    Fragile(const Fragile&) = default;
    Fragile(Fragile&& o) : value(o.value), fail_moves(o.fail_moves) {
      if (*fail_moves) throw std::runtime_error("move failed");
    }
    Fragile& operator=(Fragile&&) = default;
  };
  static_assert(!std::is_nothrow_move_constructible_v<Fragile>);
  bool fail_moves = false;
  goro::run(
      [&] {
        goro::Channel<Fragile> c(2);
        c.send(Fragile(1, &fail_moves));
        fail_moves = true;
        CHECK_THROWS_AS(c.send(Fragile(2, &fail_moves)), std::runtime_error);
        CHECK(c.size() == 1);
        CHECK_THROWS_AS(c.recv(), std::runtime_error);  // moving the head out fails
        CHECK(c.size() == 1);
        fail_moves = false;
        c.send(Fragile(3, &fail_moves));
        CHECK(c.size() == 2);
        CHECK(c.recv()->value == 1);
        CHECK(c.recv()->value == 3);
        CHECK(c.size() == 0);
      },
      with_workers(1));
}

// When moving a value to or from a parked partner throws, the operation that
// made the move gets the exception and the partner keeps waiting, its value
// or its empty slot as it was: no value is lost, none is delivered twice, and
// no parked fiber is told "delivered" or "closed" when it was not.
TEST_CASE("a sender whose move throws leaves the parked receiver waiting", "[channel][throwing-move]") {
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        goro::Channel<goro_test::FlakyMove> c;
        int got = 0;
        bool done = false;
        goro::go([&] {
          auto v = c.recv();
          got = v ? v->value : -1;
          done = true;
        });
        goro::this_fiber::yield();  // the receiver parks
        budget.moves_left = 0;
        CHECK_THROWS_AS(c.send(goro_test::FlakyMove(1, budget)), std::runtime_error);
        goro::this_fiber::yield();
        CHECK_FALSE(done);  // not woken as if the channel had closed
        budget.moves_left = -1;
        c.send(goro_test::FlakyMove(2, budget));
        goro::this_fiber::yield();
        CHECK(done);
        CHECK(got == 2);
      },
      with_workers(1));
}

TEST_CASE("a receiver whose move throws leaves the parked sender waiting with its value",
          "[channel][throwing-move]") {
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        goro::Channel<goro_test::FlakyMove> c;
        bool sent = false;
        goro::go([&] {
          c.send(goro_test::FlakyMove(7, budget));
          sent = true;
        });
        goro::this_fiber::yield();  // the sender parks
        budget.moves_left = 0;
        CHECK_THROWS_AS(c.recv(), std::runtime_error);
        goro::this_fiber::yield();
        CHECK_FALSE(sent);  // not told its value was taken
        budget.moves_left = -1;
        auto v = c.recv();
        REQUIRE(v);
        CHECK(v->value == 7);
        goro::this_fiber::yield();
        CHECK(sent);
      },
      with_workers(1));
}

TEST_CASE("a full buffer's parked sender whose value cannot move in retries, and its send throws",
          "[channel][throwing-move]") {
  // The receiver takes the head (one move) and moves the parked sender's
  // value into the freed slot; that move throws. The receiver keeps the head
  // it took; the sender retries the move itself, which throws again, so its
  // send() throws and its value never entered the channel.
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        goro::Channel<goro_test::FlakyMove> c(1);
        c.send(goro_test::FlakyMove(1, budget));
        bool sender_threw = false;
        bool sent = false;
        goro::go([&] {
          try {
            c.send(goro_test::FlakyMove(2, budget));
            sent = true;
          } catch (const std::runtime_error&) {
            sender_threw = true;
          }
        });
        goro::this_fiber::yield();  // the sender parks on the full buffer
        budget.moves_left = 1;
        auto head = c.recv();
        REQUIRE(head);
        CHECK(head->value == 1);
        goro::this_fiber::yield();
        CHECK(sender_threw);
        CHECK_FALSE(sent);
        CHECK(c.size() == 0);
        budget.moves_left = -1;
        // And when the retried move succeeds, the value is delivered once.
        c.send(goro_test::FlakyMove(3, budget));
        goro::go([&] { c.send(goro_test::FlakyMove(4, budget)); });
        goro::this_fiber::yield();  // parks on the full buffer again
        budget.moves_left = 1;  // the head moves out; the sender's value does not move in
        CHECK(c.recv()->value == 3);
        budget.moves_left = -1;
        goro::this_fiber::yield();  // the sender retries into the free slot
        CHECK(c.size() == 1);
        CHECK(c.recv()->value == 4);
        CHECK(c.size() == 0);
      },
      with_workers(1));
}

TEST_CASE("when a full buffer's first parked sender cannot move in, the next one is tried",
          "[channel][throwing-move]") {
  // Senders may wait only while the buffer is full. A receive that frees a
  // slot must fill it from the parked senders until one succeeds (or none is
  // left), or a sender could stay parked beside an empty buffer while
  // receivers park too.
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        goro::Channel<goro_test::FlakyMove> c(1);
        c.send(goro_test::FlakyMove(0, budget));
        for (int id : {1, 2}) goro::go([&c, &budget, id] { c.send(goro_test::FlakyMove(id, budget)); });
        goro::this_fiber::yield();  // both senders park on the full buffer
        budget.moves_left = 1;      // the head moves out; neither sender's value moves in
        CHECK(c.recv()->value == 0);
        budget.moves_left = -1;
        // Both senders were sent back to retry; both values arrive.
        const int first = c.recv()->value;
        const int second = c.recv()->value;
        CHECK(first + second == 3);
        CHECK(first != second);
      },
      with_workers(1));
}

TEST_CASE("a value whose second move throws is not lost between the buffer and the caller",
          "[channel][throwing-move]") {
  // recv() moves the head once, straight into the value it returns.
  goro_test::MoveBudget budget;
  goro::run(
      [&] {
        goro::Channel<goro_test::FlakyMove> c(2);
        c.send(goro_test::FlakyMove(1, budget));
        c.send(goro_test::FlakyMove(2, budget));
        budget.moves_left = 1;
        auto v = c.recv();
        REQUIRE(v);
        CHECK(v->value == 1);
        budget.moves_left = 0;
        CHECK_THROWS_AS(c.recv(), std::runtime_error);
        budget.moves_left = -1;
        CHECK(c.size() == 1);
        CHECK(c.recv()->value == 2);
      },
      with_workers(1));
}

TEST_CASE("a T that cannot be assigned (a const member) works everywhere, range-for included",
          "[channel]") {
  // Go programmers' messages are often structs with fields set once; in C++
  // those are const members, which delete assignment. Values move by
  // construction only, so nothing may need T's (or optional<T>'s) assignment.
  struct Msg {
    const int id;
    std::string body;
  };
  static_assert(!std::is_move_assignable_v<Msg>);
  goro::run(
      [] {
        goro::Channel<Msg> c(4);
        c.send(Msg{1, "a"});
        CHECK(c.try_send(Msg{2, "b"}));
        CHECK(c.recv()->id == 1);
        CHECK(c.try_recv()->id == 2);
        Msg m{3, "c"};
        CHECK(goro::select(goro::send(c, m), goro::default_case()) == 0);
        CHECK(goro::select(goro::recv(c, [](Msg v) { CHECK(v.id == 3); })) == 0);
        c.send(Msg{4, "d"});
        c.send(Msg{5, "e"});
        c.close();
        int sum = 0;
        for (Msg v : c) sum += v.id;
        CHECK(sum == 9);
      },
      with_workers(1));
}

TEST_CASE("try_send and try_recv never block; a refused value stays with the caller", "[channel]") {
  goro::Channel<std::unique_ptr<int>> c(1);
  auto a = std::make_unique<int>(1);
  auto b = std::make_unique<int>(2);
  CHECK(c.try_send(std::move(a)));
  CHECK(!a);  // taken
  CHECK(!c.try_send(std::move(b)));
  REQUIRE(b);  // untouched
  CHECK(*b == 2);
  CHECK(**c.try_recv() == 1);
  CHECK(!c.try_recv());
  // A value of another type is converted by copying, so a refused one is
  // untouched too (an rvalue included).
  goro::Channel<std::optional<std::string>> names(1);
  std::string first = "first", second = "a name longer than any small-string buffer";
  CHECK(names.try_send(std::move(first)));
  CHECK(!names.try_send(std::move(second)));
  CHECK(second == "a name longer than any small-string buffer");
  CHECK(names.try_recv()->value() == "first");
  goro::Channel<int> rendezvous;
  CHECK(!rendezvous.try_send(1));
  CHECK(!rendezvous.try_recv());
  goro::Channel<int> nil = nullptr;
  CHECK(!nil.try_send(1));
  CHECK(!nil.try_recv());
}

TEST_CASE("a moved-from channel handle is nil; the channel went with the move", "[channel]") {
  goro::Channel<int> a(1);
  goro::Channel<int> b = std::move(a);
  CHECK(a.is_nil());  // NOLINT(bugprone-use-after-move): the point of the test
  CHECK_FALSE(a.try_send(1));
  CHECK_THROWS_AS(a.close(), goro::channel_closed);
  CHECK(b.try_send(7));
  goro::RecvChannel<int> r = b;
  goro::RecvChannel<int> r2 = std::move(r);
  goro::SendChannel<int> s = b;
  goro::Channel<int> other(1);
  goro::SendChannel<int> s2 = other;
  s2 = std::move(s);  // move assignment
  CHECK(r.is_nil());  // NOLINT(bugprone-use-after-move)
  CHECK(s.is_nil());  // NOLINT(bugprone-use-after-move)
  CHECK_FALSE(r.try_recv());
  CHECK(r2.try_recv() == 7);
  CHECK(s2.try_send(8));
  CHECK(b.try_recv() == 8);
}

TEST_CASE("capacity: a literal 0 compiles, impossible capacities throw std::length_error", "[channel]") {
  goro::Channel<int> zero(0);
  CHECK(zero.capacity() == 0);
  CHECK(!zero.is_nil());
  CHECK_THROWS_AS(goro::Channel<int>(-1), std::length_error);
  CHECK_THROWS_AS(goro::Channel<std::string>(std::numeric_limits<std::size_t>::max() / 2),
                  std::length_error);
  CHECK_THROWS_AS(goro::Channel<int>(std::size_t{1} << 60), std::length_error);
  // Addressable but more than this machine can give: still length_error.
  // (The sanitizers' allocators abort on such requests instead of failing.)
  if (!goro_test::kAsan && !goro_test::kTsan) {
    CHECK_THROWS_AS(goro::Channel<char>(std::size_t{1} << 46), std::length_error);
  }
}

TEST_CASE("a nil channel blocks forever (reported as deadlock)", "[channel]") {
  CHECK_THROWS_AS(goro::run([] { goro::Channel<int> nil = nullptr; nil.recv(); }, with_workers(1)),
                  goro::deadlock_error);
  try {
    goro::run([] { goro::Channel<int> c; c.send(1); }, with_workers(2));
    FAIL("expected deadlock");
  } catch (const goro::deadlock_error& e) {
    CHECK(std::string(e.what()).find("[chan send]") != std::string::npos);
  }
}

// --- Threads --------------------------------------------------------------------
TEST_CASE("plain threads and fibers share channels; nothing lost or duplicated", "[channel][threads]") {
  const int n = static_cast<int>(scaled(100'000, 50'000, 10'000));
  const int producers = 2;  // threads
  goro::Channel<int> c(64);
  goro::Channel<int> out(64);
  std::vector<std::thread> threads;
  goro::WaitGroup registered;
  registered.add(producers + 1);
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      registered.done();
      for (int i = p; i < n; i += producers) c.send(i);
    });
  }
  std::vector<int> seen(static_cast<std::size_t>(n), 0);
  threads.emplace_back([&] {  // a plain-thread consumer of what fibers forward
    registered.done();
    for (int v : out) seen[static_cast<std::size_t>(v)]++;
  });
  registered.wait();
  goro::run(
      [&] {
        goro::WaitGroup fwd;
        std::atomic<int> received{0};
        for (int f = 0; f < 4; ++f) {
          fwd.go([&] {
            while (received.fetch_add(1) < n) out.send(*c.recv());
          });
        }
        fwd.wait();
        out.close();
      },
      with_workers(2));
  for (auto& t : threads) t.join();
  CHECK(std::count(seen.begin(), seen.end(), 1) == n);
}

TEST_CASE("channels between plain threads only", "[channel][threads]") {
  goro::Channel<int> c;
  std::thread producer([c] {
    for (int i = 0; i < 1000; ++i) c.send(i);
    c.close();
  });
  long sum = 0;
  for (int v : c) sum += v;
  producer.join();
  CHECK(sum == 999 * 1000 / 2);
}

TEST_CASE("channel states are recycled through the thread's small-block cache", "[channel][cache]") {
  using goro::detail::SmallBlockCache;
  if (!SmallBlockCache::cacheable(16)) {
    SUCCEED("AddressSanitizer build: the cache is bypassed so use-after-free is still reported");
    return;
  }
  const void* first = nullptr;
  {
    goro::Channel<int> ch(4);
    first = ch.get();
  }
  goro::Channel<int> again(4);
  CHECK(static_cast<const void*>(again.get()) == first);  // the block freed last comes back first

  // A state freed on another thread joins that thread's cache, intact.
  auto moved = std::make_unique<goro::Channel<std::string>>(2);
  moved->send("kept");
  const void* block = moved->get();
  bool reused_there = false;
  std::thread([&] {
    CHECK(moved->recv() == std::optional<std::string>("kept"));
    moved.reset();
    goro::Channel<std::string> there(2);
    reused_there = static_cast<const void*>(there.get()) == block;
    there.send("fresh");
    CHECK(there.recv() == std::optional<std::string>("fresh"));
  }).join();
  CHECK(reused_there);
}

TEST_CASE("small-block cache: a LIFO list per 16-byte size class", "[cache]") {
  using goro::detail::SmallBlockCache;
  if (!SmallBlockCache::cacheable(16)) return;
  std::thread([] {  // a fresh thread: an empty cache
    SmallBlockCache& cache = SmallBlockCache::of_this_thread();
    void* a = cache.allocate(40);
    void* b = cache.allocate(200);
    void* c = cache.allocate(40);
    cache.deallocate(a, 40);
    cache.deallocate(b, 200);
    cache.deallocate(c, 40);
    void* b2 = cache.allocate(200);
    void* c2 = cache.allocate(33);  // 33..48 bytes share 40's class
    void* a2 = cache.allocate(48);
    void* fresh = cache.allocate(48);
    CHECK(b2 == b);  // each size class has its own list
    CHECK(c2 == c);  // the block freed last comes back first
    CHECK(a2 == a);
    CHECK(fresh != a);  // the class is empty now: fresh memory
    for (void* p : {b2}) cache.deallocate(p, 200);
    for (void* p : {c2, a2, fresh}) cache.deallocate(p, 48);
  }).join();
}
