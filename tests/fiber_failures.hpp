// Failures: a thread-safe record of check failures seen on fibers and plain
// threads. Catch2's assertion macros are not thread-safe, so code running on
// helper fibers records failures here and the test body (after the fibers
// are joined, or after run() returned) reports them with REQUIRE_NO_FAILURES.
#pragma once

#include <catch2/catch.hpp>
#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

namespace goro_test {

class Failures {
 public:
  // add() records one failure; only the first few messages are kept.
  void add(std::string what) {
    std::lock_guard guard(mutex_);
    ++count_;
    if (messages_.size() < kKept) messages_.push_back(std::move(what));
  }
  std::size_t count() const {
    std::lock_guard guard(mutex_);
    return count_;
  }
  std::string text() const {
    std::lock_guard guard(mutex_);
    std::string out;
    for (const auto& m : messages_) out += m + "\n";
    if (count_ > messages_.size()) out += "... and " + std::to_string(count_ - messages_.size()) + " more\n";
    return out;
  }

 private:
  static constexpr std::size_t kKept = 16;
  mutable std::mutex mutex_;  // never held across a blocking goro call
  std::vector<std::string> messages_;
  std::size_t count_ = 0;
};

}  // namespace goro_test

// FCHECK(failures, cond) records `cond` as failed (with its line) when false;
// usable from any fiber or thread. It evaluates to the condition.
#define FCHECK(failures, ...)                                                                  \
  ([&]() -> bool {                                                                             \
    if (__VA_ARGS__) return true;                                                              \
    (failures).add(std::string(__FILE__) + ":" + std::to_string(__LINE__) + ": " #__VA_ARGS__); \
    return false;                                                                              \
  }())

// REQUIRE_NO_FAILURES(failures) reports what the fibers recorded (test body only).
#define REQUIRE_NO_FAILURES(failures)  \
  do {                                 \
    INFO((failures).text());           \
    REQUIRE((failures).count() == 0u); \
  } while (0)
