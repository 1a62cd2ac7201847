// gorobench_goro: the goro side of goro's side-by-side benchmark.
//
// Usage: gorobench_goro <workload> <workers> [n]
//        gorobench_goro <curve workload> <workers> [n [ops]]
//
// Runs one workload under goro::run with Options::workers = <workers> and
// prints exactly one line to stdout: "<workload> <value> <unit>". The
// optional n overrides the workload's size. The workloads mirror
// bench/go/main.go line for line (same channel capacities, same fiber
// structure, same checks); bench/fiber/main.cpp is the Boost.Fiber twin.
// Written against the public API in SPEC.md only.
//
// A failed check throws out of goro::run; main prints it and exits 1.
//
// Build (from the repository root):
//   g++ -O2 -std=c++20 -Iinclude bench/peer/goro_peer.cpp -lboost_context -pthread
#include <goro/goro.hpp>

#include "../common/driver.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <unistd.h>
#include <vector>

namespace {

using namespace gorobench;

// Channel capacities (the Go side's; the other fixed sizes are in driver.hpp).
constexpr std::size_t kBufferedCapacity = 1024;
constexpr std::size_t kPoolCapacity = 100;
constexpr std::size_t kSelectCapacity = 1;

using I64Chan = goro::Channel<std::int64_t>;

struct VerificationError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& msg) { throw VerificationError("verification failed: " + msg); }

