// Fiber stacks: pooling, guard pages and the stack overflow report.
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csetjmp>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "child_process.hpp"
#include "test_support.hpp"

using goro_test::check_child_passed;
using goro_test::kChildCannotRun;
using goro_test::run_in_child;

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winfinite-recursion"  // the point of the test
__attribute__((noinline)) int recurse_forever(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  return recurse_forever(depth + 1) + frame[0];
}

// one_big_frame() has a frame twice the size of a 256 KiB stack and writes
// its far (lowest) end: without stack clash protection that write lands
// beyond the guard page, in whatever lies below the stack.
__attribute__((noinline)) int one_big_frame(int seed) {
  volatile char frame[512 * 1024];
  frame[0] = static_cast<char>(seed);
  return frame[0];
}
#pragma GCC diagnostic pop

}  // namespace

TEST_CASE("stack overflow stops the program naming the fiber and its stack size", "[stack]") {
  if (goro_test::kTsan || goro_test::kAsan) {
    // The sanitizers own SIGSEGV and report the overflow themselves.
    SUCCEED("skipped under sanitizers");
    return;
  }
  auto [err, status] = run_in_child([] {
    goro::Options o;
    o.workers = 2;
    o.stack_size = 64 * 1024;
    goro::run([] { goro::go([] { recurse_forever(0); }); goro::this_fiber::sleep_for(std::chrono::seconds(5)); }, o);
  });
  INFO("child stderr: " << err);
  CHECK(WIFSIGNALED(status));
  CHECK(err.find("goro: fatal error: stack overflow in fiber 2") != std::string::npos);
  CHECK(err.find("stack size 65536 bytes") != std::string::npos);
}

TEST_CASE("a frame larger than the guard page still stops at the guard, naming the fiber", "[stack]") {
  // goro::goro compiles its users with -fstack-clash-protection
  // (GORO_STACK_CLASH_PROTECTION), so the frame touches each page as it
  // grows and the first page past the stack is the guard.
  if (goro_test::kTsan || goro_test::kAsan) {
    SUCCEED("skipped under sanitizers");
    return;
  }
#if !GORO_TEST_STACK_CLASH_PROTECTION
  SUCCEED("skipped: configured without GORO_STACK_CLASH_PROTECTION");
  return;
#endif
  auto [err, status] = run_in_child([] {
    goro::Options o;
    o.workers = 1;
    o.stack_size = 256 * 1024;
    goro::run(
        [] {
          // Neighbours parked below and around, whose stacks a stray write would hit.
          goro::Channel<int> never;
          for (int i = 0; i < 16; ++i) goro::go([never] { (void)never.recv(); });
          goro::this_fiber::sleep_for(std::chrono::milliseconds(5));
          goro::go([] { (void)one_big_frame(1); });
          goro::this_fiber::sleep_for(std::chrono::seconds(5));
        },
        o);
  });
  INFO("child stderr: " << err);
  CHECK(WIFSIGNALED(status));
  CHECK(err.find("goro: fatal error: stack overflow in fiber 18") != std::string::npos);
  CHECK(err.find("hit the guard page") != std::string::npos);
}

// Beyond the mapping budget (GORO_GUARD_MARKERS=0 run), stacks have no guard
// page: a fiber recursing forever runs through the stacks below its own and
// faults wherever memory stops being writable, before any switch. The
// SIGSEGV handler still names it: the fault is at a stack pointer below the
// running fiber's stack.
TEST_CASE("an unguarded stack's overflow that faults before a switch still names the fiber", "[stack]") {
  if (goro_test::kTsan || goro_test::kAsan) {
    SUCCEED("skipped under sanitizers: they own SIGSEGV");
    return;
  }
  if (goro::detail::StackPool::instance().guard_markers()) {
    SUCCEED("every stack is guarded here (the GORO_GUARD_MARKERS=0 run covers this)");
    return;
  }
  auto [err, status] = run_in_child([] {
    goro::Options o;
    o.workers = 1;
    o.stack_size = 64 * 1024;
    goro::run(
        [] {
          goro::Channel<int> never;
          const std::size_t budget = goro::detail::StackPool::instance().guard_budget();
          for (std::size_t i = 0; i < budget + 64; ++i) goro::go([never] { (void)never.recv(); });
          goro::go([] {
            if (goro::detail::current_fiber()->stack.guarded) std::_Exit(kChildCannotRun);
            recurse_forever(0);
          });
          goro::this_fiber::sleep_for(std::chrono::seconds(30));
        },
        o);
  });
  INFO("child stderr: " << err);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kChildCannotRun) {
    SUCCEED("the fiber's stack came guarded");
    return;
  }
  CHECK(WIFSIGNALED(status));
  CHECK(err.find("goro: fatal error: stack overflow in fiber") != std::string::npos);
  CHECK(err.find("stack size 65536 bytes; stack pointer below the stack at a fault") != std::string::npos);
}

