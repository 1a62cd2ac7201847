// Randomized conservation stress: many fibers and a few plain threads do
// random sends, receives, selects (blocking, with default, with a timeout)
// and exactly one close per channel (two closers race for it), over channels
// of capacity 0..64. Checked afterwards:
//   - every message sent is received exactly once (messages carry their
//     producer's id and a per-(producer, channel) sequence number);
//   - per-producer FIFO: each consumer sees each producer's messages on a
//     channel in increasing sequence order;
//   - every send that starts after close() returned throws
//     goro::channel_closed (blocking send, try_send, and select: a closed
//     channel's send case is ready, so default and timeout are never taken);
//   - exactly one of the two racing closers succeeds.
//
// `stress_test` runs a short version (a few seconds; smaller under the
// sanitizers). `stress_test "[.soak]"` runs rounds for GORO_SOAK_SECONDS
// seconds (default 60), cycling worker counts, and prints the totals.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fiber_failures.hpp"
#include "test_support.hpp"
#include "throwing_move.hpp"

using namespace std::chrono_literals;
using goro_test::Failures;
using goro_test::scaled;

namespace {

struct Msg {
  std::uint32_t producer;
  std::uint32_t seq;  // per (producer, channel), from 0
};

struct Rng {
  std::uint64_t s;
  explicit Rng(std::uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL) {
    if (s == 0) s = 1;
  }
  std::uint32_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<std::uint32_t>(s >> 32);
  }
  int below(int n) { return static_cast<int>(next() % static_cast<std::uint32_t>(n)); }
};

struct Totals {
  std::uint64_t rounds = 0;
  std::uint64_t operations = 0;    // every send/receive/select/close attempt
  std::uint64_t sent = 0;          // messages accepted by a channel
  std::uint64_t received = 0;      // messages delivered to a consumer
  std::uint64_t selects = 0;
  std::uint64_t defaults = 0;      // selects that took default
  std::uint64_t timeouts = 0;      // selects that timed out
  std::uint64_t closed_throws = 0; // sends that threw channel_closed
  std::uint64_t lost = 0;
  std::uint64_t duplicated = 0;
  std::uint64_t phantom = 0;       // received but never sent
  std::uint64_t fifo_violations = 0;
  std::uint64_t stalls = 0;        // rounds whose closer found the program stalled

  void add(const Totals& o) {
    rounds += o.rounds;
    operations += o.operations;
    sent += o.sent;
    received += o.received;
    selects += o.selects;
    defaults += o.defaults;
    timeouts += o.timeouts;
    closed_throws += o.closed_throws;
    lost += o.lost;
    duplicated += o.duplicated;
    phantom += o.phantom;
    fifo_violations += o.fifo_violations;
    stalls += o.stalls;
  }
  std::string text() const {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "rounds=%llu operations=%llu sent=%llu received=%llu selects=%llu defaults=%llu "
                  "timeouts=%llu closed_throws=%llu lost=%llu duplicated=%llu phantom=%llu "
                  "fifo_violations=%llu stalls=%llu",
                  (unsigned long long)rounds, (unsigned long long)operations, (unsigned long long)sent,
                  (unsigned long long)received, (unsigned long long)selects, (unsigned long long)defaults,
                  (unsigned long long)timeouts, (unsigned long long)closed_throws, (unsigned long long)lost,
                  (unsigned long long)duplicated, (unsigned long long)phantom,
                  (unsigned long long)fifo_violations, (unsigned long long)stalls);
    return buf;
  }
};

struct Config {
  std::size_t workers = 2;
  int channels = 6;
  int fiber_producers = 12;
  int thread_producers = 2;
  int fiber_consumers = 8;
  int thread_consumers = 1;
  int ops_per_producer = 1000;
  std::uint64_t seed = 1;
};

// One round: fresh channels, producers, consumers and closers.
class Round {
 public:
  static constexpr int kMaxChannels = 8;

