// gorobench_fiber: the Boost.Fiber side of goro's side-by-side benchmark.
//
// Usage: gorobench_fiber <workload> <workers> [n]
//        gorobench_fiber <curve workload> <workers> [n [ops]]
//
// Runs one workload on <workers> threads scheduled by
// boost::fibers::algo::work_stealing and prints exactly one line to stdout:
// "<workload> <value> <unit>". The optional n overrides the workload's size.
// The workloads mirror bench/go/main.go and bench/peer/goro_peer.cpp one for
// one; keep the three in step.
//
// Peer configuration (see bench/README.md for the reasoning):
//  * every fiber gets a 16 KiB boost::fibers::fixedsize_stack (malloc'd, no
//    guard page). protected_fixedsize_stack needs one mmap + guard page per
//    fiber, which 1M live fibers cannot have under vm.max_map_count = 65530;
//    pooled_fixedsize_stack is not thread-safe, and with work stealing a
//    fiber may end (and free its stack) on another thread.
//  * glibc is told to keep freed memory (M_TRIM_THRESHOLD 1 GiB): by default
//    it hands the freed stacks of a finished batch back to the kernel and the
//    next batch page-faults them in again, which made spawn_join and
//    waitgroup 5-15x slower on the test VM. Go and goro both reuse stacks.
//  * boost::fibers::buffered_channel needs a power-of-two capacity and holds
//    capacity - 1 items. Go's capacity 1024 becomes 1024 (1023 usable),
//    100 becomes 128 (127 usable), 1 becomes 2 (1 usable), 10 becomes 16.
//  * Boost.Fiber has neither WaitGroup, select nor context: WaitGroup is a
//    mutex + condition_variable + counter, select is a randomised try_pop
//    polling loop, and a context is a mutex + condition_variable + flag with
//    a list of children (below).
//
// Build: g++ -O2 -std=c++20 main.cpp -lboost_fiber -lboost_context -pthread
#include <boost/fiber/all.hpp>
#include <malloc.h>

#include "../common/driver.hpp"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace bf = boost::fibers;

namespace {

using namespace gorobench;

// Channel capacities (powers of two, see above) and the fibers' stack size;
// the other fixed sizes are in driver.hpp.
constexpr std::size_t kBufferedCapacity = 1024;  // Go: 1024
constexpr std::size_t kPoolCapacity = 128;       // Go: 100 (power of two needed)
constexpr std::size_t kSelectCapacity = 2;       // Go: 1 (one usable slot)
constexpr std::size_t kSkynetCapacity = 16;      // Go: 10 (never full)
constexpr std::size_t kStackSize = 16 * 1024;

using Status = bf::channel_op_status;

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "gorobench_fiber: verification failed: %s\n", msg.c_str());
  std::fflush(stderr);
  std::_Exit(1);  // other threads are still inside the scheduler
}

// Starts a detached fiber on a small malloc'd stack.
template <class F>
void spawn(F&& f) {
  bf::fiber(std::allocator_arg, bf::fixedsize_stack(kStackSize), std::forward<F>(f)).detach();
}

// Go's sync.WaitGroup for fibers. done() notifies while holding the mutex,
// so the waiter cannot return (and destroy the group) before done() is over.
class WaitGroup {
 public:
  void add(std::int64_t delta) {
    std::lock_guard<bf::mutex> lk(m_);
    count_ += delta;
    if (count_ == 0) cv_.notify_all();
  }
  void done() { add(-1); }
  void wait() {
    std::unique_lock<bf::mutex> lk(m_);
    cv_.wait(lk, [this] { return count_ == 0; });
  }

 private:
  bf::mutex m_;
  bf::condition_variable cv_;
  std::int64_t count_ = 0;
};

// A minimal emulation of Go's context.WithCancel: each context has its own
// "done" condition (mutex + condition_variable + flag) and registers with its
// parent, and cancelling a context cancels its children, as Go does.
class CancelCtx {
 public:
  CancelCtx() = default;
  explicit CancelCtx(CancelCtx& parent) {
    std::unique_lock<bf::mutex> lk(parent.m_);
    if (parent.done_) {
      lk.unlock();
      cancel();
    } else {
      parent.children_.push_back(this);
    }
  }
  CancelCtx(const CancelCtx&) = delete;
  CancelCtx& operator=(const CancelCtx&) = delete;