TEST_CASE("stacks are guarded under the mapping budget, pooled and reused", "[stack]") {
  auto& pool = goro::detail::StackPool::instance();
  REQUIRE(pool.guard_budget() > 1000);
  goro::detail::Stack a = pool.acquire(100 * 1024);
  CHECK(a.size == goro::detail::StackPool::round_size(100 * 1024));
  CHECK(a.size % goro::detail::page_size() == 0);
  CHECK(a.guarded);
  a.base[0] = 1;  // lowest usable byte is writable
  a.top()[-1] = 1;
  pool.release(a);
  goro::detail::Stack b = pool.acquire(100 * 1024);
  CHECK(b.base == a.base);  // warm stacks are reused first
  pool.release(b);
}

// CTest runs this file twice: as is, and with GORO_GUARD_MARKERS=0, which
// must select the mapping-budget scheme on any kernel.
bool markers_disabled_by_env() {
  const char* env = std::getenv("GORO_GUARD_MARKERS");
  return env != nullptr && std::string(env) == "0";
}

TEST_CASE("guard markers guard every stack from slabs; without them, guards stay in the mapping budget",
          "[stack]") {
  auto& pool = goro::detail::StackPool::instance();
  if (markers_disabled_by_env()) CHECK_FALSE(pool.guard_markers());
  INFO("guard markers: " << pool.guard_markers());
  std::vector<goro::detail::Stack> stacks;
  for (std::size_t i = 0; i < 3 * goro::detail::StackPool::kSlabStacks; ++i) {
    stacks.push_back(pool.acquire(100 * 1024));
  }
  for (const auto& s : stacks) {
    if (pool.guard_markers()) {
      CHECK(s.guarded);
      CHECK(s.in_slab);
    } else {
      CHECK(s.guarded != s.in_slab);  // a mapping of its own with a guard, or a bare slab slot
    }
    s.base[0] = 1;  // the whole usable range is writable
    s.top()[-1] = 1;
  }
  CHECK(pool.guarded_live() <= pool.guard_budget());
  for (const auto& s : stacks) pool.release(s);
}

TEST_CASE("writing just below a guarded stack faults", "[stack]") {
  if (goro_test::kTsan || goro_test::kAsan) {
    SUCCEED("skipped under sanitizers: they own SIGSEGV");
    return;
  }
  auto [err, status] = run_in_child([] {
    goro::detail::Stack s = goro::detail::StackPool::instance().acquire(100 * 1024);
    if (!s.guarded) std::_Exit(kChildCannotRun);  // nothing to test: the parent accepts this
    static_cast<volatile char*>(s.base)[-1] = 1;
    std::_Exit(0);  // not reached if the guard works
  });
  INFO("child stderr: " << err);
  if (WIFEXITED(status) && WEXITSTATUS(status) == kChildCannotRun) {
    SUCCEED("this stack came unguarded");
    return;
  }
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
}

namespace {
sigjmp_buf probe_jump;
std::size_t g_probe_index = 0;
std::size_t g_probe_faults = 0;
void probe_fault(int) { siglongjmp(probe_jump, 1); }

}  // namespace

