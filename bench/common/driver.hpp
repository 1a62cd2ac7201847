// What the two C++ benchmark programs share: gorobench_goro
// (bench/peer/goro_peer.cpp) and gorobench_fiber (bench/fiber/main.cpp) run
// the same workloads against different libraries, so the sizes those
// workloads fix, the pure helpers and the command line live here once. The
// Go program (bench/go/main.go) mirrors the same numbers in Go.
//
// Nothing here depends on goro or Boost.Fiber: each program keeps its own
// channel capacities (Boost.Fiber's buffered_channel needs powers of two),
// its own fail() and its own way of running the chosen workload.
//
// Not thread-safe beyond what each function says: parse_command_line() and
// print_result() run on the main thread before and after the workload.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>

namespace gorobench {

// Fixed parameters that the optional n does not change (same as the Go side).
inline constexpr int kSpawnJoinRounds = 10;
inline constexpr std::int64_t kMutexIncrements = 1000;
inline constexpr int kWaitgroupRounds = 100;
inline constexpr int kCtxCancelRounds = 10;
inline constexpr int kPoolWorkers = 4;
inline constexpr std::int64_t kSkynetFanout = 10;

// The growth curves' fixed sizes (bench/README.md defines the curves).
inline constexpr std::int64_t kCurveSelectIters = 100'000;  // selects per curve_select run
inline constexpr std::int64_t kCurveChanItems = 1 << 20;    // items per curve_chan run
inline constexpr std::int64_t kCurveFanoutChunks = 1024;    // fibers per curve_fanout run
inline constexpr std::int64_t kCurveFanoutIters = 1 << 18;  // LCG steps per fiber
inline constexpr std::int64_t kCurveMaxSelectCases = 64;

using Clock = std::chrono::steady_clock;

// per_op() is the time since `start` divided by `ops`, in nanoseconds.
inline double per_op(Clock::time_point start, std::int64_t ops) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count()) /
         static_cast<double>(ops);
}

// cpu_chunk() is one chunk of pure CPU work, identical in the three
// programs: `iters` steps of a 64-bit LCG, each folded into an accumulator
// with a shift and xor.
inline std::uint64_t cpu_chunk(std::uint64_t seed, std::int64_t iters) {
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1, acc = 0;
  for (std::int64_t i = 0; i < iters; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    acc += x ^ (x >> 29);
  }
  return acc;
}

// resident_bytes() is this process's resident set size, from
// /proc/self/statm. Throws std::runtime_error if it cannot be read.
inline std::int64_t resident_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  long long size = 0, resident = 0;
  const bool ok = f != nullptr && std::fscanf(f, "%lld %lld", &size, &resident) == 2;
  if (f != nullptr) std::fclose(f);
  if (!ok) throw std::runtime_error("cannot read /proc/self/statm");
  return resident * sysconf(_SC_PAGESIZE);
}

// Valid sizes: skynet needs a power of its fan-out, curve_select a power of
// two up to kCurveMaxSelectCases, buffered_4p4c a multiple of 4.
inline bool is_power_of_fanout(std::int64_t n) {
  while (n > 1 && n % kSkynetFanout == 0) n /= kSkynetFanout;
  return n == 1;
}
inline bool is_select_width(std::int64_t n) { return n <= kCurveMaxSelectCases && (n & (n - 1)) == 0; }
inline bool is_multiple_of_4(std::int64_t n) { return n % 4 == 0; }

// A workload of the side-by-side table: run(n) returns `unit` per op.
struct Workload {
  const char* name;
  std::int64_t default_n;
  const char* unit;
  double (*run)(std::int64_t);
  bool (*valid)(std::int64_t);  // nullptr: any n >= 1
};

// A growth-curve workload takes a second, optional size: ops.
struct CurveWorkload {
  const char* name;
  std::int64_t default_n;
  std::int64_t default_ops;
  const char* unit;
  double (*run)(std::int64_t n, std::int64_t ops);
  bool (*valid)(std::int64_t n);  // nullptr: any n >= 1
};

// Choice: the workload the command line names, with its sizes.
struct Choice {
  const Workload* workload = nullptr;     // exactly one of these two is set
  const CurveWorkload* curve = nullptr;
  std::int64_t workers = 0;
  std::int64_t n = 0;
  std::int64_t ops = 0;  // curve workloads only

  const char* name() const { return workload != nullptr ? workload->name : curve->name; }
  const char* unit() const { return workload != nullptr ? workload->unit : curve->unit; }
  // run() runs the workload on the calling thread (inside the program's
  // runtime) and returns its figure.
  double run() const { return workload != nullptr ? workload->run(n) : curve->run(n, ops); }
};

namespace detail {

[[noreturn]] inline void usage(const char* program, const std::string& msg, std::span<const Workload> workloads,
                               std::span<const CurveWorkload> curves) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s <workload> <workers> [n]\n"
               "       %s <curve workload> <workers> [n [ops]]\nworkloads:",
               program, msg.c_str(), program, program);
  for (const auto& w : workloads) std::fprintf(stderr, " %s", w.name);
  std::fprintf(stderr, "\ncurve workloads:");
  for (const auto& w : curves) std::fprintf(stderr, " %s", w.name);
  std::fprintf(stderr, "\n");
  std::exit(2);
}

// parse_positive() parses a positive integer, or returns -1.
inline std::int64_t parse_positive(const char* s) {
  char* end = nullptr;
  errno = 0;
  long long v = std::strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < 1) return -1;
  return v;
}

}  // namespace detail

// parse_command_line() reads "<workload> <workers> [n [ops]]". On a bad
// command line it prints what is wrong and the usage, and exits with status 2.
inline Choice parse_command_line(const char* program, int argc, char** argv, std::span<const Workload> workloads,
                                 std::span<const CurveWorkload> curves) {
  auto usage = [&](const std::string& msg) { detail::usage(program, msg, workloads, curves); };
  if (argc < 3 || argc > 5) usage("wrong number of arguments");
  Choice c;
  for (const auto& cand : workloads) {
    if (std::strcmp(cand.name, argv[1]) == 0) c.workload = &cand;
  }
  for (const auto& cand : curves) {
    if (std::strcmp(cand.name, argv[1]) == 0) c.curve = &cand;
  }
  if (c.workload == nullptr && c.curve == nullptr) usage(std::string("unknown workload \"") + argv[1] + "\"");
  if (c.workload != nullptr && argc == 5) usage(std::string(c.name()) + " takes one size");
  c.workers = detail::parse_positive(argv[2]);
  if (c.workers < 1 || c.workers > 4096) usage("workers must be a positive integer");
  c.n = c.workload != nullptr ? c.workload->default_n : c.curve->default_n;
  c.ops = c.workload != nullptr ? 0 : c.curve->default_ops;
  if (argc >= 4) {
    c.n = detail::parse_positive(argv[3]);
    bool (*valid)(std::int64_t) = c.workload != nullptr ? c.workload->valid : c.curve->valid;
    if (c.n < 1 || (valid != nullptr && !valid(c.n))) usage(std::string("invalid size for ") + c.name());
  }
  if (argc == 5) {
    c.ops = detail::parse_positive(argv[4]);
    if (c.ops < 1) usage(std::string("invalid ops for ") + c.name());
  }
  return c;
}

// print_result() prints the one line the scripts read: "<workload> <value> <unit>".
inline void print_result(const Choice& c, double value) { std::printf("%s %.2f %s\n", c.name(), value, c.unit()); }

}  // namespace gorobench