  // Idempotent; wakes every waiter and cancels the children.
  void cancel() {
    std::vector<CancelCtx*> children;
    {
      std::lock_guard<bf::mutex> lk(m_);
      if (done_) return;
      done_ = true;
      children.swap(children_);
      cv_.notify_all();
    }
    for (CancelCtx* c : children) c->cancel();
  }
  // Blocks until cancelled (Go's <-ctx.Done()).
  void wait_done() {
    std::unique_lock<bf::mutex> lk(m_);
    cv_.wait(lk, [this] { return done_; });
  }
  bool canceled() {
    std::lock_guard<bf::mutex> lk(m_);
    return done_;
  }

 private:
  bf::mutex m_;
  bf::condition_variable cv_;
  bool done_ = false;
  std::vector<CancelCtx*> children_;
};

// spawn_join: 10 rounds of: n fibers each add their index to their own
// slot; join all.
double spawn_join(std::int64_t n) {
  std::vector<std::int64_t> slots(static_cast<std::size_t>(n));
  WaitGroup wg;
  auto start = Clock::now();
  for (int r = 0; r < kSpawnJoinRounds; ++r) {
    wg.add(n);
    for (std::int64_t i = 0; i < n; ++i) {
      spawn([&slots, &wg, i] {
        slots[static_cast<std::size_t>(i)] += i;
        wg.done();
      });
    }
    wg.wait();
  }
  double elapsed = per_op(start, n * kSpawnJoinRounds);
  std::int64_t sum = 0;
  for (auto v : slots) sum += v;
  if (sum != kSpawnJoinRounds * n * (n - 1) / 2) fail("spawn_join sum " + std::to_string(sum));
  return elapsed;
}

// pingpong: main sends i on ping, a partner fiber echoes it on pong.
double pingpong(std::int64_t n) {
  bf::unbuffered_channel<std::int64_t> ping, pong;
  auto start = Clock::now();
  spawn([&] {
    std::int64_t v;
    while (ping.pop(v) == Status::success) pong.push(v);
  });
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    ping.push(i);
    sum += pong.value_pop();
  }
  ping.close();
  double elapsed = per_op(start, n);
  if (sum != n * (n - 1) / 2) fail("pingpong sum " + std::to_string(sum));
  return elapsed;
}

// buffered_1p1c: one producer fills a capacity-1024 channel with 0..n-1 and
// closes it; main drains it.
double buffered_1p1c(std::int64_t n) {
  bf::buffered_channel<std::int64_t> ch(kBufferedCapacity);
  auto start = Clock::now();
  spawn([&] {
    for (std::int64_t i = 0; i < n; ++i) ch.push(i);
    ch.close();
  });
  std::int64_t sum = 0, v;
  while (ch.pop(v) == Status::success) sum += v;
  double elapsed = per_op(start, n);
  if (sum != n * (n - 1) / 2) fail("buffered_1p1c sum " + std::to_string(sum));
  return elapsed;
}

// buffered_4p4c: 4 producers x n/4 items, 4 consumers, one channel, closed
// once every producer is done.
double buffered_4p4c(std::int64_t n) {
  constexpr int kProducers = 4, kConsumers = 4;
  bf::buffered_channel<std::int64_t> ch(kBufferedCapacity);
  std::int64_t sums[kConsumers] = {};
  WaitGroup prod, cons;
  const std::int64_t per = n / kProducers;
  auto start = Clock::now();
  prod.add(kProducers);
  for (std::int64_t p = 0; p < kProducers; ++p) {
    spawn([&, p] {
      for (std::int64_t i = p * per; i < (p + 1) * per; ++i) ch.push(i);
      prod.done();
    });
  }
  cons.add(kConsumers);
  for (int c = 0; c < kConsumers; ++c) {
    spawn([&, c] {
      std::int64_t s = 0, v;
      while (ch.pop(v) == Status::success) s += v;
      sums[c] = s;
      cons.done();
    });
  }
  prod.wait();
  ch.close();
  cons.wait();
  double elapsed = per_op(start, n);
  std::int64_t sum = 0;
  for (auto s : sums) sum += s;
  if (sum != n * (n - 1) / 2) fail("buffered_4p4c sum " + std::to_string(sum));
  return elapsed;
}

