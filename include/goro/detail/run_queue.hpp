// Run queues of the work-stealing scheduler, after Go's runtime/proc.go.
//
// LocalRunQueue is a worker's own fixed ring of runnable fibers. Only its
// owner pushes (at the tail) and pops: the oldest from the head, or, for a
// fiber pushed `lifo` (one spawned and not yet run), the newest from the
// tail. Other workers steal the oldest half at a time from the head. The
// head shares one atomic word with a version, and every pop (at either end)
// and every steal is one CAS on that word, so no two of them take the same
// slot: a pop from the tail moves the tail back first and then bumps the
// version, which fails the CAS of any thief that read the word before. The
// tail is written by the owner only, with release, so a thief that reads it
// sees the slots written before. A thief copies slots first and then CASes:
// if the CAS fails the copy is discarded, so slots are atomics read relaxed
// (a stale copy is never used).
//
// Why the newest spawned fiber first: a fiber that spawns children and waits
// for them (a fork-join tree, skynet) then runs the tree depth-first, so
// only about depth x fan-out fibers are alive at once and their stacks stay
// warm; taking the oldest first runs it breadth-first, with most of a level
// parked at once. Thieves still take the oldest, the biggest subtrees.
// Fairness: a fiber that already ran (woken, yielded) is served from the
// head on the scheduler's housekeeping ticks, as in a FIFO ring; and when
// the head has not moved for a long while, the scheduler serves it whatever
// it is (Runtime::find_local_housekeeping), so an old spawn is not starved
// by a busy fork-join above it.
//
// A full ring moves its older half to the GlobalRunQueue
// (global_run_queue.hpp).
//
// Resume hints. Beside each slot the owner keeps where the fiber's saved
// stack pointer was when it was pushed (the pusher owns the fiber then, so
// reading it is no race), and upcoming() hands the owner the fiber its next
// pop would take with that hint. The scheduler prefetches both, one fiber
// ahead: a fiber parked among thousands has its stack's top lines and its
// block out of cache, and resuming it otherwise misses on them one frame
// at a time. Only the owner reads or writes the hints; a hint whose fiber
// was stolen meanwhile is stale, and prefetching it is harmless.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "fiber.hpp"
#include "global_run_queue.hpp"

namespace goro::detail {

class LocalRunQueue {
 public:
  static constexpr std::uint32_t kCapacity = 256;

  // push() appends `f`; `lifo` marks it as one the owner may take back from
  // the tail (pop). When the ring is full, half of it (the oldest) and `f`
  // move to `overflow`. Owner only.
  void push(Fiber* f, GlobalRunQueue& overflow, bool lifo = false) noexcept {
    const std::uintptr_t slot = reinterpret_cast<std::uintptr_t>(f) | (lifo ? kLifo : 0);
    for (;;) {
      const std::uint64_t hw = head_word_.load(std::memory_order_acquire);
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t - head_of(hw) < kCapacity) {
        resume_hints_[t % kCapacity] = f->started() ? reinterpret_cast<std::uintptr_t>(f->ctx.fctx) : kFirstRun;
        slots_[t % kCapacity].store(slot, std::memory_order_relaxed);
        tail_.store(t + 1, std::memory_order_release);
        return;
      }
      if (push_half_to(overflow, hw, t, f)) return;
    }
  }

  // PopOrder: which end pop() serves.
  enum class PopOrder {
    newest_spawn_first,   // the tail if it was pushed `lifo`, else the head
    started_head_first,   // the head if it was not pushed `lifo`, else as above
    oldest_first,         // the head
  };