  Round(const Config& cfg, Failures& fails) : cfg_(cfg), fails_(fails), rng_(cfg.seed) {
    const int n = cfg.channels;
    REQUIRE(n >= 1);
    REQUIRE(n <= kMaxChannels);
    for (int c = 0; c < n; ++c) {
      static constexpr int kCaps[] = {0, 0, 1, 2, 3, 8, 64};
      int cap = rng_.below(3) == 0 ? rng_.below(65) : kCaps[rng_.below(7)];
      chans_.push_back(goro::Channel<Msg>(cap));
    }
    closed_flag_ = std::vector<std::atomic<bool>>(static_cast<std::size_t>(n));  // all false
    producers_ = cfg.fiber_producers + cfg.thread_producers;
    consumers_ = cfg.fiber_consumers + cfg.thread_consumers;
    next_seq_.assign(static_cast<std::size_t>(producers_), std::vector<std::uint32_t>(static_cast<std::size_t>(n), 0));
    receipts_.resize(static_cast<std::size_t>(consumers_));
  }

  Totals run() {
    std::vector<std::thread> threads;
    try {
      goro::run(
        [&] {
          goro::WaitGroup all, registered;
          int p = 0, k = 0;
          // Plain threads join through the WaitGroup (joining them from a
          // fiber would block its worker), then are joined after run(). Each
          // first makes itself known to goro (its first goro call), so the
          // deadlock detector counts it from then on.
          const int n_threads = cfg_.thread_producers + cfg_.thread_consumers;
          all.add(n_threads);
          registered.add(n_threads);
          for (int i = 0; i < cfg_.thread_consumers; ++i, ++k)
            threads.emplace_back([this, &all, &registered, k] {
              registered.done();
              consumer(k);
              all.done();
            });
          for (int i = 0; i < cfg_.thread_producers; ++i, ++p)
            threads.emplace_back([this, &all, &registered, p] {
              registered.done();
              producer(p);
              all.done();
            });
          // (Sleep, not wait(): a thread that has not made its first goro
          // call is invisible to the deadlock detector, see SPEC.)
          while (registered.count() > 0) goro::this_fiber::sleep_for(50us);
          for (int i = 0; i < cfg_.fiber_consumers; ++i, ++k) all.go([this, k] { consumer(k); });
          for (int i = 0; i < cfg_.fiber_producers; ++i, ++p) all.go([this, p] { producer(p); });
          all.go([this] { closer(); });
          all.wait();
        },
        goro::Options{.workers = cfg_.workers});
    } catch (...) {
      // The threads may still be blocked on the channels: nothing can join
      // them, so report and stop here rather than hang.
      try {
        throw;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "stress: run() threw: %s\n", e.what());
      }
      std::fflush(stderr);
      std::abort();
    }
    for (auto& t : threads) t.join();
    return verify();
  }

 private:
  // --- producers ----------------------------------------------------------------
  void producer(int id) {
    Rng rng(cfg_.seed * 1000 + 17 + static_cast<std::uint64_t>(id));
    const int n = cfg_.channels;
    std::vector<char> open(static_cast<std::size_t>(n), 1);
    int open_count = n;
    std::vector<std::uint32_t>& seq = next_seq_[static_cast<std::size_t>(id)];
    std::uint64_t ops = 0, sent = 0, selects = 0, defaults = 0, timeouts = 0, closed_throws = 0;
    auto pick = [&] {
      int c = rng.below(n);
      while (!open[static_cast<std::size_t>(c)]) c = (c + 1) % n;
      return c;
    };
    for (int op = 0; op < cfg_.ops_per_producer && open_count > 0; ++op) {
      if (rng.below(8) == 0) goro::this_fiber::yield();
      const int cs[3] = {pick(), pick(), pick()};
      bool was_closed[3];
      for (int i = 0; i < 3; ++i) was_closed[i] = closed_flag_[static_cast<std::size_t>(cs[i])].load();
      Msg m[3];
      for (int i = 0; i < 3; ++i) m[i] = Msg{static_cast<std::uint32_t>(id), seq[static_cast<std::size_t>(cs[i])]};
      // Weights: blocking send 15%, try_send 20%, select+default 25%,
      // select+timeout 20%, blocking select 20%.
      const int roll = rng.below(100);
      const int kind = roll < 15 ? 0 : roll < 35 ? 1 : roll < 60 ? 2 : roll < 80 ? 3 : 4;
      ++ops;
      try {
        if (kind == 0) {  // blocking send
          chans_[cs[0]].send(m[0]);
          FCHECK(fails_, !was_closed[0]);
          ++seq[static_cast<std::size_t>(cs[0])];
          ++sent;
          progress_.fetch_add(1, std::memory_order_relaxed);
        } else if (kind == 1) {  // try_send
          Msg v = m[0];
          if (chans_[cs[0]].try_send(std::move(v))) {
            FCHECK(fails_, !was_closed[0]);
            ++seq[static_cast<std::size_t>(cs[0])];
            ++sent;
            progress_.fetch_add(1, std::memory_order_relaxed);
          } else {
            FCHECK(fails_, !was_closed[0]);  // closed must throw, not refuse
          }
        } else {  // select over three send cases: +default, +timeout, or blocking
          ++selects;
          // An occasional nil case, which must never be chosen.
          goro::Channel<Msg> third = rng.below(6) == 0 ? goro::Channel<Msg>(nullptr) : chans_[cs[2]];
          const bool third_nil = third.is_nil();
          std::size_t k;
          if (kind == 2) {
            k = goro::select(goro::send(chans_[cs[0]], m[0]), goro::send(chans_[cs[1]], m[1]),
                             goro::send(third, m[2]), goro::default_case());
          } else if (kind == 3) {
            k = goro::select(goro::send(chans_[cs[0]], m[0]), goro::send(chans_[cs[1]], m[1]),
                             goro::send(third, m[2]), goro::timeout(std::chrono::microseconds(rng.below(200))));
          } else {
            k = goro::select(goro::send(chans_[cs[0]], m[0]), goro::send(chans_[cs[1]], m[1]),
                             goro::send(third, m[2]));
          }
          if (k < 3) {
            FCHECK(fails_, !(k == 2 && third_nil));
            FCHECK(fails_, !was_closed[k]);
            ++seq[static_cast<std::size_t>(cs[k])];
            ++sent;
            progress_.fetch_add(1, std::memory_order_relaxed);
          } else {
            // A closed channel's send case is ready: neither default nor timeout.
            FCHECK(fails_, !was_closed[0] && !was_closed[1] && (third_nil || !was_closed[2]));
            (kind == 2 ? defaults : timeouts)++;
          }
        }
      } catch (const goro::channel_closed&) {
        ++closed_throws;
        bool any = false;
        for (int i = 0; i < 3; ++i) {
          if (chans_[cs[i]].closed() && open[static_cast<std::size_t>(cs[i])]) {
            open[static_cast<std::size_t>(cs[i])] = 0;
            --open_count;
          }
          any = any || chans_[cs[i]].closed();
        }
        FCHECK(fails_, any);
      }
    }
    producers_done_.fetch_add(1);
    std::lock_guard guard(totals_lock_);
    totals_.operations += ops;
    totals_.sent += sent;
    totals_.selects += selects;
    totals_.defaults += defaults;
    totals_.timeouts += timeouts;
    totals_.closed_throws += closed_throws;
  }

  // --- consumers ----------------------------------------------------------------
  void consumer(int id) {
    Rng rng(cfg_.seed * 1000 + 500 + static_cast<std::uint64_t>(id));
    const int n = cfg_.channels;
    std::vector<char> live(static_cast<std::size_t>(n), 1);
    int live_count = n;
    auto& got = receipts_[static_cast<std::size_t>(id)];
    std::uint64_t ops = 0, selects = 0, defaults = 0, timeouts = 0;
    const goro::Channel<Msg> nil = nullptr;
    auto take = [&](int c, std::optional<Msg> m) {
      if (m) {
        got.push_back(Receipt{static_cast<std::uint16_t>(c), *m});
      } else if (live[static_cast<std::size_t>(c)]) {  // closed and drained
        FCHECK(fails_, chans_[c].closed());
        live[static_cast<std::size_t>(c)] = 0;
        --live_count;
      }
    };
    auto pick = [&] {
      int c = rng.below(n);
      while (!live[static_cast<std::size_t>(c)]) c = (c + 1) % n;
      return c;
    };
    while (live_count > 0) {
      if (rng.below(8) == 0) goro::this_fiber::yield();
      const int c0 = pick(), c1 = pick(), c2 = pick();
      auto h = [&](int c) { return [&take, c](std::optional<Msg> m) { take(c, std::move(m)); }; };
      // Weights: recv 10%, try_recv 15%, select+default 20%, select+timeout
      // 15%, blocking select over every live channel 30%, range-for 10%.
      // (Blocking on one channel can stall the whole program: every producer
      // blocked on channels nobody receives from. The closer ends stalls.)
      const int roll = rng.below(100);
      int kind = roll < 10 ? 0 : roll < 25 ? 1 : roll < 45 ? 2 : roll < 60 ? 3 : roll < 90 ? 4 : 5;
      // Before the closer starts, blocking on one channel is rare, so most
      // rounds run at full traffic until the close.
      if ((kind == 0 || kind == 5) && !closing_.load(std::memory_order_relaxed) && rng.below(10) != 0) kind = 4;
      ++ops;
      switch (kind) {
        case 0:
          take(c0, chans_[c0].recv());
          break;
        case 1:
          if (auto m = chans_[c0].try_recv()) take(c0, m);
          break;
        case 2:
          ++selects;
          if (goro::select(goro::recv(chans_[c0], h(c0)), goro::recv(chans_[c1], h(c1)),
                           goro::recv(chans_[c2], h(c2)), goro::default_case()) == 3)
            ++defaults;
          break;
        case 3:
          ++selects;
          if (goro::select(goro::recv(chans_[c0], h(c0)), goro::recv(chans_[c1], h(c1)),
                           goro::recv(chans_[c2], h(c2)),
                           goro::timeout(std::chrono::microseconds(rng.below(200)))) == 3)
            ++timeouts;
          break;
        case 4: {  // every live channel (nil cases for the others)
          ++selects;
          auto ch = [&](int c) { return c < n && live[static_cast<std::size_t>(c)] ? chans_[c] : nil; };
          goro::select(goro::recv(ch(0), h(0)), goro::recv(ch(1), h(1)), goro::recv(ch(2), h(2)),
                       goro::recv(ch(3), h(3)), goro::recv(ch(4), h(4)), goro::recv(ch(5), h(5)),
                       goro::recv(ch(6), h(6)), goro::recv(ch(7), h(7)));
          break;
        }
        default: {  // range-for, leaving early or at close
          int budget = 1 + rng.below(40);
          bool left_early = false;
          for (Msg m : chans_[c0]) {
            take(c0, m);
            if (--budget == 0) {
              left_early = true;
              break;
            }
          }
          if (!left_early) take(c0, std::nullopt);
          break;
        }
      }
    }
    std::lock_guard guard(totals_lock_);
    totals_.operations += ops;
    totals_.selects += selects;
    totals_.defaults += defaults;
    totals_.timeouts += timeouts;
  }

  // --- the closer -----------------------------------------------------------------
  // Waits a random while (some rounds close early, some late), then closes
  // the channels one by one in random order; for each, two fibers race to
  // close it and exactly one must win.
  void closer() {
    Rng rng(cfg_.seed * 1000 + 999);
    // Close after a random share (0 to 120%) of the sends a producer quota
    // allows, so some rounds close while producers are busy and some after
    // they are done.
    const double share = rng.below(121) / 100.0;
    const auto target = static_cast<std::uint64_t>(share * producers_ * cfg_.ops_per_producer);
    // Random blocking operations can stall the program for good (every
    // producer blocked on channels no consumer is receiving from, and the
    // other way round); closing is what ends that, so a stall of ~2 ms
    // closes early too.
    std::uint64_t seen = progress_.load();
    for (int idle = 0; seen < target && producers_done_.load() < producers_ && idle < 20;) {
      goro::this_fiber::sleep_for(100us);
      const std::uint64_t now = progress_.load();
      idle = now == seen ? idle + 1 : 0;
      seen = now;
    }
    const bool stalled = seen < target && producers_done_.load() < producers_;
    closing_.store(true);
    std::vector<int> order(static_cast<std::size_t>(cfg_.channels));
    for (int c = 0; c < cfg_.channels; ++c) order[static_cast<std::size_t>(c)] = c;
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[static_cast<std::size_t>(rng.below(static_cast<int>(i)))]);
    std::uint64_t ops = 0;
    for (int c : order) {
      std::atomic<int> wins{0}, losses{0};
      goro::WaitGroup race;
      for (int r = 0; r < 2; ++r) {
        race.go([&, c] {
          try {
            chans_[c].close();
            closed_flag_[static_cast<std::size_t>(c)] = true;
            wins.fetch_add(1);
          } catch (const goro::channel_closed&) {
            losses.fetch_add(1);
          }
        });
      }
      race.wait();
      ops += 2;
      FCHECK(fails_, wins.load() == 1 && losses.load() == 1);
      goro::this_fiber::sleep_for(std::chrono::microseconds(rng.below(2'000)));
    }
    std::lock_guard guard(totals_lock_);
    totals_.operations += ops;
    totals_.stalls += stalled ? 1 : 0;
  }

  // --- verification -------------------------------------------------------------
  Totals verify() {
    Totals t = totals_;
    t.rounds = 1;
    const auto P = static_cast<std::size_t>(producers_);
    const auto C = static_cast<std::size_t>(cfg_.channels);
    // count[channel][producer][seq]
    std::vector<std::vector<std::vector<std::uint8_t>>> count(C, std::vector<std::vector<std::uint8_t>>(P));
    for (std::size_t c = 0; c < C; ++c)
      for (std::size_t p = 0; p < P; ++p) count[c][p].assign(next_seq_[p][c], 0);
    for (const auto& receipts : receipts_) {
      std::vector<std::int64_t> last(C * P, -1);  // this consumer's last seq per (channel, producer)
      for (const Receipt& r : receipts) {
        ++t.received;
        if (r.msg.producer >= P || r.msg.seq >= count[r.channel][r.msg.producer].size()) {
          ++t.phantom;
          continue;
        }
        auto& cell = count[r.channel][r.msg.producer][r.msg.seq];
        if (cell < 255) ++cell;
        std::int64_t& l = last[r.channel * P + r.msg.producer];
        if (static_cast<std::int64_t>(r.msg.seq) <= l) ++t.fifo_violations;
        l = r.msg.seq;
      }
    }
    for (auto& per_channel : count)
      for (auto& per_producer : per_channel)
        for (std::uint8_t n : per_producer) {
          if (n == 0) ++t.lost;
          if (n > 1) t.duplicated += n - 1u;
        }
    return t;
  }

  struct Receipt {
    std::uint16_t channel;
    Msg msg;
  };

  const Config cfg_;
  Failures& fails_;
  Rng rng_;
  std::vector<goro::Channel<Msg>> chans_;
  std::vector<std::atomic<bool>> closed_flag_;  // set once close() returned
  int producers_ = 0, consumers_ = 0;
  std::vector<std::vector<std::uint32_t>> next_seq_;  // [producer][channel]: messages sent
  std::vector<std::vector<Receipt>> receipts_;        // [consumer]
  std::atomic<std::uint64_t> progress_{0};  // messages sent so far
  std::atomic<int> producers_done_{0};
  std::atomic<bool> closing_{false};  // the closer has started
  std::mutex totals_lock_;
  Totals totals_;
};

Config sized_config(std::size_t workers, std::uint64_t seed) {
  Config cfg;
  cfg.workers = workers;
  cfg.seed = seed;
  cfg.ops_per_producer = static_cast<int>(scaled(20000, 4000, 3000));
  return cfg;
}

std::uint64_t base_seed() {
  if (const char* s = std::getenv("GORO_STRESS_SEED")) return std::strtoull(s, nullptr, 10);
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

void check_totals(const Totals& t, const Failures& fails) {
  INFO(t.text());
  INFO(fails.text());
  CHECK(fails.count() == 0u);
  CHECK(t.lost == 0u);
  CHECK(t.duplicated == 0u);
  CHECK(t.phantom == 0u);
  CHECK(t.fifo_violations == 0u);
  CHECK(t.sent == t.received);
}

}  // namespace

TEST_CASE("stress: random sends, receives, selects and closes conserve every message",
          "[stress]") {
  const std::size_t workers = GORO_WORKERS();
  const std::uint64_t seed = base_seed();
  const int rounds = static_cast<int>(scaled(6, 3, 3));
  Totals total;
  Failures fails;
  for (int r = 0; r < rounds; ++r) {
    const std::uint64_t round_seed = seed + static_cast<std::uint64_t>(r) * 7919u + workers;
    INFO("GORO_STRESS_SEED=" << seed << " round " << r << " (seed " << round_seed << ")");
    Round round(sized_config(workers, round_seed), fails);
    total.add(round.run());
    check_totals(total, fails);
  }
  std::printf("stress workers=%zu: %s\n", workers, total.text().c_str());
}

TEST_CASE("stress soak: rounds for GORO_SOAK_SECONDS seconds", "[.soak][stress]") {
  double seconds = 60;
  if (const char* s = std::getenv("GORO_SOAK_SECONDS")) seconds = std::strtod(s, nullptr);
  const std::uint64_t seed = base_seed();
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  static constexpr std::size_t kWorkers[] = {1, 2, 4, 8};
  Totals total;
  Failures fails;
  for (std::uint64_t r = 0; std::chrono::steady_clock::now() < until; ++r) {
    const std::uint64_t round_seed = seed + r * 7919u;
    INFO("GORO_STRESS_SEED=" << seed << " round " << r << " (seed " << round_seed << ")");
    Config cfg = sized_config(kWorkers[r % 4], round_seed);
    Rng shape(round_seed);
    cfg.channels = 1 + shape.below(Round::kMaxChannels);
    cfg.fiber_producers = 1 + shape.below(goro_test::kTsan ? 8 : 32);
    cfg.fiber_consumers = 1 + shape.below(goro_test::kTsan ? 8 : 32);
    cfg.thread_producers = shape.below(3);
    cfg.thread_consumers = shape.below(2);
    Round round(cfg, fails);
    total.add(round.run());
    check_totals(total, fails);
    if (fails.count() != 0) break;
  }
  std::printf("stress soak %.0f s: %s\n", seconds, total.text().c_str());
}

// Moves that throw (a T whose move is not noexcept) under contention: every
// fifth move of a value throws, wherever it happens (a sender handing over,
// a receiver taking from a parked sender, a receiver refilling a full
// buffer from one, a select's waker). Senders use plain send and select on
// an unbuffered and a buffered channel; receivers use plain recv and
// select. Each send either returns (its value is then received exactly
// once) or throws (its value is then never received); no fiber is left
// parked and no lock held, so the round finishes.
TEST_CASE("stress: moves that throw lose, duplicate and strand nothing", "[stress][throwing-move]") {
  const std::size_t workers = GORO_WORKERS();
  constexpr int kSenders = 4;
  const int per_sender = static_cast<int>(scaled(20000, 5000, 500));
  const int total = kSenders * per_sender;
  goro_test::MoveBudget budget;
  budget.every = 5;
  std::vector<std::atomic<int>> outcome(static_cast<std::size_t>(total));  // 1 sent, 2 threw
  std::vector<std::atomic<int>> received(static_cast<std::size_t>(total));
  std::atomic<long> recv_throws{0};
  Failures fails;
  goro::run(
      [&] {
        using goro_test::FlakyMove;
        goro::Channel<FlakyMove> unbuffered, buffered(1);
        auto note = [&](const std::optional<FlakyMove>& v) {
          if (v) received[static_cast<std::size_t>(v->value)].fetch_add(1);
          return v.has_value();
        };
        goro::WaitGroup senders, receivers;
        for (int s = 0; s < kSenders; ++s) {
          senders.go([&, s] {
            for (int i = 0; i < per_sender; ++i) {
              const int id = s * per_sender + i;
              try {
                FlakyMove v(id, budget);
                switch (i % 3) {
                  case 0: unbuffered.send(FlakyMove(id, budget)); break;
                  case 1: buffered.send(FlakyMove(id, budget)); break;
                  default: goro::select(goro::send(unbuffered, v), goro::send(buffered, v)); break;
                }
                outcome[static_cast<std::size_t>(id)] = 1;
              } catch (const std::runtime_error&) {
                outcome[static_cast<std::size_t>(id)] = 2;
              }
            }
          });
        }
        // One plain receiver per channel, two selecting over both.
        for (goro::Channel<FlakyMove>* c : {&unbuffered, &buffered}) {
          receivers.go([&, c] {
            for (;;) {
              try {
                if (!note(c->recv())) return;
              } catch (const std::runtime_error&) {
                recv_throws.fetch_add(1);
              }
            }
          });
        }
        for (int r = 0; r < 2; ++r) {
          receivers.go([&] {
            goro::Channel<FlakyMove> a = unbuffered, b = buffered;
            while (!a.is_nil() || !b.is_nil()) {
              try {
                goro::select(goro::recv(a, [&](std::optional<FlakyMove>&& v) { if (!note(v)) a = nullptr; }),
                             goro::recv(b, [&](std::optional<FlakyMove>&& v) { if (!note(v)) b = nullptr; }));
              } catch (const std::runtime_error&) {
                recv_throws.fetch_add(1);
              }
            }
          });
        }
        senders.wait();
        unbuffered.close();
        buffered.close();
        receivers.wait();
      },
      goro_test::with_workers(workers));
  int sent = 0, threw = 0;
  for (int id = 0; id < total; ++id) {
    const int o = outcome[static_cast<std::size_t>(id)];
    const int n = received[static_cast<std::size_t>(id)];
    if (o == 1) ++sent;
    if (o == 2) ++threw;
    FCHECK(fails, o == 1 || o == 2);
    FCHECK(fails, n == (o == 1 ? 1 : 0));
  }
  INFO("sent " << sent << ", threw " << threw << ", receives that threw " << recv_throws.load());
  INFO(fails.text());
  CHECK(fails.count() == 0u);
  CHECK(sent > 0);
  CHECK(threw > 0);
  CHECK(recv_throws.load() > 0);
}

// The largest number of fibers parked at once on default settings (default
// Options: workers from the hardware, 256 KiB stacks): GORO_PARK_FIBERS
// (default 1,000,000) fibers park on one WaitGroup, then all are released.
// Hidden (it takes several GB); run: stress_test "[.park]".
namespace {
long resident_kib() {
  long kb = 0;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::strncmp(line, "VmRSS:", 6) == 0) kb = std::strtol(line + 6, nullptr, 10);
    std::fclose(f);
  }
  return kb;
}
}  // namespace