// poll_select() is the usual emulation of select for Boost.Fiber, which has
// none: `width` one-slot channels each hold a token (its index); each of
// `ops` rounds try_pops the channels starting at a random one, yields and
// retries if none was ready (never happens here), checks the token and
// pushes it back. Index arithmetic avoids divisions, which would cost more
// than a probe.
double poll_select(const char* name, std::size_t width, std::int64_t ops) {
  std::vector<std::unique_ptr<bf::buffered_channel<int>>> chs;
  for (std::size_t i = 0; i < width; ++i) {
    chs.push_back(std::make_unique<bf::buffered_channel<int>>(kSelectCapacity));
    chs.back()->push(static_cast<int>(i));
  }
  std::vector<std::int64_t> counts(width);
  std::int64_t bad = 0;
  std::uint32_t rng = 0x9e3779b9u;  // xorshift32
  auto start = Clock::now();
  for (std::int64_t k = 0; k < ops; ++k) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    const std::size_t first = static_cast<std::size_t>((std::uint64_t{rng} * width) >> 32);
    for (;;) {
      bool got = false;
      for (std::size_t j = 0; j < width && !got; ++j) {
        std::size_t idx = first + j;
        if (idx >= width) idx -= width;
        int v;
        if (chs[idx]->try_pop(v) == Status::success) {
          if (v != static_cast<int>(idx)) ++bad;
          ++counts[idx];
          chs[idx]->push(v);
          got = true;
        }
      }
      if (got) break;
      boost::this_fiber::yield();
    }
  }
  double elapsed = per_op(start, ops);
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  const std::string what(name);
  if (bad != 0 || total != ops) fail(what + " total " + std::to_string(total) + ", bad " + std::to_string(bad));
  for (std::size_t i = 0; i < width; ++i) {
    int v;
    if (chs[i]->try_pop(v) != Status::success || v != static_cast<int>(i)) {
      fail(what + " lost the token of channel " + std::to_string(i));
    }
    if (ops >= 100 * static_cast<std::int64_t>(width) && counts[i] == 0) {
      fail(what + " never chose channel " + std::to_string(i));
    }
  }
  return elapsed;
}

// select4: four one-slot channels each hold a token (its own index); main
// "selects" n times and puts the token back, with poll_select's emulation
// (Boost.Fiber has no select).
double select4(std::int64_t n) { return poll_select("select4", 4, n); }

// mutex: n fibers x 1000 increments of one counter under a fiber mutex.
double mutex(std::int64_t n) {
  bf::mutex mu;
  std::int64_t counter = 0;
  WaitGroup wg;
  auto start = Clock::now();
  wg.add(n);
  for (std::int64_t f = 0; f < n; ++f) {
    spawn([&] {
      for (std::int64_t i = 0; i < kMutexIncrements; ++i) {
        std::lock_guard<bf::mutex> lk(mu);
        ++counter;
      }
      wg.done();
    });
  }
  wg.wait();
  double elapsed = per_op(start, n * kMutexIncrements);
  if (counter != n * kMutexIncrements) fail("mutex counter " + std::to_string(counter));
  return elapsed;
}

