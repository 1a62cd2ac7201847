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
//     set, d is its depth, and it is registered; withheld_count_ counts
//     them;
//   - top_withheld_ is at least every d with withheld_[d] non-empty.
//
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
  // fibers: one is registered and `f` is shallower than `floor` (the
  // fallback's release depth). If so, it is kept (once) for release().
  // Runs with the registry frozen.
  bool withhold(Fiber& f, std::uint32_t floor) noexcept;

  // has_releasable() says release() would find a withheld fiber.
  bool has_releasable(std::uint32_t floor) noexcept;

  // release() hands `claim` every withheld fiber no registered fiber is
  // deeper than, or at `floor` or deeper, and forgets them. Runs with the
  // registry frozen, so each is still registered.
  template <class Claim>
  void release(std::uint32_t floor, Claim&& claim) noexcept;

 private:
  std::uint32_t release_depth(std::uint32_t floor) const noexcept { return std::min(deepest_, floor); }
  void count_registered(const Fiber& f) noexcept;
  void lower_top_withheld() noexcept;
  void turn_off() noexcept;

  SpinLock lock_;
  std::atomic<bool> begun_{false};
  bool off_ = false;
  std::vector<std::size_t> registered_;
  std::uint32_t deepest_ = 0;
  std::vector<std::vector<Fiber*>> withheld_;
  std::size_t withheld_count_ = 0;
  std::uint32_t top_withheld_ = 0;
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
    --withheld_count_;
    f.unwind_withheld = false;
  }
  --registered_[f.depth];
  while (deepest_ > 0 && registered_[deepest_] == 0) --deepest_;
}

inline bool UnwindOrder::withhold(Fiber& f, std::uint32_t floor) noexcept {
  std::lock_guard guard(lock_);
  if (off_ || f.depth >= release_depth(floor)) return false;
  if (f.unwind_withheld) return true;
  try {
    if (withheld_.size() <= f.depth) withheld_.resize(std::size_t{f.depth} + 1);
    withheld_[f.depth].push_back(&f);
  } catch (...) {
    turn_off();
    return false;
  }
  f.unwind_withheld = true;
  ++withheld_count_;
  top_withheld_ = std::max(top_withheld_, f.depth);
  return true;
}

inline bool UnwindOrder::has_releasable(std::uint32_t floor) noexcept {
  std::lock_guard guard(lock_);
  if (withheld_count_ == 0) return false;
  lower_top_withheld();
  return top_withheld_ >= release_depth(floor);
}

template <class Claim>
void UnwindOrder::release(std::uint32_t floor, Claim&& claim) noexcept {
  std::lock_guard guard(lock_);
  if (withheld_count_ == 0) return;
  lower_top_withheld();
  for (std::uint32_t d = release_depth(floor); d <= top_withheld_; ++d) {
    for (Fiber* f : withheld_[d]) {
      f->unwind_withheld = false;
      claim(f);
    }
    withheld_count_ -= withheld_[d].size();
    withheld_[d].clear();
  }
  lower_top_withheld();
}

// lower_top_withheld() moves top_withheld_ down past empty levels.
inline void UnwindOrder::lower_top_withheld() noexcept {
  while (top_withheld_ > 0 && withheld_[top_withheld_].empty()) --top_withheld_;
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
  withheld_count_ = 0;
  top_withheld_ = 0;
}

}  // namespace goro::detail
