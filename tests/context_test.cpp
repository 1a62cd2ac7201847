// Context: Go's context semantics — cancellation trees, deadlines, values —
// from fibers and plain threads.
#include <goro/context.hpp>
#include <goro/select.hpp>
#include <goro/sync.hpp>
#include <goro/time.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "test_support.hpp"

using goro_test::with_threads;

using namespace std::chrono_literals;
using goro_test::scaled;
using goro_test::with_workers;

namespace {

inline const goro::ContextKey<std::string> kRequestId{"request_id"};
inline const goro::ContextKey<int> kUserId{"user_id"};
inline const goro::ContextKey<int> kOtherInt{"other_int"};

// done_now() is true when ctx.done() is closed (a receive would not block).
bool done_now(const goro::Context& ctx) {
  auto done = ctx.done();
  return !done.is_nil() && done.closed();
}

std::size_t children_of(const goro::Context& ctx) {
  auto* node = static_cast<goro::detail::CancelNode*>(ctx.node()->canceller);
  return node ? node->child_count() : 0;
}


}  // namespace

TEST_CASE("background: never done, no deadline, no values", "[context]") {
  goro::Context bg = goro::background();
  CHECK_FALSE(bg.err());
  CHECK_FALSE(bg.deadline());
  CHECK(bg.done().is_nil());
  CHECK(bg.value(kRequestId) == nullptr);
  CHECK(goro::Context() == bg);
  CHECK(goro::todo() == bg);
  goro::Context with_val = goro::with_value(bg, kUserId, 7);
  CHECK(with_val.done().is_nil());  // still can never be cancelled
  CHECK_FALSE(with_val.err());
}

TEST_CASE("errc: category, messages and comparisons", "[context]") {
  std::error_code canceled = goro::errc::canceled;
  std::error_code deadline = goro::errc::deadline_exceeded;
  CHECK(canceled == goro::errc::canceled);
  CHECK(canceled != goro::errc::deadline_exceeded);
  CHECK(std::string(canceled.category().name()) == "goro.context");
  CHECK(&canceled.category() == &goro::context_category());
  CHECK(canceled.message() == "context canceled");
  CHECK(deadline.message() == "context deadline exceeded");
  CHECK(deadline == std::errc::timed_out);
  CHECK(canceled == std::errc::operation_canceled);
  CHECK(static_cast<bool>(canceled));
}

TEST_CASE("with_cancel: cancel closes done and sets err; idempotent", "[context]") {
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  CHECK_FALSE(ctx.err());
  auto done = ctx.done();
  CHECK_FALSE(done.is_nil());
  CHECK_FALSE(done.closed());
  cancel();
  CHECK(ctx.err() == goro::errc::canceled);
  CHECK(done.closed());
  CHECK_FALSE(done.recv());  // closed: receives nullopt at once
  cancel();                  // idempotent
  goro::CancelFunc copy = cancel;
  copy();
  CHECK(ctx.err() == goro::errc::canceled);
  CHECK(done_now(ctx));
  goro::CancelFunc nothing;
  nothing();  // a default CancelFunc does nothing
}

TEST_CASE("done() asked for after cancellation is already closed", "[context]") {
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  cancel();
  CHECK(ctx.done().closed());
  auto [child, cancel_child] = goro::with_cancel(ctx);  // born cancelled
  CHECK(child.err() == goro::errc::canceled);
  CHECK(child.done().closed());
  cancel_child();
}

TEST_CASE("Cancel tree: parent cancel reaches grandchildren, through value layers", "[context][tree]") {
  auto [root, cancel_root] = goro::with_cancel(goro::background());
  auto [child, cancel_child] = goro::with_cancel(goro::with_value(root, kUserId, 1));
  auto [grandchild, cancel_grandchild] = goro::with_timeout(goro::with_value(child, kRequestId, "r"), 1h);
  goro::Context leaf = goro::with_value(grandchild, kOtherInt, 3);
  auto grandchild_done = grandchild.done();
  CHECK_FALSE(leaf.err());
  cancel_root();
  CHECK(child.err() == goro::errc::canceled);
  CHECK(grandchild.err() == goro::errc::canceled);  // the parent's error, not its own deadline
  CHECK(leaf.err() == goro::errc::canceled);
  CHECK(grandchild_done.closed());
  CHECK(done_now(leaf));
  cancel_child();
  cancel_grandchild();
}