TEST_CASE("a million fibers parked at once on default Options", "[.park][scale]") {
  std::size_t n = 1'000'000;
  if (const char* s = std::getenv("GORO_PARK_FIBERS")) n = std::strtoull(s, nullptr, 10);
  std::atomic<std::size_t> parked{0}, finished{0};
  long before_kib = 0, parked_kib = 0;
  double spawn_s = 0, release_s = 0;
  std::size_t workers = 0;
  goro::run([&] {
    workers = goro::worker_count();
    goro::WaitGroup gate, all;
    gate.add(1);
    before_kib = resident_kib();
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < n; ++i) {
      all.go([&] {
        parked.fetch_add(1, std::memory_order_relaxed);
        gate.wait();
        finished.fetch_add(1, std::memory_order_relaxed);
      });
    }
    while (parked.load() < n) goro::this_fiber::sleep_for(1ms);
    goro::this_fiber::sleep_for(10ms);  // let the last ones actually park
    spawn_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    parked_kib = resident_kib();
    const auto t1 = std::chrono::steady_clock::now();
    gate.done();
    all.wait();
    release_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
  });
  CHECK(parked.load() == n);
  CHECK(finished.load() == n);
  std::printf("parked %zu fibers at once (workers=%zu, stack 256 KiB): spawn+park %.2f s, release+join %.2f s, "
              "RSS %ld -> %ld MiB, %.0f bytes per parked fiber\n",
              n, workers, spawn_s, release_s, before_kib / 1024, parked_kib / 1024,
              (parked_kib - before_kib) * 1024.0 / static_cast<double>(n));
}