// worker_pool: sender fiber -> jobs (cap 100, here 128) -> 4 workers ->
// results (cap 100, here 128) -> main; results closed after the workers.
double worker_pool(std::int64_t n) {
  bf::buffered_channel<std::int64_t> jobs(kPoolCapacity), results(kPoolCapacity);
  WaitGroup wg;
  auto start = Clock::now();
  spawn([&] {
    for (std::int64_t i = 0; i < n; ++i) jobs.push(i);
    jobs.close();
  });
  wg.add(kPoolWorkers);
  for (int w = 0; w < kPoolWorkers; ++w) {
    spawn([&] {
      std::int64_t j;
      while (jobs.pop(j) == Status::success) results.push(j * 2);
      wg.done();
    });
  }
  spawn([&] {
    wg.wait();
    results.close();
  });
  std::int64_t sum = 0, count = 0, r;
  while (results.pop(r) == Status::success) {
    sum += r;
    ++count;
  }
  double elapsed = per_op(start, n);
  if (count != n || sum != n * (n - 1)) fail("worker_pool count " + std::to_string(count) + " sum " + std::to_string(sum));
  return elapsed;
}

// waitgroup: 100 rounds of n fibers that mark their slot and call done().
double waitgroup(std::int64_t n) {
  std::vector<std::int32_t> slots(static_cast<std::size_t>(n));
  WaitGroup wg;
  auto start = Clock::now();
  for (int r = 0; r < kWaitgroupRounds; ++r) {
    wg.add(n);
    for (std::int64_t i = 0; i < n; ++i) {
      spawn([&slots, &wg, i] {
        ++slots[static_cast<std::size_t>(i)];
        wg.done();
      });
    }
    wg.wait();
  }
  double elapsed = per_op(start, n * kWaitgroupRounds);
  for (auto v : slots) {
    if (v != kWaitgroupRounds) fail("waitgroup slot ran " + std::to_string(v) + " times");
  }
  return elapsed;
}

// ctx_cancel: 10 rounds of n child contexts of one cancellable parent, each
// watched by a fiber blocked until it is cancelled; cancel the parent once
// every watcher is running, wait until all saw it. CancelCtx emulates Go's
// context (Boost.Fiber has none).
double ctx_cancel(std::int64_t n) {
  std::vector<std::int32_t> seen(static_cast<std::size_t>(n));
  WaitGroup ready, finished;
  auto start = Clock::now();
  for (int r = 0; r < kCtxCancelRounds; ++r) {
    auto parent = std::make_unique<CancelCtx>();
    std::vector<std::unique_ptr<CancelCtx>> children;
    children.reserve(static_cast<std::size_t>(n));
    ready.add(n);
    finished.add(n);
    for (std::int64_t i = 0; i < n; ++i) {
      children.push_back(std::make_unique<CancelCtx>(*parent));
      CancelCtx* ctx = children.back().get();
      spawn([&seen, &ready, &finished, ctx, i] {
        ready.done();
        ctx->wait_done();
        if (ctx->canceled()) ++seen[static_cast<std::size_t>(i)];
        finished.done();
      });
    }
    ready.wait();
    parent->cancel();
    finished.wait();
    for (auto& c : children) c->cancel();  // already cancelled: a no-op, as in Go
  }
  double elapsed = per_op(start, n * kCtxCancelRounds);
  for (auto v : seen) {
    if (v != kCtxCancelRounds) fail("ctx_cancel watcher saw " + std::to_string(v) + " cancellations");
  }
  return elapsed;
}

// park_all: n fibers signal that they started, then block on one gate
// channel. on_start() runs just before the first spawn and all_parked() once
// all n are blocked; then the gate is closed and every fiber joined (each
// must have woken once). Returns all_parked()'s figure.
template <class OnStart, class AllParked>
double park_all(const char* workload, std::int64_t n, OnStart&& on_start, AllParked&& all_parked) {
  bf::unbuffered_channel<int> gate;
  WaitGroup started, finished;
  std::atomic<std::int64_t> woke{0};
  started.add(n);
  finished.add(n);
  on_start();
  for (std::int64_t i = 0; i < n; ++i) {
    spawn([&] {
      started.done();
      int v;
      gate.pop(v);  // returns channel_op_status::closed once released
      woke.fetch_add(1, std::memory_order_relaxed);
      finished.done();
    });
  }
  started.wait();
  const double figure = all_parked();
  gate.close();
  finished.wait();
  if (woke.load() != n) fail(std::string(workload) + " woke " + std::to_string(woke.load()));
  return figure;
}