TEST_CASE("Cancel tree: child cancel leaves the parent live and unlinks the child", "[context][tree]") {
  auto [parent, cancel_parent] = goro::with_cancel(goro::background());
  auto [a, cancel_a] = goro::with_cancel(parent);
  auto [b, cancel_b] = goro::with_cancel(goro::with_value(parent, kUserId, 2));
  CHECK(children_of(parent) == 2);
  cancel_a();
  CHECK(a.err() == goro::errc::canceled);
  CHECK_FALSE(parent.err());
  CHECK_FALSE(b.err());
  CHECK_FALSE(done_now(parent));
  CHECK(children_of(parent) == 1);  // a unlinked itself
  {
    auto [c, cancel_c] = goro::with_cancel(parent);
    CHECK(children_of(parent) == 2);
  }  // c dropped without cancel: destroying it unlinks it too
  CHECK(children_of(parent) == 1);
  cancel_parent();
  CHECK(b.err() == goro::errc::canceled);
  CHECK(children_of(parent) == 0);
  cancel_b();
}

TEST_CASE("Cancel from a plain thread wakes fibers waiting on done()", "[context][threads]") {
  const std::size_t workers = GORO_WORKERS();
  const int waiters = 50;
  std::atomic<int> woke{0};
  goro::run(
      [&] {
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        goro::WaitGroup wg;
        for (int i = 0; i < waiters; ++i) {
          wg.go([&woke, ctx = ctx, i] {  // no CHECK here: Catch is not thread-safe
            bool ok;
            if (i % 2 == 0) {
              ok = !ctx.done().recv();
            } else {
              goro::Channel<int> never;
              ok = goro::select(goro::recv(never), goro::recv(ctx.done())) == 1;
            }
            if (ok && ctx.err() == goro::errc::canceled) woke.fetch_add(1);
          });
        }
        goro::this_fiber::sleep_for(5ms);
        std::thread canceller([cancel = cancel] { cancel(); });
        wg.wait();
        canceller.join();
      },
      with_threads(workers));
  CHECK(woke.load() == waiters);
}

TEST_CASE("Deadlines: deadline_exceeded vs canceled", "[context][deadline]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        auto [timed, cancel_timed] = goro::with_timeout(goro::background(), 10ms);
        REQUIRE(timed.deadline());
        CHECK_FALSE(timed.done().recv());  // blocks until the deadline passes
        CHECK(timed.err() == goro::errc::deadline_exceeded);
        cancel_timed();  // after the fact: the error does not change
        CHECK(timed.err() == goro::errc::deadline_exceeded);

        auto [sys, cancel_sys] = goro::with_deadline(goro::background(), std::chrono::system_clock::now() + 10ms);
        REQUIRE(sys.deadline());
        sys.done().recv();
        CHECK(sys.err() == goro::errc::deadline_exceeded);
        cancel_sys();

        auto [past, cancel_past] = goro::with_deadline(goro::background(), std::chrono::steady_clock::now() - 1s);
        CHECK(past.err() == goro::errc::deadline_exceeded);  // already past: born done
        CHECK(done_now(past));
        cancel_past();

        auto [early, cancel_early] = goro::with_timeout(goro::background(), 20ms);
        cancel_early();
        CHECK(early.err() == goro::errc::canceled);
        std::this_thread::sleep_for(30ms);  // (blocks the worker; no timer involved)
        CHECK(early.err() == goro::errc::canceled);  // the deadline passing later changes nothing
      },
      goro_test::with_workers(workers));
}

