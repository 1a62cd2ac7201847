// FlakyMove: a value whose move constructor throws on demand, for the tests
// of what channels and select do when moving T throws (a legacy type whose
// "move" is a copy that allocates, libstdc++'s std::deque, ...).
#pragma once

#include <atomic>
#include <stdexcept>

namespace goro_test {

// MoveBudget says which moves of the FlakyMoves that share it throw.
struct MoveBudget {
  // moves_left: that many moves succeed, then every move throws; -1 means
  // never throw (until `every` is set).
  std::atomic<int> moves_left{-1};
  // every: when non-zero, each move whose running count is a multiple of it
  // throws (for stress tests, where the counting is shared by all threads).
  std::atomic<int> every{0};
  std::atomic<long> count{0};

  bool allows_move() noexcept {
    if (int e = every.load(std::memory_order_relaxed)) {
      return count.fetch_add(1, std::memory_order_relaxed) % e != 0;
    }
    int left = moves_left.load(std::memory_order_relaxed);
    if (left < 0) return true;
    if (left == 0) return false;
    moves_left.store(left - 1, std::memory_order_relaxed);
    return true;
  }
};

// A move that throws leaves its source as it was (the strong guarantee a
// copy-based "move" gives), which is what goro relies on.
struct FlakyMove {
  int value;
  MoveBudget* budget;

  FlakyMove(int v, MoveBudget& b) noexcept : value(v), budget(&b) {}
  FlakyMove() noexcept : value(0), budget(nullptr) {}  // T{}: Go's zero value, which always moves
  FlakyMove(const FlakyMove&) = delete;
  FlakyMove(FlakyMove&& o) : value(o.value), budget(o.budget) {
    if (budget && !budget->allows_move()) throw std::runtime_error("FlakyMove: move failed");
  }
  FlakyMove& operator=(const FlakyMove&) = delete;
  FlakyMove& operator=(FlakyMove&&) = delete;
};

}  // namespace goro_test