  // pop() takes a fiber in `order`, or null if the ring is empty. Owner only.
  Fiber* pop(PopOrder order) noexcept {
    std::uint64_t hw = head_word_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t h = head_of(hw);
      const std::uint32_t t = tail_.load(std::memory_order_relaxed);
      if (t == h) return nullptr;
      if (takes_newest(order, h, t)) {
        if (Fiber* f = pop_newest(hw, t)) return f;
        continue;  // a thief took it: hw holds the new head word
      }
      const std::uintptr_t oldest = slots_[h % kCapacity].load(std::memory_order_relaxed);
      if (head_word_.compare_exchange_weak(hw, hw + 1, std::memory_order_acq_rel,
                                           std::memory_order_acquire))
        return to_fiber(oldest);
    }
  }

  // Upcoming is what the owner's next pop() would take: the fiber and its
  // resume hint: the saved stack pointer, kFirstRun for a fiber that never
  // ran, or kUnknown.
  static constexpr std::uintptr_t kUnknown = 0, kFirstRun = 1;  // saved stack pointers are aligned
  struct Upcoming {
    Fiber* fiber = nullptr;
    std::uintptr_t resume_at = kUnknown;
  };
  // upcoming() is a guess (a thief, the runnext slot or a fairness turn may
  // come first) for prefetching only. Owner only.
  Upcoming upcoming(PopOrder order) const noexcept {
    const std::uint32_t h = head_of(head_word_.load(std::memory_order_relaxed));
    const std::uint32_t t = tail_.load(std::memory_order_relaxed);
    if (t == h) return {};
    const std::uint32_t at = takes_newest(order, h, t) ? t - 1 : h;
    return {to_fiber(slots_[at % kCapacity].load(std::memory_order_relaxed)), resume_hints_[at % kCapacity]};
  }

  // head_index() is the head's position, which moves each time the oldest
  // fiber leaves (popped or stolen). Owner only.
  std::uint32_t head_index() const noexcept { return head_of(head_word_.load(std::memory_order_relaxed)); }

  // steal_into() moves about half of this ring, the oldest, into `thief`
  // (which must be empty, and owned by the caller) and returns one of the
  // stolen fibers.
  Fiber* steal_into(LocalRunQueue& thief) noexcept {
    const std::uint32_t th = thief.tail_.load(std::memory_order_relaxed);
    for (;;) {
      std::uint64_t hw = head_word_.load(std::memory_order_acquire);
      const std::uint32_t h = head_of(hw);
      const std::uint32_t t = tail_.load(std::memory_order_acquire);  // after the head word
      std::uint32_t n = t - h;
      n = n - n / 2;
      if (n == 0 || n > kCapacity / 2 + 1) {
        if (n == 0) return nullptr;
        continue;  // read head and tail at different moments: retry
      }
      for (std::uint32_t i = 0; i < n; ++i) {
        const std::uintptr_t slot = slots_[(h + i) % kCapacity].load(std::memory_order_relaxed);
        thief.slots_[(th + i) % kCapacity].store(slot, std::memory_order_relaxed);
        thief.resume_hints_[(th + i) % kCapacity] = kUnknown;  // the victim's are not ours to read
      }
      // Fails if the owner popped at either end since the load (a pop from
      // the tail bumps the version), so a successful CAS means the copy is
      // current and none of it was taken.
      if (head_word_.compare_exchange_weak(hw, hw + n, std::memory_order_acq_rel,
                                           std::memory_order_relaxed)) {
        --n;
        const std::uintptr_t first = thief.slots_[(th + n) % kCapacity].load(std::memory_order_relaxed);
        if (n > 0) thief.tail_.store(th + n, std::memory_order_release);
        return to_fiber(first);
      }
    }
  }

  // mark() is a thief's look at the ring, for waited_since(): true while the
  // owner has not taken, from the head, every fiber that was queued at that
  // look. (Fibers taken back from the tail do not count: a thief may then
  // steal a little early.) Any thread.
  std::uint32_t mark() const noexcept { return tail_.load(std::memory_order_acquire); }
  bool waited_since(std::uint32_t mark) const noexcept {
    return static_cast<std::int32_t>(mark - head_of(head_word_.load(std::memory_order_acquire))) > 0;
  }
  bool empty() const noexcept { return size() == 0; }
  std::uint32_t size() const noexcept {
    const std::uint32_t h = head_of(head_word_.load(std::memory_order_acquire));
    const std::uint32_t t = tail_.load(std::memory_order_acquire);
    return static_cast<std::int32_t>(t - h) > 0 ? t - h : 0;
  }

 private:
  // head_word_ is the head (low 32 bits) and a version (high 32 bits). Every
  // pop and steal is one CAS on it; the version, bumped by each pop from the
  // tail, makes that pop fail a thief's CAS that started before it. tail_ is
  // the owner's alone. Indices count modulo 2^32, a multiple of kCapacity.
  static constexpr std::uint64_t kVersionOne = std::uint64_t{1} << 32;
  static constexpr std::uintptr_t kLifo = 1;  // a slot's tag: Fiber is aligned
  static_assert(alignof(Fiber) > 1);

  static std::uint32_t head_of(std::uint64_t hw) noexcept { return static_cast<std::uint32_t>(hw); }
  // takes_newest() says whether a pop in `order` from the non-empty ring
  // [h, t) takes the lifo fiber at the tail rather than the head. Owner only.
  bool takes_newest(PopOrder order, std::uint32_t h, std::uint32_t t) const noexcept {
    if (order == PopOrder::oldest_first) return false;
    if (order == PopOrder::started_head_first && !(slots_[h % kCapacity].load(std::memory_order_relaxed) & kLifo)) {
      return false;
    }
    return slots_[(t - 1) % kCapacity].load(std::memory_order_relaxed) & kLifo;
  }
  static Fiber* to_fiber(std::uintptr_t slot) noexcept { return reinterpret_cast<Fiber*>(slot & ~kLifo); }

  // pop_newest() takes the slot at t - 1 (t is the tail, hw the head word the
  // caller loaded). The tail moves back first, so a thief whose load of the
  // head word sees this pop's version also sees the shorter ring; a thief
  // that loaded the head word before fails its CAS. Returns null, with hw
  // reloaded and the tail restored, if a thief took the slot first.
  Fiber* pop_newest(std::uint64_t& hw, std::uint32_t t) noexcept {
    const std::uintptr_t newest = slots_[(t - 1) % kCapacity].load(std::memory_order_relaxed);
    tail_.store(t - 1, std::memory_order_relaxed);
    for (;;) {
      // seq_cst: the tail store above may not pass this CAS.
      if (head_word_.compare_exchange_weak(hw, hw + kVersionOne, std::memory_order_seq_cst,
                                           std::memory_order_acquire))
        return to_fiber(newest);
      if (static_cast<std::int32_t>(t - 1 - head_of(hw)) < 0) {  // a thief took the last one
        tail_.store(t, std::memory_order_relaxed);
        return nullptr;
      }
    }
  }

  // push_half_to() moves the oldest half of a full ring and `f` to `overflow`;
  // false if thieves took some meanwhile (there is room now).
  bool push_half_to(GlobalRunQueue& overflow, std::uint64_t hw, std::uint32_t t, Fiber* f) noexcept {
    const std::uint32_t h = head_of(hw);
    const std::uint32_t n = (t - h) / 2;
    Fiber* batch[kCapacity / 2 + 1];
    for (std::uint32_t i = 0; i < n; ++i)
      batch[i] = to_fiber(slots_[(h + i) % kCapacity].load(std::memory_order_relaxed));
    if (!head_word_.compare_exchange_strong(hw, hw + n, std::memory_order_acq_rel,
                                            std::memory_order_relaxed))
      return false;
    batch[n] = f;
    overflow.push_all(batch, n + 1);
    return true;
  }

  alignas(64) std::atomic<std::uint64_t> head_word_{0};
  alignas(64) std::atomic<std::uint32_t> tail_{0};
  std::array<std::atomic<std::uintptr_t>, kCapacity> slots_{};
  std::array<std::uintptr_t, kCapacity> resume_hints_{};  // the owner's alone
};

}  // namespace goro::detail
