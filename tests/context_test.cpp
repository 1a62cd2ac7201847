// Context: Go's context semantics — cancellation trees, deadlines, values —
// from fibers and plain threads.
#include <goro/context.hpp>
#include <goro/select.hpp>
#include <goro/sync.hpp>
#include <goro/time.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "allocation_counter.hpp"  // g_allocations, kCountsAllocations
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

// wait_until() polls `pred` (sleeping 1 ms at a time, which parks a fiber
// and sleeps a plain thread) for up to `limit`; returns whether it held.
// Tests use it where a broken implementation would otherwise hang.
template <class Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = 10s) {
  auto until = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    goro::this_fiber::sleep_for(1ms);
  }
  return true;
}

// what_of() rethrows a cause and returns its message ("" for null).
std::string what_of(const std::exception_ptr& e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  }
}

// code_of() is the code of a std::system_error cause, {} for anything else.
std::error_code code_of(const std::exception_ptr& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& ex) {
    return ex.code();
  } catch (...) {
    return {};
  }
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

TEST_CASE("a moved-from Context is background(); the context moved with the handle", "[context]") {
  auto [ctx, cancel] = goro::with_timeout(goro::background(), 1h);
  goro::Context moved = std::move(ctx);
  CHECK(ctx == goro::background());  // NOLINT(bugprone-use-after-move): the point of the test
  CHECK_FALSE(ctx.err());
  CHECK_FALSE(ctx.deadline());
  CHECK(ctx.done().is_nil());
  goro::Context with_val = goro::with_value(moved, kRequestId, std::string("r1"));
  goro::Context assigned;
  assigned = std::move(with_val);
  CHECK(with_val == goro::background());  // NOLINT(bugprone-use-after-move)
  CHECK(with_val.value(kRequestId) == nullptr);
  REQUIRE(assigned.value(kRequestId) != nullptr);
  CHECK(*assigned.value(kRequestId) == "r1");
  CHECK(moved.deadline());
  cancel();
  CHECK(moved.err() == goro::errc::canceled);
  CHECK(assigned.err() == goro::errc::canceled);
  CHECK_FALSE(ctx.err());  // background is never cancelled
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

TEST_CASE("done(): one channel per canceller, usable after every Context handle is gone", "[context]") {
  goro::RecvChannel<goro::Unit> done = nullptr;
  goro::CancelFunc cancel;
  {
    auto [ctx, c] = goro::with_cancel(goro::background());
    goro::Context valued = goro::with_value(ctx, kUserId, 7);
    CHECK(valued.done() == ctx.done());  // a value layer shares its canceller's channel
    done = valued.done();                // the handle aliases the value node's ownership
    cancel = c;
  }  // ctx and valued dropped: `done` (and the CancelFunc) keep the nodes alive
  CHECK_FALSE(done.closed());
  cancel();
  CHECK(done.closed());
  CHECK_FALSE(done.recv());
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

TEST_CASE("Cancel tree: children dropped on another thread while the parent is cancelled", "[context][tree][threads]") {
  // A child destroyed during its parent's detach pass either unlinks itself
  // under the parent's lock or sees itself already detached and frees itself
  // without it; either way the parent must never touch it afterwards.
  const int rounds = static_cast<int>(scaled(50, 20, 5));
  const int width = static_cast<int>(scaled(2'000, 500, 200));
  int leftovers = 0;
  int live = 0;
  for (int r = 0; r < rounds; ++r) {
    auto [parent, cancel_parent] = goro::with_cancel(goro::background());
    std::vector<goro::Context> dropped, kept;
    for (int i = 0; i < width; ++i) (i % 2 ? dropped : kept).push_back(goro::with_cancel(parent).first);
    std::atomic<bool> go{false};
    std::thread dropper([&] {
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      while (!dropped.empty()) dropped.pop_back();  // each pop may destroy a linked or a detached child
    });
    go.store(true, std::memory_order_release);
    cancel_parent();
    dropper.join();
    leftovers += static_cast<int>(children_of(parent));
    for (const auto& k : kept) live += k.err() ? 0 : 1;
  }
  CHECK(leftovers == 0);
  CHECK(live == 0);
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
  // The deadline counts from with_timeout(), so the wait is timed from just
  // before it (the first timer of a process may take a while to set up).
  auto start = std::chrono::steady_clock::now();
  auto [ctx, cancel] = goro::with_timeout(goro::background(), 15ms);
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
        const std::uint64_t allocations_before = g_allocations.load();
        cancel_root();
        // One pass: its work list grows geometrically (it was copied whole at
        // every level, which made a 40,000-deep chain take seconds).
        if (kCountsAllocations) CHECK(g_allocations.load() - allocations_before <= 64);
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

TEST_CASE("Values: a key of another type at a dead key's address finds nothing", "[context][values]") {
  // Keys compare by address; a key that dies (a member of a freed object)
  // may leave its address to a key of another type.
  alignas(std::max(alignof(goro::ContextKey<long>), alignof(goro::ContextKey<std::string>)))
      unsigned char storage[std::max(sizeof(goro::ContextKey<long>), sizeof(goro::ContextKey<std::string>))];
  auto* old_key = new (storage) goro::ContextKey<long>("old");
  const goro::Context ctx = goro::with_value(goro::background(), *old_key, 7L);
  REQUIRE(ctx.value(*old_key));
  CHECK(*ctx.value(*old_key) == 7L);
  old_key->~ContextKey();
  auto* new_key = new (storage) goro::ContextKey<std::string>("new");
  REQUIRE(static_cast<const void*>(new_key) == static_cast<const void*>(old_key));
  CHECK(ctx.value(*new_key) == nullptr);  // not the long, read as a std::string
  new_key->~ContextKey();
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
        std::thread t([&, r = racy, c = cancel_racy] {
          for (int i = 0; i < rounds; ++i) auto unused = goro::with_cancel(r);
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

// Go's Err() and a second cancel() wait on the mutex the first cancellation
// holds while it closes done and cancels the children. So once err()
// reports an error, or any cancel() has returned, done() is closed and
// every descendant is cancelled, even while the cancellation that did it
// is still running on another thread.
TEST_CASE("err() and cancel() report a cancellation only once it is through: done closed, descendants cancelled",
          "[context][threads]") {
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(2'000, 400, 60));
  constexpr int kChildren = 64;
  goro::run(
      [&] {
        goro::Channel<goro::CancelFunc> to_cancel(1);
        std::thread canceller([to_cancel] {
          for (const goro::CancelFunc& cancel : to_cancel) cancel();
        });
        int early_err = 0, open_done = 0, live_children = 0;
        for (int r = 0; r < rounds; ++r) {
          auto [parent, cancel_parent] = goro::with_cancel(goro::background());
          std::vector<goro::Context> children;
          for (int i = 0; i < kChildren; ++i) children.push_back(goro::with_cancel(parent).first);
          to_cancel.send(cancel_parent);
          if (r % 2 == 0) {
            while (!parent.err()) {
            }
          } else {
            cancel_parent();  // racing the thread's: returns once the cancellation is through
          }
          if (parent.err() != goro::errc::canceled) ++early_err;
          if (!parent.done().closed()) ++open_done;
          for (const goro::Context& child : children) {
            if (child.err() != goro::errc::canceled || !child.done().closed()) ++live_children;
          }
        }
        to_cancel.close();
        canceller.join();
        CHECK(early_err == 0);
        CHECK(open_done == 0);
        CHECK(live_children == 0);
      },
      with_workers(workers));
}

TEST_CASE("a parent's cancellation waits for a child's racing one below it: by cancel() and by deadline",
          "[context][threads][deadline]") {
  // A plain thread cancels a child that has a subtree of its own while the
  // parent is cancelled (by its CancelFunc, or by its deadline passing): once
  // the parent reports, the child's subtree must be cancelled too.
  const std::size_t workers = GORO_WORKERS();
  const bool by_deadline = GENERATE(false, true);
  const int rounds = static_cast<int>(scaled(300, 100, 20));
  constexpr int kGrandchildren = 400;
  goro::run(
      [&] {
        int early = 0;
        for (int r = 0; r < rounds; ++r) {
          const auto at = std::chrono::steady_clock::now() + 2ms;
          auto [parent, cancel_parent] =
              by_deadline ? goro::with_deadline(goro::background(), at) : goro::with_cancel(goro::background());
          auto [child, cancel_child] = goro::with_cancel(parent);
          std::vector<goro::Context> grandchildren;
          for (int i = 0; i < kGrandchildren; ++i) grandchildren.push_back(goro::with_cancel(child).first);
          std::thread canceller([at, cancel_child = cancel_child] {
            while (std::chrono::steady_clock::now() < at) {
            }
            cancel_child();
          });
          if (by_deadline) {
            while (!parent.err()) goro::this_fiber::yield();
          } else {
            const auto late = at + std::chrono::microseconds(r % 40);  // sweeps the child's cancellation
            while (std::chrono::steady_clock::now() < late) {
            }
            cancel_parent();
          }
          for (const goro::Context& g : grandchildren) {
            if (!g.done().closed()) ++early;
          }
          canceller.join();
          cancel_parent();
        }
        INFO((by_deadline ? "cancelled by its deadline" : "cancelled by cancel()"));
        CHECK(early == 0);
      },
      with_workers(workers));
}

// ---------------------------------------------------------------------------
// without_cancel

TEST_CASE("without_cancel: keeps values, stays live when the parent is cancelled", "[context][without_cancel]") {
  auto [parent, cancel_parent] = goro::with_timeout(goro::with_value(goro::background(), kUserId, 7), 1h);
  goro::Context detached = goro::without_cancel(goro::with_value(parent, kRequestId, "req-9"));
  auto [below, cancel_below] = goro::with_cancel(detached);
  CHECK(children_of(parent) == 0);  // `below` hangs from no canceller of parent's
  REQUIRE(detached.value(kUserId));
  CHECK(*detached.value(kUserId) == 7);
  CHECK(*below.value(kRequestId) == "req-9");
  CHECK_FALSE(detached.deadline());  // the parent's deadline is not inherited
  CHECK_FALSE(below.deadline());
  CHECK(detached.done().is_nil());

  cancel_parent();
  CHECK(parent.err() == goro::errc::canceled);
  CHECK_FALSE(detached.err());
  CHECK_FALSE(below.err());
  CHECK_FALSE(done_now(below));
  CHECK(goro::cause(detached) == nullptr);
  CHECK(*detached.value(kUserId) == 7);  // values outlive the parent's cancellation

  cancel_below();  // its own cancellation still works
  CHECK(below.err() == goro::errc::canceled);
  CHECK_FALSE(detached.err());
}

TEST_CASE("without_cancel: an already-cancelled parent gives a live context", "[context][without_cancel]") {
  auto [parent, cancel_parent] = goro::with_cancel_cause(goro::background());
  cancel_parent(std::runtime_error("gone"));
  goro::Context detached = goro::without_cancel(parent);
  CHECK_FALSE(detached.err());
  CHECK(goro::cause(detached) == nullptr);
  auto [child, cancel_child] = goro::with_cancel(detached);  // not born cancelled
  CHECK_FALSE(child.err());
  cancel_child();
}

// ---------------------------------------------------------------------------
// Causes

TEST_CASE("with_cancel_cause: the cause reaches children and grandchildren", "[context][cause]") {
  auto [root, cancel_root] = goro::with_cancel_cause(goro::background());
  auto [child, cancel_child] = goro::with_cancel(goro::with_value(root, kUserId, 1));
  auto [grandchild, cancel_grandchild] = goro::with_timeout(goro::with_value(child, kRequestId, "r"), 1h);
  goro::Context leaf = goro::with_value(grandchild, kOtherInt, 3);
  CHECK(goro::cause(leaf) == nullptr);  // live: no cause
  CHECK(goro::cause(root) == nullptr);

  cancel_root(std::runtime_error("shutting down"));
  CHECK(root.err() == goro::errc::canceled);  // err() is still Go's Err()
  CHECK(grandchild.err() == goro::errc::canceled);
  CHECK(what_of(goro::cause(root)) == "shutting down");
  CHECK(what_of(goro::cause(child)) == "shutting down");
  CHECK(what_of(goro::cause(grandchild)) == "shutting down");
  CHECK(goro::cause(leaf) == goro::cause(root));  // the same exception object
  CHECK_THROWS_AS(std::rethrow_exception(goro::cause(leaf)), std::runtime_error);

  auto [late, cancel_late] = goro::with_cancel(grandchild);  // born cancelled: inherits the cause
  CHECK(what_of(goro::cause(late)) == "shutting down");
  for (auto& c : {cancel_child, cancel_grandchild, cancel_late}) c();
}

TEST_CASE("cause: no cause (nullptr, empty error_code, plain CancelFunc) falls back to err()", "[context][cause]") {
  CHECK(goro::cause(goro::background()) == nullptr);

  auto [a, cancel_a] = goro::with_cancel_cause(goro::background());
  cancel_a(nullptr);
  REQUIRE(goro::cause(a));
  CHECK(code_of(goro::cause(a)) == goro::errc::canceled);
  CHECK_THROWS_AS(std::rethrow_exception(goro::cause(a)), std::system_error);

  auto [b, cancel_b] = goro::with_cancel_cause(goro::background());
  cancel_b(std::error_code{});
  CHECK(code_of(goro::cause(b)) == goro::errc::canceled);

  auto [c, cancel_c] = goro::with_cancel(goro::background());
  auto [c_child, cancel_c_child] = goro::with_cancel_cause(c);
  cancel_c();
  CHECK(code_of(goro::cause(c)) == goro::errc::canceled);
  CHECK(code_of(goro::cause(c_child)) == goro::errc::canceled);  // the parent gave no cause
  cancel_c_child(std::runtime_error("too late"));                // already cancelled: ignored
  CHECK(code_of(goro::cause(c_child)) == goro::errc::canceled);

  auto [d, cancel_d] = goro::with_timeout(goro::background(), 1ms);
  REQUIRE(wait_until([d = d] { return static_cast<bool>(d.err()); }));
  CHECK(code_of(goro::cause(d)) == goro::errc::deadline_exceeded);
  cancel_d();

  auto [e, cancel_e] = goro::with_cancel_cause(goro::background());
  cancel_e(std::make_error_code(std::errc::connection_reset));  // an error_code becomes a system_error
  CHECK(code_of(goro::cause(e)) == std::errc::connection_reset);
  CHECK(e.err() == goro::errc::canceled);
}

TEST_CASE("cause: the first cause wins; later cancels change nothing", "[context][cause]") {
  auto [parent, cancel_parent] = goro::with_cancel_cause(goro::background());
  auto [child, cancel_child] = goro::with_cancel_cause(parent);
  goro::CancelCauseFunc copy = cancel_parent;
  copy(std::runtime_error("first"));
  cancel_parent(std::runtime_error("second"));
  cancel_child(std::runtime_error("child's own"));  // the parent's reached it first
  CHECK(what_of(goro::cause(parent)) == "first");
  CHECK(what_of(goro::cause(child)) == "first");

  // A child cancelled on its own keeps its cause when the parent follows.
  auto [p2, cancel_p2] = goro::with_cancel_cause(goro::background());
  auto [c2, cancel_c2] = goro::with_cancel_cause(p2);
  cancel_c2(std::runtime_error("child first"));
  cancel_p2(std::runtime_error("parent later"));
  CHECK(what_of(goro::cause(c2)) == "child first");
  CHECK(what_of(goro::cause(p2)) == "parent later");
  goro::CancelCauseFunc nothing;
  nothing(std::runtime_error("no context"));  // a default CancelCauseFunc does nothing
}

TEST_CASE("cause: racing cancels agree on one cause across the tree", "[context][cause][threads]") {
  const int rounds = static_cast<int>(scaled(200, 100, 20));
  int disagreements = 0;
  for (int r = 0; r < rounds; ++r) {
    auto [root, cancel_root] = goro::with_cancel_cause(goro::background());
    auto [child, cancel_child] = goro::with_cancel(root);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([c = cancel_root, t] { c(std::runtime_error(std::to_string(t))); });
    }
    for (auto& t : threads) t.join();
    std::string winner = what_of(goro::cause(root));
    if (winner.empty() || what_of(goro::cause(child)) != winner) ++disagreements;
    cancel_child();
  }
  CHECK(disagreements == 0);
}

TEST_CASE("with_timeout_cause / with_deadline_cause: the cause is recorded when the deadline passes",
          "[context][cause][deadline]") {
  auto timeout_cause = std::make_exception_ptr(std::runtime_error("backend too slow"));
  auto [timed, cancel_timed] = goro::with_timeout_cause(goro::background(), 5ms, timeout_cause);
  auto [below, cancel_below] = goro::with_cancel(timed);
  CHECK(goro::cause(timed) == nullptr);
  CHECK_FALSE(timed.done().recv());  // a plain thread waits for the timer
  CHECK(timed.err() == goro::errc::deadline_exceeded);
  CHECK(goro::cause(timed) == timeout_cause);
  // Descendants get it too. As in Go, they are cancelled just after their
  // ancestor's done() closes, so wait for below's own.
  CHECK_FALSE(below.done().recv());
  CHECK(goro::cause(below) == timeout_cause);

  // Cancelled before the deadline: no cause, so err() is reported.
  auto [early, cancel_early] = goro::with_timeout_cause(goro::background(), 1h, timeout_cause);
  cancel_early();
  CHECK(code_of(goro::cause(early)) == goro::errc::canceled);

  // A deadline already past: born cancelled, with the cause.
  auto [past, cancel_past] = goro::with_deadline_cause(goro::background(), std::chrono::system_clock::now() - 1s,
                                                       std::make_exception_ptr(std::runtime_error("expired")));
  CHECK(past.err() == goro::errc::deadline_exceeded);
  CHECK(what_of(goro::cause(past)) == "expired");

  // The parent's earlier deadline wins: its cause (none) is what children see.
  auto [short_parent, cancel_short] = goro::with_timeout(goro::background(), 5ms);
  auto [long_child, cancel_long] = goro::with_timeout_cause(short_parent, 1h, timeout_cause);
  long_child.done().recv();
  CHECK(code_of(goro::cause(long_child)) == goro::errc::deadline_exceeded);
  for (auto& c : {cancel_timed, cancel_below, cancel_past, cancel_short, cancel_long}) c();
}

// ---------------------------------------------------------------------------
// after_func

TEST_CASE("after_func: runs exactly once, in its own fiber, after cancel", "[context][after_func]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> runs{0};
  std::atomic<bool> saw_done{false};
  std::atomic<bool> own_fiber{false};
  bool ran_before_cancel = true;
  bool stop_after_run = true;
  goro::run(
      [&] {
        auto [parent, cancel_parent] = goro::with_cancel(goro::background());
        auto [ctx, cancel] = goro::with_cancel(parent);
        goro::detail::Fiber* canceller = goro::detail::current_fiber();
        goro::StopFunc stop = goro::after_func(ctx, [&, ctx = ctx] {
          runs.fetch_add(1);
          saw_done = ctx.err() == goro::errc::canceled && done_now(ctx);
          goro::detail::Fiber* self = goro::detail::current_fiber();
          own_fiber = self != nullptr && self != canceller;
        });
        goro::this_fiber::sleep_for(5ms);
        ran_before_cancel = runs.load() != 0;
        cancel();
        cancel();         // idempotent
        cancel_parent();  // reaches ctx again: already cancelled
        CHECK(wait_until([&] { return runs.load() > 0; }));
        goro::this_fiber::sleep_for(5ms);  // room for a wrong second run
        stop_after_run = stop();
      },
      with_workers(workers));
  CHECK_FALSE(ran_before_cancel);
  CHECK(runs.load() == 1);
  CHECK(saw_done.load());
  CHECK(own_fiber.load());
  CHECK_FALSE(stop_after_run);  // f already started
}

TEST_CASE("after_func: stop before cancel returns true and f never runs", "[context][after_func]") {
  const std::size_t workers = GORO_WORKERS();
  std::atomic<int> runs{0};
  goro::run(
      [&] {
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        auto token = std::make_shared<int>(0);
        std::weak_ptr<int> watch = token;
        goro::StopFunc stop = goro::after_func(ctx, [&runs, token] { runs.fetch_add(1); });
        token.reset();
        goro::StopFunc copy = stop;
        CHECK(stop());
        CHECK(watch.expired());   // stop() releases f at once, while ctx lives on
        CHECK_FALSE(copy());      // already stopped
        CHECK_FALSE(stop());
        cancel();
        goro::this_fiber::sleep_for(20ms);  // a wrongly started f would have run by now
        CHECK(runs.load() == 0);
        CHECK_FALSE(stop());
      },
      with_workers(workers));
  CHECK(runs.load() == 0);
}

TEST_CASE("after_func: stop after f started returns false and does not wait for f", "[context][after_func]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        goro::Channel<int> started;
        goro::Channel<int> release;
        goro::Channel<int> finished(1);
        goro::StopFunc stop = goro::after_func(ctx, [=]() mutable {
          started.send(1);
          release.recv();  // still running while stop() is called
          finished.send(1);
        });
        cancel();
        started.recv();
        CHECK_FALSE(stop());
        CHECK(finished.try_recv() == std::nullopt);  // stop() did not wait for it
        release.send(1);
        CHECK(finished.recv() == 1);
      },
      with_workers(workers));
}

TEST_CASE("after_func: on an already-cancelled context, f starts at once", "[context][after_func]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        auto [ctx, cancel] = goro::with_cancel(goro::background());
        cancel();
        goro::Channel<int> ran(1);
        goro::StopFunc stop = goro::after_func(goro::with_value(ctx, kUserId, 1), [ran]() mutable { ran.send(1); });
        CHECK(ran.recv() == 1);
        CHECK_FALSE(stop());
      },
      with_workers(workers));
}

TEST_CASE("after_func: a deadline that passes runs f", "[context][after_func][deadline]") {
  const std::size_t workers = GORO_WORKERS();
  goro::run(
      [&] {
        auto [ctx, cancel] = goro::with_timeout(goro::background(), 5ms);
        goro::Channel<std::error_code> seen(1);
        goro::after_func(ctx, [ctx = ctx, seen]() mutable { seen.send(ctx.err()); });
        CHECK(seen.recv() == goro::errc::deadline_exceeded);
        cancel();
      },
      with_workers(workers));
}

TEST_CASE("after_func: registrations are released when a never-cancelled context is destroyed",
          "[context][after_func][leak]") {
  auto [parent, cancel_parent] = goro::with_cancel(goro::background());
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  std::atomic<int> runs{0};
  goro::StopFunc kept;
  {
    auto [ctx, cancel] = goro::with_cancel(parent);
    auto [grandchild, cancel_grandchild] = goro::with_cancel(goro::with_value(ctx, kUserId, 1));
    kept = goro::after_func(grandchild, [&runs, token] { runs.fetch_add(1); });
    for (int i = 0; i < 100; ++i) goro::after_func(ctx, [&runs, token] { runs.fetch_add(1); });
    token.reset();
    CHECK_FALSE(watch.expired());  // held by the registrations
  }  // both contexts and their CancelFuncs dropped, never cancelled
  CHECK(watch.expired());  // every f released although `kept` still holds its registration
  CHECK(children_of(parent) == 0);
  cancel_parent();
  CHECK(kept());  // f was stopped from running (it never will)
  CHECK_FALSE(kept());
  goro::this_fiber::sleep_for(10ms);
  CHECK(runs.load() == 0);

  // A context that can never be done drops f at once.
  auto token2 = std::make_shared<int>(0);
  std::weak_ptr<int> watch2 = token2;
  goro::StopFunc never = goro::after_func(goro::without_cancel(goro::background()), [token2] {});
  token2.reset();
  CHECK(watch2.expired());
  CHECK(never());
  CHECK_FALSE(never());
}

TEST_CASE("after_func: without a runtime f runs on its own thread", "[context][after_func][threads]") {
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  std::atomic<int> runs{0};
  std::atomic<bool> other_thread{false};
  const auto me = std::this_thread::get_id();
  goro::after_func(ctx, [&] {
    other_thread = std::this_thread::get_id() != me;
    runs.fetch_add(1);
  });
  cancel();
  CHECK(wait_until([&] { return runs.load() > 0; }));
  CHECK(other_thread.load());

  // Fired by goro's timer thread, with no runtime: still its own thread.
  auto [timed, cancel_timed] = goro::with_timeout(goro::background(), 2ms);
  goro::after_func(timed, [&] { runs.fetch_add(1); });
  CHECK(wait_until([&] { return runs.load() == 2; }));
  goro::this_fiber::sleep_for(5ms);
  CHECK(runs.load() == 2);
  cancel_timed();
}

TEST_CASE("after_func: stop racing cancel: each f either stopped or run, never both", "[context][after_func]") {
  // Each round releases a plain thread that cancels while this fiber stops
  // the same functions, so some stops land before, some during and some
  // after the cancel. Every function must be counted exactly once.
  const std::size_t workers = GORO_WORKERS();
  const int rounds = static_cast<int>(scaled(200, 100, 20));
  const int per_round = 8;
  std::atomic<int> ran{0};
  int stopped = 0;
  goro::run(
      [&] {
        for (int r = 0; r < rounds; ++r) {
          auto [ctx, cancel] = goro::with_cancel(goro::background());
          std::vector<goro::StopFunc> stops;
          std::vector<goro::Context> children;  // half the functions hang one level down
          for (int i = 0; i < per_round; ++i) {
            if (i % 2) children.push_back(goro::with_cancel(ctx).first);
            stops.push_back(goro::after_func(i % 2 ? children.back() : ctx, [&ran] { ran.fetch_add(1); }));
          }
          std::atomic<bool> ready{false};
          std::atomic<bool> go{false};
          std::thread canceller([&ready, &go, c = cancel] {
            ready = true;
            while (!go.load()) {
            }
            c();
          });
          while (!ready.load()) std::this_thread::yield();
          go = true;
          // Stop 0 to 180 us after the cancel starts: without delay the
          // stops mostly win, with the longer delays f has mostly started.
          auto start_stopping = std::chrono::steady_clock::now() + std::chrono::microseconds(r % 10 * 20);
          while (std::chrono::steady_clock::now() < start_stopping) {
          }
          for (auto& stop : stops) stopped += stop();
          canceller.join();
        }
        CHECK(wait_until([&] { return ran.load() + stopped >= rounds * per_round; }));
        goro::this_fiber::sleep_for(5ms);  // room for a wrong extra run
      },
      with_threads(workers));
  CHECK(ran.load() + stopped == rounds * per_round);
}

TEST_CASE("after_func: a move-only f runs once as an rvalue, or is destroyed unrun", "[context][after_func]") {
  const std::size_t workers = GORO_WORKERS();
  // Owned counts the objects alive, so every path must destroy what f owns.
  struct Owned {
    std::atomic<int>* alive;
    explicit Owned(std::atomic<int>* a) : alive(a) { ++*alive; }
    ~Owned() { --*alive; }
  };
  struct RunOnce {
    std::unique_ptr<Owned> owned;
    goro::Channel<int> ran;
    void operator()() && { ran.send(42); }
  };
  std::atomic<int> alive{0};
  goro::run(
      [&] {
        goro::Channel<int> ran(3);
        {  // cancelled: runs, then its fiber destroys it
          auto [ctx, cancel] = goro::with_cancel(goro::background());
          goro::after_func(ctx, RunOnce{std::make_unique<Owned>(&alive), ran});
          cancel();
          CHECK(ran.recv() == 42);
        }
        {  // stopped first: destroyed unrun
          auto [ctx, cancel] = goro::with_cancel(goro::background());
          goro::StopFunc stop = goro::after_func(ctx, RunOnce{std::make_unique<Owned>(&alive), ran});
          CHECK(stop());
          cancel();
        }
        {  // never cancellable: dropped at once
          goro::after_func(goro::background(), RunOnce{std::make_unique<Owned>(&alive), ran});
        }
        {  // a move-only lambda
          auto [ctx, cancel] = goro::with_cancel(goro::background());
          goro::after_func(ctx, [p = std::make_unique<int>(7), ran]() mutable { ran.send(*p); });
          cancel();
          CHECK(ran.recv() == 7);
        }
        goro::this_fiber::sleep_for(5ms);  // room for a wrong extra run, and for the fibers to exit
        CHECK(ran.size() == 0);
      },
      with_workers(workers));
  CHECK(alive == 0);
}

TEST_CASE("after_func: an empty function throws std::invalid_argument", "[context][after_func][misuse]") {
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  CHECK_THROWS_AS(goro::after_func(ctx, std::function<void()>()), std::invalid_argument);
  CHECK_THROWS_WITH(goro::after_func(ctx, nullptr), Catch::Contains("goro::after_func"));
  void (*null_function)() = nullptr;
  CHECK_THROWS_AS(goro::after_func(ctx, null_function), std::invalid_argument);
  goro::StopFunc none;
  CHECK_FALSE(none());
  cancel();
}

TEST_CASE("after_func: an exception escaping f reaches run()", "[context][after_func]") {
  CHECK_THROWS_WITH(goro::run(
                        [] {
                          auto [ctx, cancel] = goro::with_cancel(goro::background());
                          goro::after_func(ctx, [] { throw std::runtime_error("from after_func"); });
                          cancel();
                          goro::Channel<int> never;
                          never.recv();
                        },
                        with_workers(2)),
                    "from after_func");
}