// spawn_join: 10 rounds of: n fibers each add their index to their own
// slot; join all.
double spawn_join(std::int64_t n) {
  std::vector<std::int64_t> slots(static_cast<std::size_t>(n));
  goro::WaitGroup wg;
  auto start = Clock::now();
  for (int r = 0; r < kSpawnJoinRounds; ++r) {
    wg.add(n);
    for (std::int64_t i = 0; i < n; ++i) {
      goro::go([&slots, &wg, i] {
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

// pingpong: main sends i on ping, a partner fiber echoes it on pong. The
// partner holds its own handles: it may still be finishing after main left.
double pingpong(std::int64_t n) {
  I64Chan ping, pong;
  auto start = Clock::now();
  goro::go([ping, pong]() mutable {
    for (std::int64_t v : ping) pong.send(v);
  });
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    ping.send(i);
    sum += pong.recv().value();
  }
  ping.close();
  double elapsed = per_op(start, n);
  if (sum != n * (n - 1) / 2) fail("pingpong sum " + std::to_string(sum));
  return elapsed;
}

// buffered_1p1c: one producer fills a capacity-1024 channel with 0..n-1 and
// closes it; main drains it.
double buffered_1p1c(std::int64_t n) {
  I64Chan ch(kBufferedCapacity);
  auto start = Clock::now();
  goro::go([ch, n]() mutable {
    for (std::int64_t i = 0; i < n; ++i) ch.send(i);
    ch.close();
  });
  std::int64_t sum = 0;
  for (std::int64_t v : ch) sum += v;
  double elapsed = per_op(start, n);
  if (sum != n * (n - 1) / 2) fail("buffered_1p1c sum " + std::to_string(sum));
  return elapsed;
}

// buffered_4p4c: 4 producers x n/4 items, 4 consumers, one capacity-1024
// channel, closed once every producer is done.
double buffered_4p4c(std::int64_t n) {
  constexpr int kProducers = 4, kConsumers = 4;
  I64Chan ch(kBufferedCapacity);
  std::array<std::int64_t, kConsumers> sums{};
  goro::WaitGroup prod, cons;
  const std::int64_t per = n / kProducers;
  auto start = Clock::now();
  prod.add(kProducers);
  for (std::int64_t p = 0; p < kProducers; ++p) {
    goro::go([&, p] {
      for (std::int64_t i = p * per; i < (p + 1) * per; ++i) ch.send(i);
      prod.done();
    });
  }
  cons.add(kConsumers);
  for (int c = 0; c < kConsumers; ++c) {
    goro::go([&, c] {
      std::int64_t s = 0;
      for (std::int64_t v : ch) s += v;
      sums[static_cast<std::size_t>(c)] = s;
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

// select4: four capacity-1 channels each hold one token (its own index);
// main selects over all four n times and puts the token it got back into the
// same channel, so every case is always ready.
double select4(std::int64_t n) {
  std::array<goro::Channel<int>, 4> chs{goro::Channel<int>(kSelectCapacity), goro::Channel<int>(kSelectCapacity),
                                        goro::Channel<int>(kSelectCapacity), goro::Channel<int>(kSelectCapacity)};
  for (int i = 0; i < 4; ++i) chs[static_cast<std::size_t>(i)].send(i);
  std::array<std::int64_t, 4> counts{};
  std::int64_t bad = 0;
  auto take = [&](std::size_t idx, int v) {
    if (v != static_cast<int>(idx)) ++bad;
    ++counts[idx];
    chs[idx].send(v);  // the slot was just emptied: never blocks
  };
  auto start = Clock::now();
  for (std::int64_t k = 0; k < n; ++k) {
    goro::select(goro::recv(chs[0], [&](int v) { take(0, v); }),  //
                 goro::recv(chs[1], [&](int v) { take(1, v); }),  //
                 goro::recv(chs[2], [&](int v) { take(2, v); }),  //
                 goro::recv(chs[3], [&](int v) { take(3, v); }));
  }
  double elapsed = per_op(start, n);
  const std::int64_t total = counts[0] + counts[1] + counts[2] + counts[3];
  if (bad != 0 || total != n) fail("select4 total " + std::to_string(total) + ", bad " + std::to_string(bad));
  if (n >= 1000) {
    for (std::size_t i = 0; i < 4; ++i) {
      if (counts[i] == 0) fail("select4 never chose channel " + std::to_string(i));
    }
  }
  return elapsed;
}

// mutex: n fibers x 1000 increments of one counter under goro::Mutex.
double mutex(std::int64_t n) {
  goro::Mutex mu;
  std::int64_t counter = 0;
  goro::WaitGroup wg;
  auto start = Clock::now();
  wg.add(n);
  for (std::int64_t f = 0; f < n; ++f) {
    goro::go([&] {
      for (std::int64_t i = 0; i < kMutexIncrements; ++i) {
        std::lock_guard<goro::Mutex> lk(mu);
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

// worker_pool: sender fiber -> jobs (cap 100) -> 4 workers -> results
// (cap 100) -> main; results is closed once every worker is done.
double worker_pool(std::int64_t n) {
  I64Chan jobs(kPoolCapacity), results(kPoolCapacity);
  goro::WaitGroup wg;
  auto start = Clock::now();
  goro::go([jobs, n]() mutable {
    for (std::int64_t i = 0; i < n; ++i) jobs.send(i);
    jobs.close();
  });
  wg.add(kPoolWorkers);
  for (int w = 0; w < kPoolWorkers; ++w) {
    goro::go([jobs, results, &wg]() mutable {
      for (std::int64_t j : jobs) results.send(j * 2);
      wg.done();
    });
  }
  goro::go([results, &wg]() mutable {
    wg.wait();
    results.close();
  });
  std::int64_t sum = 0, count = 0;
  for (std::int64_t r : results) {
    sum += r;
    ++count;
  }
  double elapsed = per_op(start, n);
  if (count != n || sum != n * (n - 1)) {
    fail("worker_pool count " + std::to_string(count) + " sum " + std::to_string(sum));
  }
  return elapsed;
}

// waitgroup: 100 rounds of n fibers that mark their slot and call done().
double waitgroup(std::int64_t n) {
  std::vector<std::int32_t> slots(static_cast<std::size_t>(n));
  goro::WaitGroup wg;
  auto start = Clock::now();
  for (int r = 0; r < kWaitgroupRounds; ++r) {
    wg.add(n);
    for (std::int64_t i = 0; i < n; ++i) {
      goro::go([&slots, &wg, i] {
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
// watched by a fiber blocked on ctx.done(); cancel the parent once every
// watcher is running, wait until all saw it.
double ctx_cancel(std::int64_t n) {
  std::vector<std::int32_t> seen(static_cast<std::size_t>(n));
  std::vector<goro::CancelFunc> cancels;
  cancels.reserve(static_cast<std::size_t>(n));
  goro::WaitGroup ready, finished;
  auto start = Clock::now();
  for (int r = 0; r < kCtxCancelRounds; ++r) {
    auto parent = goro::with_cancel(goro::background());
    ready.add(n);
    finished.add(n);
    for (std::int64_t i = 0; i < n; ++i) {
      auto child = goro::with_cancel(parent.first);
      cancels.push_back(child.second);
      goro::go([&seen, &ready, &finished, ctx = child.first, i] {
        ready.done();
        (void)ctx.done().recv();
        if (ctx.err() == goro::errc::canceled) ++seen[static_cast<std::size_t>(i)];
        finished.done();
      });
    }
    ready.wait();
    parent.second();
    finished.wait();
    for (auto& cancel : cancels) cancel();  // already cancelled through the parent: a no-op
    cancels.clear();
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
  goro::Channel<goro::Unit> gate;
  goro::WaitGroup started, finished;
  std::atomic<std::int64_t> woke{0};
  started.add(n);
  finished.add(n);
  on_start();
  for (std::int64_t i = 0; i < n; ++i) {
    goro::go([&] {
      started.done();
      (void)gate.recv();  // std::nullopt once closed
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

// Sends the sum of leaf ids num..num+size-1 on c: a leaf sends its own id,
// an inner node spawns 10 children that answer on a channel of capacity 10
// (so no child ever blocks on its send) and sums their answers. Children hold
// their own handle to rc.
void skynet_node(I64Chan c, std::int64_t num, std::int64_t size) {
  if (size == 1) {
    c.send(num);
    return;
  }
  I64Chan rc(static_cast<std::size_t>(kSkynetFanout));
  const std::int64_t sub = size / kSkynetFanout;
  for (std::int64_t i = 0; i < kSkynetFanout; ++i) {
    goro::go([rc, num, sub, i] { skynet_node(rc, num + i * sub, sub); });
  }
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < kSkynetFanout; ++i) sum += rc.recv().value();
  c.send(sum);
}

// skynet: n leaves (a power of 10); per fiber spawned ((10n-1)/9 in all).
double skynet(std::int64_t n) {
  const std::int64_t fibers = (kSkynetFanout * n - 1) / (kSkynetFanout - 1);
  I64Chan c(1);
  auto start = Clock::now();
  goro::go([c, n] { skynet_node(c, 0, n); });
  const std::int64_t sum = c.recv().value();
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

// One select over the receives of chs[0..N-1]; the handler of the case that
// runs stores the value in got. Returns the index of that case.
template <std::size_t... I>
std::size_t select_recv_all(std::vector<goro::Channel<int>>& chs, int& got, std::index_sequence<I...>) {
  return goro::select(goro::recv(chs[I], [&got](int v) { got = v; })...);
}

// curve_select with N cases: select4 generalised. N capacity-1 channels each
// hold one token (its index); each of ops iterations selects over the N
// receives and sends the token back to the channel it came from.
template <std::size_t N>
double select_width(std::int64_t ops) {
  std::vector<goro::Channel<int>> chs;
  for (std::size_t i = 0; i < N; ++i) {
    chs.emplace_back(kSelectCapacity);
    chs.back().send(static_cast<int>(i));
  }
  std::vector<std::int64_t> counts(N);
  std::int64_t bad = 0;
  auto start = Clock::now();
  for (std::int64_t k = 0; k < ops; ++k) {
    int got = -1;
    const std::size_t idx = select_recv_all(chs, got, std::make_index_sequence<N>{});
    if (got != static_cast<int>(idx)) ++bad;
    ++counts[idx];
    chs[idx].send(got);  // the slot was just emptied: never blocks
  }
  double elapsed = per_op(start, ops);
  std::int64_t total = 0;
  for (auto c : counts) total += c;
  if (bad != 0 || total != ops) fail("curve_select total " + std::to_string(total) + ", bad " + std::to_string(bad));
  for (std::size_t i = 0; i < N; ++i) {
    auto token = chs[i].try_recv();
    if (!token || *token != static_cast<int>(i)) fail("curve_select lost the token of channel " + std::to_string(i));
    if (ops >= 100 * static_cast<std::int64_t>(N) && counts[i] == 0) {
      fail("curve_select never chose channel " + std::to_string(i));
    }
  }
  return elapsed;
}

double curve_select(std::int64_t n, std::int64_t ops) {
  switch (n) {
    case 1: return select_width<1>(ops);
    case 2: return select_width<2>(ops);
    case 4: return select_width<4>(ops);
    case 8: return select_width<8>(ops);
    case 16: return select_width<16>(ops);
    case 32: return select_width<32>(ops);
    case 64: return select_width<64>(ops);
    default: fail("curve_select: unsupported width " + std::to_string(n));
  }
}

// curve_chan: n producers send ops items in all (producer p sends the
// integers [p*ops/n, (p+1)*ops/n)) into one capacity-1024 channel, n
// consumers drain it; closed once every producer is done.
double curve_chan(std::int64_t n, std::int64_t ops) {
  I64Chan ch(kBufferedCapacity);
  std::vector<std::int64_t> sums(static_cast<std::size_t>(n)), counts(static_cast<std::size_t>(n));
  goro::WaitGroup prod, cons;
  auto start = Clock::now();
  prod.add(n);
  for (std::int64_t p = 0; p < n; ++p) {
    goro::go([&, p] {
      for (std::int64_t i = p * ops / n; i < (p + 1) * ops / n; ++i) ch.send(i);
      prod.done();
    });
  }
  cons.add(n);
  for (std::int64_t c = 0; c < n; ++c) {
    goro::go([&, c] {
      std::int64_t s = 0, k = 0;
      for (std::int64_t v : ch) {
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
  goro::WaitGroup wg;
  auto start = Clock::now();
  wg.add(n);
  for (std::int64_t i = 0; i < n; ++i) {
    goro::go([&out, &wg, i, ops] {
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
  const Choice choice = parse_command_line("gorobench_goro", argc, argv, kWorkloads, kCurveWorkloads);
  double value = 0;
  try {
    value = goro::run([&choice] { return choice.run(); },
                      goro::Options{.workers = static_cast<std::size_t>(choice.workers)});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gorobench_goro: %s: %s\n", choice.name(), e.what());
    return 1;
  }
  print_result(choice, value);
  return 0;
}