// parked_memory: park_all's n fibers; RSS growth / n once all are blocked.
double parked_memory(std::int64_t n) {
  std::int64_t before = 0;
  return park_all(
      "parked_memory", n, [&] { before = resident_bytes(); },
      [&] { return static_cast<double>(resident_bytes() - before) / static_cast<double>(n); });
}

using SkynetChan = bf::buffered_channel<std::int64_t>;

// Sends the sum of leaf ids num..num+size-1 on c; inner nodes spawn 10
// children that answer on a channel that is never full. The channel is shared
// so no child can outlive it.
void skynet_node(const std::shared_ptr<SkynetChan>& c, std::int64_t num, std::int64_t size) {
  if (size == 1) {
    c->push(num);
    return;
  }
  auto rc = std::make_shared<SkynetChan>(kSkynetCapacity);
  const std::int64_t sub = size / kSkynetFanout;
  for (std::int64_t i = 0; i < kSkynetFanout; ++i) {
    spawn([rc, num, sub, i] { skynet_node(rc, num + i * sub, sub); });
  }
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kSkynetFanout; ++i) sum += rc->value_pop();
  c->push(sum);
}

// skynet: n leaves (a power of 10); per fiber spawned ((10n-1)/9 in all).
double skynet(std::int64_t n) {
  const std::int64_t fibers = (kSkynetFanout * n - 1) / (kSkynetFanout - 1);
  auto c = std::make_shared<SkynetChan>(2);
  auto start = Clock::now();
  spawn([c, n] { skynet_node(c, 0, n); });
  const std::int64_t sum = c->value_pop();
  double elapsed = per_op(start, fibers);
  if (sum != n * (n - 1) / 2) fail("skynet sum " + std::to_string(sum));
  return elapsed;
}

// ---------------------------------------------------------------------------
// Growth-curve workloads (bench/curves.sh). Each takes the curve's x as n and
// an optional second size, ops; bench/README.md defines them.

// curve_spawn: spawn n fibers that each signal "started" and park on one
// gate channel; the figure is the time from the first spawn until all n are
// parked, per fiber. Then the gate is closed and every fiber joined.
double curve_spawn(std::int64_t n, std::int64_t /*ops*/) {
  Clock::time_point start;
  return park_all(
      "curve_spawn", n, [&] { start = Clock::now(); }, [&] { return per_op(start, n); });
}

// curve_select with n "cases": select4 generalised (see poll_select).
double curve_select(std::int64_t n, std::int64_t ops) {
  return poll_select("curve_select", static_cast<std::size_t>(n), ops);
}

// curve_chan: n producers send ops items in all (producer p sends the
// integers [p*ops/n, (p+1)*ops/n)) into one capacity-1024 channel, n
// consumers drain it; closed once every producer is done.
double curve_chan(std::int64_t n, std::int64_t ops) {
  bf::buffered_channel<std::int64_t> ch(kBufferedCapacity);
  std::vector<std::int64_t> sums(static_cast<std::size_t>(n)), counts(static_cast<std::size_t>(n));
  WaitGroup prod, cons;
  auto start = Clock::now();
  prod.add(n);
  for (std::int64_t p = 0; p < n; ++p) {
    spawn([&, p] {
      for (std::int64_t i = p * ops / n; i < (p + 1) * ops / n; ++i) ch.push(i);
      prod.done();
    });
  }
  cons.add(n);
  for (std::int64_t c = 0; c < n; ++c) {
    spawn([&, c] {
      std::int64_t s = 0, k = 0, v;
      while (ch.pop(v) == Status::success) {
        s += v;
        ++k;
      }
      sums[static_cast<std::size_t>(c)] = s;
      counts[static_cast<std::size_t>(c)] = k;
      cons.done();
    });
  }
  prod.wait();
  ch.close();
  cons.wait();
  double elapsed = per_op(start, ops);
  std::int64_t sum = 0, count = 0;
  for (std::size_t c = 0; c < sums.size(); ++c) {
    sum += sums[c];
    count += counts[c];
  }
  if (count != ops || sum != ops * (ops - 1) / 2) {
    fail("curve_chan count " + std::to_string(count) + " sum " + std::to_string(sum));
  }
  return elapsed;
}