// A slab's guard markers go in with one batched call (process_madvise) where
// the kernel takes it: every stack of several slabs must still be guarded.
TEST_CASE("every stack of a slab has its guard page", "[stack]") {
  if (goro_test::kTsan || goro_test::kAsan) {
    SUCCEED("skipped under sanitizers: they own SIGSEGV");
    return;
  }
  check_child_passed([] {
    auto& pool = goro::detail::StackPool::instance();
    if (!pool.guard_markers()) std::_Exit(kChildCannotRun);  // no slabs with guards here
    std::vector<goro::detail::Stack> stacks;
    for (std::size_t i = 0; i < 3 * goro::detail::StackPool::kSlabStacks; ++i) stacks.push_back(pool.acquire(64 * 1024));
    struct sigaction sa {};
    sa.sa_handler = probe_fault;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, nullptr);
    // Globals, not locals: siglongjmp may roll back locals kept in registers.
    for (g_probe_index = 0; g_probe_index < stacks.size(); ++g_probe_index) {
      const goro::detail::Stack& s = stacks[g_probe_index];
      if (s.guarded && sigsetjmp(probe_jump, 1) == 0) {
        static_cast<volatile char*>(s.base)[-1] = 1;  // must not return
      } else if (s.guarded) {
        ++g_probe_faults;
      }
    }
    const int unguarded = static_cast<int>(stacks.size() - g_probe_faults);
    std::_Exit(unguarded == 0 ? 0 : 10 + std::min(unguarded, 100));
  }, {.skip_reason = "this kernel has no guard markers"});
}

// A new slab's top pages are committed in one call ahead of their first run,
// and counted until a fiber runs on them (the count caps that memory).
TEST_CASE("a new slab's top pages are resident and counted until first run", "[stack]") {
  check_child_passed([] {
    auto& pool = goro::detail::StackPool::instance();
    std::vector<goro::detail::Stack> stacks;
    for (std::size_t i = 0; i < goro::detail::StackPool::kSlabStacks; ++i) stacks.push_back(pool.acquire(64 * 1024));
    const std::size_t populated = pool.populated_idle();
    if (populated == 0) std::_Exit(kChildCannotRun);  // this kernel cannot populate in one call
    if (populated != stacks.size()) std::_Exit(10);
    const std::size_t page = goro::detail::page_size();
    for (const auto& s : stacks) {
      unsigned char resident = 0;
      if (::mincore(s.top() - page, page, &resident) != 0 || (resident & 1) == 0) std::_Exit(11);
      if (!s.populated) std::_Exit(12);
    }
    pool.first_run(stacks[0]);
    pool.first_run(stacks[0]);  // a second start on the same stack counts nothing
    if (pool.populated_idle() != populated - 1 || stacks[0].populated) std::_Exit(13);
    for (const auto& s : stacks) pool.release(s);
    std::_Exit(0);
  }, {.skip_reason = "this kernel does not populate pages through process_madvise"});
}

// scavenge() gives back the pages of the stacks the pool holds beyond
// kRetainWarm, 64 stacks a call where the kernel takes process_madvise().
TEST_CASE("scavenging gives back the pages of the pool's stacks beyond what it keeps warm", "[stack]") {
  check_child_passed([] {
    using goro::detail::StackPool;
    auto& pool = StackPool::instance();
    constexpr std::size_t kExcess = 200;  // more than three calls' worth, and not a multiple of 64
    const std::size_t page = goro::detail::page_size();
    std::vector<goro::detail::Stack> stacks;
    for (std::size_t i = 0; i < StackPool::kRetainWarm + kExcess; ++i) {
      stacks.push_back(pool.acquire(64 * 1024));
      stacks.back().top()[-64] = 1;  // commit its top page, as a fiber that ran would
    }
    for (const auto& s : stacks) pool.release(s);
    if (!pool.has_excess()) std::_Exit(10);
    pool.scavenge();
    if (pool.has_excess()) std::_Exit(11);
    std::size_t given_back = 0;
    for (const auto& s : stacks) {
      unsigned char resident = 0;
      // A stack with a mapping of its own is unmapped instead (mincore fails).
      if (::mincore(s.top() - page, page, &resident) != 0 || (resident & 1) == 0) ++given_back;
    }
    if (given_back != kExcess) {
      std::fprintf(stderr, "%zu of %zu stacks given back\n", given_back, stacks.size());
      std::_Exit(12);
    }
    // The pool hands its stacks out again, pages given back or not.
    std::vector<goro::detail::Stack> again;
    for (std::size_t i = 0; i < stacks.size(); ++i) {
      again.push_back(pool.acquire(64 * 1024));
      if (again.back().top()[-64] != 0 && again.back().top()[-64] != 1) std::_Exit(13);
      again.back().top()[-64] = 2;
    }
    for (const auto& s : again) pool.release(s);
    std::_Exit(0);
  });
}

TEST_CASE("a fiber's control block and a small callable fit in its first page", "[stack]") {
  // A parked fiber should cost about one page: the control block at the top
  // of its stack must leave room for the frames of a typical blocking call.
  CHECK(sizeof(goro::detail::Fiber) <= 512);
}
