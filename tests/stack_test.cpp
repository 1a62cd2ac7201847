// Fiber stacks: pooling, guard pages and the stack overflow report.
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "test_support.hpp"

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winfinite-recursion"  // the point of the test
__attribute__((noinline)) int recurse_forever(int depth) {
  volatile char frame[512];
  frame[0] = static_cast<char>(depth);
  return recurse_forever(depth + 1) + frame[0];
}
#pragma GCC diagnostic pop

// run_in_child() forks, runs `body` in the child with stderr captured, and
// returns the child's stderr and wait status.
template <class F>
std::pair<std::string, int> run_in_child(F body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    body();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {out, status};
}

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

TEST_CASE("a fiber's control block and a small callable fit in its first page", "[stack]") {
  // A parked fiber should cost about one page: the control block at the top
  // of its stack must leave room for the frames of a typical blocking call.
  CHECK(sizeof(goro::detail::Fiber) <= 512);
}