// curve_fanout: n fibers each compute one chunk of ops LCG steps and store
// the result in their slot; WaitGroup join. Per chunk. The worker count is
// the curve's x. Checked against a sequential recomputation (not timed).
double curve_fanout(std::int64_t n, std::int64_t ops) {
  std::vector<std::uint64_t> out(static_cast<std::size_t>(n));
  WaitGroup wg;
  auto start = Clock::now();
  wg.add(n);
  for (std::int64_t i = 0; i < n; ++i) {
    spawn([&out, &wg, i, ops] {
      out[static_cast<std::size_t>(i)] = cpu_chunk(static_cast<std::uint64_t>(i), ops);
      wg.done();
    });
  }
  wg.wait();
  double elapsed = per_op(start, n);
  for (std::int64_t i = 0; i < n; ++i) {
    if (out[static_cast<std::size_t>(i)] != cpu_chunk(static_cast<std::uint64_t>(i), ops)) {
      fail("curve_fanout chunk " + std::to_string(i) + " is wrong");
    }
  }
  return elapsed;
}

const Workload kWorkloads[] = {
    {"spawn_join", 100'000, "ns/op", spawn_join, nullptr},
    {"pingpong", 200'000, "ns/op", pingpong, nullptr},
    {"buffered_1p1c", 2'000'000, "ns/op", buffered_1p1c, nullptr},
    {"buffered_4p4c", 2'000'000, "ns/op", buffered_4p4c, is_multiple_of_4},
    {"select4", 1'000'000, "ns/op", select4, nullptr},
    {"mutex", 1000, "ns/op", mutex, nullptr},
    {"worker_pool", 2'000'000, "ns/op", worker_pool, nullptr},
    {"waitgroup", 1000, "ns/op", waitgroup, nullptr},
    {"ctx_cancel", 10'000, "ns/op", ctx_cancel, nullptr},
    {"parked_memory", 100'000, "bytes/fiber", parked_memory, nullptr},
    {"skynet", 1'000'000, "ns/op", skynet, is_power_of_fanout},
};

const CurveWorkload kCurveWorkloads[] = {
    {"curve_spawn", 100'000, 1, "ns/op", curve_spawn, nullptr},
    {"curve_select", 4, kCurveSelectIters, "ns/op", curve_select, is_select_width},
    {"curve_chan", 4, kCurveChanItems, "ns/op", curve_chan, nullptr},
    {"curve_fanout", kCurveFanoutChunks, kCurveFanoutIters, "ns/op", curve_fanout, nullptr},
};

}  // namespace

int main(int argc, char** argv) {
  const Choice choice = parse_command_line("gorobench_fiber", argc, argv, kWorkloads, kCurveWorkloads);

  // Keep freed fiber stacks in the heap for reuse (see the header comment).
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);

  // The standard Boost.Fiber work-stealing setup: every thread installs the
  // algorithm (its constructor waits until all <workers> threads did), the
  // extra threads then park their main fiber on a condition and run other
  // fibers until main says it is done.
  const auto thread_count = static_cast<std::uint32_t>(choice.workers);
  bf::mutex done_mtx;
  bf::condition_variable done_cv;
  bool finished = false;
  std::vector<std::thread> threads;
  for (std::uint32_t i = 1; i < thread_count; ++i) {
    threads.emplace_back([&] {
      bf::use_scheduling_algorithm<bf::algo::work_stealing>(thread_count);
      std::unique_lock<bf::mutex> lk(done_mtx);
      done_cv.wait(lk, [&] { return finished; });
    });
  }
  bf::use_scheduling_algorithm<bf::algo::work_stealing>(thread_count);

  const double value = choice.run();

  {
    std::lock_guard<bf::mutex> lk(done_mtx);
    finished = true;
  }
  done_cv.notify_all();
  for (auto& t : threads) t.join();

  print_result(choice, value);
  return 0;
}
