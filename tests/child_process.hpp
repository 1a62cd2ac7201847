// run_in_child(): runs a piece of a test in a forked child, for death tests
// and for tests that change process-wide limits.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

#include <catch2/catch.hpp>

namespace goro_test {

// run_in_child() forks, runs `body` in the child with stdout and stderr
// captured, and returns what the child printed and its wait status. The
// child exits with body()'s return value (0 for a void body, 99 if it threw).
template <class F>
std::pair<std::string, int> run_in_child(F body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDERR_FILENO);
    ::dup2(fds[1], STDOUT_FILENO);
    // Catch2's fatal-signal handlers belong to the parent's test run.
    for (int sig : {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGALRM}) std::signal(sig, SIG_DFL);
    ::close(fds[0]);
    ::close(fds[1]);
    int rc = 99;
    try {
      if constexpr (std::is_void_v<decltype(body())>) {
        body();
        rc = 0;
      } else {
        rc = body();
      }
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child: uncaught exception: %s\n", e.what());
    } catch (...) {
      std::fprintf(stderr, "child: uncaught exception\n");
    }
    std::fflush(nullptr);
    ::_exit(rc);
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

// What check_child_passed() expects of a child besides exiting 0.
struct ChildExpectations {
  const char* ok_line = nullptr;      // printed by a child whose checks passed
  const char* skip_reason = nullptr;  // set: exiting kChildCannotRun skips the test
};

// kChildCannotRun: the exit code of a child that cannot run its checks on
// this machine (a kernel feature is missing).
inline constexpr int kChildCannotRun = 3;

// check_child_passed() runs `body` in a child (run_in_child) and checks that
// it exited 0, printed no "FAILED" and printed `expect.ok_line` if there is
// one. With `expect.skip_reason`, a child that exits kChildCannotRun makes
// the test pass as skipped, for that reason.
template <class F>
void check_child_passed(F body, ChildExpectations expect = {}) {
  auto [out, status] = run_in_child(body);
  INFO("child output:\n" << out);
  if (expect.skip_reason && WIFEXITED(status) && WEXITSTATUS(status) == kChildCannotRun) {
    SUCCEED(expect.skip_reason);
    return;
  }
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(out.find("FAILED") == std::string::npos);
  if (expect.ok_line) CHECK(out.find(expect.ok_line) != std::string::npos);
}

}  // namespace goro_test
