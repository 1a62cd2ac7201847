// UnwindOrder: the order in which a stopping runtime unwinds its fibers,
// children first (Runtime::unwind_all says why). A fiber that spawned is
// withheld while any registered fiber is deeper in the spawn tree than it
// is; its descendants all are. From the moment the unwinding begins, this
// counts the registered fibers at each depth, kept exact by the
// registrations and unregistrations themselves, and keeps the withheld
// spawners by depth, so that each is released the moment the last deeper
// fiber leaves, without a pass over the registry: a chain of N spawners
// (each blocked, each the spawner of the next) unwinds in O(N), not O(N^2).
//
// Invariants, once begun (all under lock_):
//   - registered_[d] is the number of fibers in the registry at depth d,
//     exited ones included until their worker unregisters them;
//   - deepest_ is the greatest d with registered_[d] > 0, or 0;
//   - a fiber is in withheld_[d] exactly when its `unwind_withheld` flag is
//     set, d is its depth, and it is registered;
//   - withheld_ is empty or its last level is not: withheld_.size() - 1 is
//     the deepest withheld level;
//   - floor_ only ever falls.

// Lock: lock_ guards all of it. It is taken with a registry shard lock held
// (a fiber's registration and unregistration, the unwinder's frozen
// registry), and it is held while release() claims a wait: shard lock ->
// lock_ -> a wait's claim lock. Nothing here blocks on anything else.
//
// A failed allocation (a deeper tree, a longer list) turns the order off:
// every fiber may then be unwound at once, as if unordered.
#pragma once

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fiber.hpp"
#include "spin_lock.hpp"

namespace goro::detail {

class UnwindOrder {
 public:
  // begun() says begin() ran: registrations must be noted from then on.
  // Read under a registry shard lock, which begin()'s caller held too.
  bool begun() const noexcept { return begun_.load(std::memory_order_relaxed); }

  // begin() counts the registered fibers by depth. `for_each_registered`
  // calls its argument on every fiber in the registry, which the caller
  // holds frozen.
  template <class ForEachRegistered>
  void begin(ForEachRegistered&& for_each_registered) noexcept;

  // note_registered() and note_unregistered() keep the counts exact; each
  // runs under `f`'s registry shard lock, once begun().
  void note_registered(const Fiber& f) noexcept;
  void note_unregistered(Fiber& f) noexcept;

  // withhold() says whether a spawner `f`, parked, must wait for deeper
  // fibers: one is registered and `f` is above the floor. If so, it is kept
  // (once) for release(). Runs with the registry frozen.
  bool withhold(Fiber& f) noexcept;

  // release_deepest_withheld() is the fallback when nothing can move: it
  // lowers the floor to the deepest withheld level, whose spawners are then
  // released whatever is deeper. It says whether any spawner was withheld.
  bool release_deepest_withheld() noexcept;

  // has_releasable() says release() would find a withheld fiber.
  bool has_releasable() noexcept;

  // release() hands `claim` every withheld fiber no registered fiber is
  // deeper than, or at the floor or deeper, and forgets them. Runs with the
  // registry frozen, so each is still registered.
  template <class Claim>
  void release(Claim&& claim) noexcept;

 private:
  // Withheld fibers at this depth or deeper may go.
  std::uint32_t release_depth() const noexcept { return std::min(deepest_, floor_); }
  void count_registered(const Fiber& f) noexcept;
  void drop_empty_levels() noexcept;
  void turn_off() noexcept;

  SpinLock lock_;
  std::atomic<bool> begun_{false};
  bool off_ = false;
  std::vector<std::size_t> registered_;
  std::uint32_t deepest_ = 0;
  std::uint32_t floor_ = UINT32_MAX;
  std::vector<std::vector<Fiber*>> withheld_;
};

template <class ForEachRegistered>
void UnwindOrder::begin(ForEachRegistered&& for_each_registered) noexcept {
  std::lock_guard guard(lock_);
  for_each_registered([this](const Fiber& f) { count_registered(f); });
  begun_.store(true, std::memory_order_relaxed);
}

inline void UnwindOrder::note_registered(const Fiber& f) noexcept {
  std::lock_guard guard(lock_);
  count_registered(f);
}

// count_registered() adds `f` to the counts; lock_ must be held.
inline void UnwindOrder::count_registered(const Fiber& f) noexcept {
  if (off_) return;
  try {
    if (registered_.size() <= f.depth) registered_.resize(std::size_t{f.depth} + 1);
  } catch (...) {
    turn_off();
    return;
  }
  ++registered_[f.depth];
  deepest_ = std::max(deepest_, f.depth);
}

inline void UnwindOrder::note_unregistered(Fiber& f) noexcept {
  std::lock_guard guard(lock_);
  if (off_) return;
  if (f.unwind_withheld) {
    std::vector<Fiber*>& level = withheld_[f.depth];
    *std::find(level.begin(), level.end(), &f) = level.back();
    level.pop_back();
    f.unwind_withheld = false;
    drop_empty_levels();
  }
  --registered_[f.depth];
  while (deepest_ > 0 && registered_[deepest_] == 0) --deepest_;
}

inline bool UnwindOrder::withhold(Fiber& f) noexcept {
  std::lock_guard guard(lock_);
  if (off_ || f.depth >= release_depth()) return false;
  if (f.unwind_withheld) return true;
  try {
    if (withheld_.size() <= f.depth) withheld_.resize(std::size_t{f.depth} + 1);
    withheld_[f.depth].push_back(&f);
  } catch (...) {
    turn_off();
    return false;
  }
  f.unwind_withheld = true;
  return true;
}

inline bool UnwindOrder::release_deepest_withheld() noexcept {
  std::lock_guard guard(lock_);
  if (withheld_.empty()) return false;
  floor_ = static_cast<std::uint32_t>(withheld_.size() - 1);
  return true;
}

inline bool UnwindOrder::has_releasable() noexcept {
  std::lock_guard guard(lock_);
  return release_depth() < withheld_.size();
}

template <class Claim>
void UnwindOrder::release(Claim&& claim) noexcept {
  std::lock_guard guard(lock_);
  const std::size_t from = release_depth();
  if (from >= withheld_.size()) return;
  for (std::size_t d = from; d < withheld_.size(); ++d) {
    for (Fiber* f : withheld_[d]) {
      f->unwind_withheld = false;
      claim(f);
    }
  }
  withheld_.resize(from);
  drop_empty_levels();
}

// drop_empty_levels() restores "the last level is not empty".
inline void UnwindOrder::drop_empty_levels() noexcept {
  while (!withheld_.empty() && withheld_.back().empty()) withheld_.pop_back();
}

// turn_off() gives up the order after a failed allocation: nothing is
// withheld any more, and the withheld fibers are forgotten (the unwinder's
// next pass claims them).
inline void UnwindOrder::turn_off() noexcept {
  off_ = true;
  for (std::vector<Fiber*>& level : withheld_) {
    for (Fiber* f : level) f->unwind_withheld = false;
  }
  withheld_.clear();
}

}  // namespace goro::detail