TEST_CASE("Deadlines: a child's deadline is the earlier of its own and its parent's", "[context][deadline]") {
  auto [parent, cancel_parent] = goro::with_timeout(goro::background(), 1h);
  auto [later, cancel_later] = goro::with_timeout(parent, 2h);
  auto [sooner, cancel_sooner] = goro::with_timeout(parent, 1min);
  auto [plain, cancel_plain] = goro::with_cancel(parent);
  goro::Context valued = goro::with_value(sooner, kUserId, 1);
  REQUIRE(parent.deadline());
  CHECK(later.deadline() == parent.deadline());
  CHECK(plain.deadline() == parent.deadline());
  CHECK(*sooner.deadline() < *parent.deadline());
  CHECK(valued.deadline() == sooner.deadline());
  auto now = std::chrono::steady_clock::now();
  CHECK(*sooner.deadline() > now + 50s);
  CHECK(*sooner.deadline() < now + 70s);
  // A child of a short-lived parent ends with the parent's deadline.
  auto [short_parent, cancel_short] = goro::with_timeout(goro::background(), 5ms);
  auto [long_child, cancel_long] = goro::with_timeout(short_parent, 1h);
  long_child.done().recv();  // a plain thread blocks until the parent's timer fires
  CHECK(long_child.err() == goro::errc::deadline_exceeded);
  auto [huge, cancel_huge] = goro::with_timeout(goro::background(), std::chrono::hours::max());
  CHECK_FALSE(huge.err());
  for (auto& c : {cancel_parent, cancel_later, cancel_sooner, cancel_plain, cancel_short, cancel_long, cancel_huge}) c();
  CHECK(parent.err() == goro::errc::canceled);
}

TEST_CASE("Context without a runtime: a plain thread waits for a deadline", "[context][threads]") {
  auto [ctx, cancel] = goro::with_timeout(goro::background(), 15ms);
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(ctx.done().recv());
  CHECK(std::chrono::steady_clock::now() - start >= 10ms);
  CHECK(ctx.err() == goro::errc::deadline_exceeded);
  cancel();
}

TEST_CASE("Cancel tree: 100,000 children are cancelled in one pass", "[context][tree][scale]") {
  const std::size_t n = scaled(100'000, 30'000, 10'000);
  auto [parent, cancel_parent] = goro::with_cancel(goro::background());
  std::vector<std::pair<goro::Context, goro::CancelFunc>> children;
  children.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    goro::Context base = i % 3 == 0 ? goro::with_value(parent, kUserId, static_cast<int>(i)) : parent;
    children.push_back(goro::with_cancel(base));
  }
  // Some children have done channels, some have children of their own.
  std::vector<goro::RecvChannel<goro::Unit>> dones;
  for (std::size_t i = 0; i < n; i += 10) dones.push_back(children[i].first.done());
  auto [grandchild, cancel_grandchild] = goro::with_cancel(children[n / 2].first);
  CHECK(children_of(parent) == n);

  auto start = std::chrono::steady_clock::now();
  cancel_parent();
  auto took = std::chrono::steady_clock::now() - start;

  std::size_t cancelled = 0;
  for (auto& [ctx, cancel] : children) cancelled += ctx.err() == goro::errc::canceled;
  CHECK(cancelled == n);
  std::size_t closed = 0;
  for (auto& d : dones) closed += d.closed();
  CHECK(closed == dones.size());
  CHECK(grandchild.err() == goro::errc::canceled);
  CHECK(children_of(parent) == 0);
  CHECK(took < 5s);  // sanity only: one pass, not one per child with rescans
  for (auto& [ctx, cancel] : children) cancel();  // no-ops now
  cancel_grandchild();
}

TEST_CASE("Cancel tree: a deep chain is cancelled and released without deep recursion", "[context][tree][scale]") {
  // A chain this deep would overflow a fiber's stack if cancelling or
  // releasing it recursed once per level.
  const std::size_t depth = scaled(100'000, 20'000, 5'000);
  goro::run(
      [&] {
        auto [root, cancel_root] = goro::with_cancel(goro::background());
        goro::Context ctx = root;
        std::vector<goro::CancelFunc> cancels;
        for (std::size_t i = 0; i < depth; ++i) {
          if (i % 2 == 0) {
            auto [child, cancel] = goro::with_cancel(ctx);
            ctx = child;
            cancels.push_back(cancel);
          } else {
            ctx = goro::with_value(ctx, kUserId, static_cast<int>(i));
          }
        }
        CHECK(*ctx.value(kUserId) == static_cast<int>(depth - (depth % 2 == 0 ? 1 : 2)));
        cancel_root();
        CHECK(ctx.err() == goro::errc::canceled);
        cancels.clear();
        ctx = goro::background();  // releases the whole chain from this fiber
      },
      with_workers(1));
}

TEST_CASE("Values: found through cancel layers, nearest wins, keys are type-safe", "[context][values]") {
  goro::Context base = goro::with_value(goro::background(), kRequestId, "req-1");
  base = goro::with_value(base, kUserId, 42);
  auto [c1, cancel1] = goro::with_cancel(base);
  auto [c2, cancel2] = goro::with_timeout(c1, 1h);
  goro::Context top = goro::with_value(c2, kUserId, 43);  // shadows 42

  REQUIRE(top.value(kRequestId));
  CHECK(*top.value(kRequestId) == "req-1");
  CHECK(*top.value(kUserId) == 43);
  CHECK(*c2.value(kUserId) == 42);
  CHECK(top.value(kOtherInt) == nullptr);  // same type, different key: not found
  const goro::ContextKey<int> local_key;   // a key is its identity, not its name
  CHECK(top.value(local_key) == nullptr);

  cancel1();
  CHECK(top.err() == goro::errc::canceled);
  CHECK(*top.value(kRequestId) == "req-1");  // values outlive cancellation
  const std::string* kept = top.value(kRequestId);
  base = goro::background();
  CHECK(*kept == "req-1");  // still held by `top`
  cancel2();
}

TEST_CASE("Seed program: workers stop on with_timeout and all report cancellation", "[context][seed]") {
  const std::size_t workers = GORO_WORKERS();
  const int pool = 10;
  const auto timeout = goro_test::kTsan ? 100ms : 50ms;  // the seed uses 2 s
  std::atomic<int> reported{0};
  std::atomic<int> ticks{0};
  goro::run(
      [&] {
        auto [ctx, cancel] = goro::with_timeout(goro::background(), timeout);
        goro::WaitGroup wg;
        for (int w = 0; w < pool; ++w) {
          wg.go([&, ctx = ctx] {
            goro::Ticker tick(1ms);
            for (;;) {
              bool stop = false;
              goro::select(goro::recv(ctx.done(), [&] { stop = true; }),
                           goro::recv(tick.channel(), [&] { ticks.fetch_add(1); }));
              if (stop) break;
            }
            if (ctx.err() == goro::errc::deadline_exceeded) reported.fetch_add(1);
          });
        }
        wg.wait();
        cancel();
      },
      with_workers(workers));
  CHECK(reported.load() == pool);
  CHECK(ticks.load() > 0);
}

TEST_CASE("Context handles are safe to use concurrently", "[context][threads]") {
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(2'000, 500, 100));
  goro::run(
      [&] {
        auto [parent, cancel_parent] = goro::with_cancel(goro::background());
        goro::WaitGroup wg;
        std::atomic<int> bad{0};
        for (int f = 0; f < 8; ++f) {
          wg.go([&, parent = parent] {
            for (int i = 0; i < rounds; ++i) {
              auto [child, cancel] = goro::with_timeout(goro::with_value(parent, kUserId, i), 1h);
              auto done = child.done();
              if (child.err() || *child.value(kUserId) != i) bad.fetch_add(1);
              cancel();  // always, as Go's vet insists: it unlinks the child and frees its timer
              if (!done.closed()) bad.fetch_add(1);
              if (i % 64 == 0) goro::this_fiber::yield();
            }
          });
        }
        // Cancel racing with creation on a plain thread.
        auto [racy, cancel_racy] = goro::with_cancel(parent);
        std::thread t([&, c = cancel_racy] {
          for (int i = 0; i < rounds; ++i) auto unused = goro::with_cancel(racy);
          c();
        });
        wg.wait();
        t.join();
        CHECK(bad.load() == 0);
        CHECK(racy.err() == goro::errc::canceled);
        CHECK(children_of(parent) == 0);  // every child unlinked itself when cancelled
        cancel_parent();
      },
      with_threads(workers));
}
