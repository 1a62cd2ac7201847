// TimerHeap: the runtime's one clock of pending deadlines (a binary min-heap
// on steady_clock nanoseconds). Sleeping fibers, select timeouts, Timer,
// Ticker and context deadlines all put a TimerNode here; workers run the due
// ones between fibers and idle workers sleep until the earliest.
//
// Lock: `lock_` guards heap_ and every queued node's heap_index. An expire
// callback runs with the lock held and must only claim tickets into the
// WakeList or chain its node onto `later` (run after the lock is released).
// Lock order: a channel or wait-list lock may be held when calling add() or
// remove(); expire callbacks never take any other lock.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <mutex>
#include <vector>

#include "parker.hpp"
#include "spin_lock.hpp"

namespace goro::detail {

struct TimerNode {
  static constexpr std::size_t kNotQueued = static_cast<std::size_t>(-1);

  std::int64_t when = 0;  // steady_clock nanoseconds
  std::size_t heap_index = kNotQueued;
  // expire() runs under the heap lock once the node is due and removed.
  void (*expire)(TimerNode* self, WakeList& wake, TimerNode*& later) = nullptr;
  // run_later() runs after the lock is released, for nodes expire() chained.
  void (*run_later)(TimerNode* self) = nullptr;
  TimerNode* later_next = nullptr;
  // For sleeping fibers and timed waits: the ticket to claim with `timeout`.
  Parker::Ticket ticket{};

  bool queued() const noexcept { return heap_index != kNotQueued; }
};

// expire_ticket() is the expire callback of a timed wait.
inline void expire_ticket(TimerNode* self, WakeList& wake, TimerNode*&) {
  wake.add_if_claimed(self->ticket, WakeReason::timeout);
}

class TimerHeap {
 public:
  // add() queues `node` (not queued yet); returns true if it is now the earliest.
  bool add(TimerNode* node);
  // remove() dequeues `node`; false if it was not queued (it fired, or never was).
  bool remove(TimerNode* node) noexcept;
  // run_due() expires every node due at `now`; returns how many.
  std::size_t run_due(std::int64_t now);
  // earliest() is the earliest deadline, or INT64_MAX when none is pending.
  // seq_cst: the deadlock detector orders it against the active-thread count.
  std::int64_t earliest() const noexcept { return earliest_.load(std::memory_order_seq_cst); }
  bool empty() const noexcept { return earliest() == INT64_MAX; }
  // settled() is empty() with no firing in flight: no node is pending, and
  // no run_due() is between taking due nodes off and waking their waiters
  // (a Timer's channel send runs after the heap already looks empty). The
  // deadlock detector and the unwinder's stuck check ask this.
  bool settled() const noexcept { return empty() && firing_.load(std::memory_order_seq_cst) == 0; }
  // The timer thread (TimerService) sleeps on service_word() until the
  // earliest deadline it saw. A fiber's deadline is added without waking it
  // (the workers fire those), so it may be asleep for good while the heap
  // holds later timers: wake_service() makes it look again. TimerService
  // calls it for a new earliest timer, and a stopping runtime once its
  // workers, which fired the timers until then, are gone.
  std::atomic<std::uint32_t>& service_word() noexcept { return service_word_; }
  void wake_service() noexcept {
    service_word_.fetch_add(1, std::memory_order_release);
    futex_wake(&service_word_);
  }

 private:
  void sift_up(std::size_t i) noexcept;
  void sift_down(std::size_t i) noexcept;
  void place(std::size_t i, TimerNode* n) noexcept { heap_[i] = n; n->heap_index = i; }
  void erase_at(std::size_t i) noexcept;
  void publish_earliest() noexcept {
    earliest_.store(heap_.empty() ? INT64_MAX : heap_[0]->when, std::memory_order_seq_cst);
  }

  SpinLock lock_;
  std::vector<TimerNode*> heap_;
  std::atomic<std::int64_t> earliest_{INT64_MAX};
  std::atomic<std::uint32_t> firing_{0};  // run_due() calls that found due nodes, until they woke all
  std::atomic<std::uint32_t> service_word_{0};
};

// timers() is the process's heap. It is never destroyed: the TimerService
// thread may still be running due timers while the process exits.
inline TimerHeap& timers() noexcept {
  static TimerHeap* heap = new TimerHeap();
  return *heap;
}

inline bool TimerHeap::add(TimerNode* node) {
  std::lock_guard guard(lock_);
  heap_.push_back(node);
  node->heap_index = heap_.size() - 1;
  sift_up(node->heap_index);
  publish_earliest();
  return heap_[0] == node;
}

inline bool TimerHeap::remove(TimerNode* node) noexcept {
  std::lock_guard guard(lock_);
  if (!node->queued()) return false;
  erase_at(node->heap_index);
  publish_earliest();
  return true;
}

inline void TimerHeap::erase_at(std::size_t i) noexcept {
  TimerNode* gone = heap_[i];
  TimerNode* last = heap_.back();
  heap_.pop_back();
  gone->heap_index = TimerNode::kNotQueued;
  if (gone == last) return;
  place(i, last);
  sift_up(i);
  sift_down(last->heap_index);
}

inline std::size_t TimerHeap::run_due(std::int64_t now) {
  if (earliest() > now) return 0;
  firing_.fetch_add(1, std::memory_order_seq_cst);  // before the heap can look empty
  struct Settle {
    std::atomic<std::uint32_t>& firing;
    ~Settle() { firing.fetch_sub(1, std::memory_order_seq_cst); }
  } settle{firing_};  // after `wake` is flushed and `later` has run
  WakeList wake;
  TimerNode* later = nullptr;
  std::size_t count = 0;
  {
    std::lock_guard guard(lock_);
    while (!heap_.empty() && heap_[0]->when <= now) {
      TimerNode* n = heap_[0];
      erase_at(0);
      n->expire(n, wake, later);
      ++count;
    }
    publish_earliest();
  }
  wake.flush();
  while (later) {
    TimerNode* n = later;
    later = n->later_next;
    n->run_later(n);
  }
  return count;
}

inline void TimerHeap::sift_up(std::size_t i) noexcept {
  TimerNode* n = heap_[i];
  while (i > 0) {
    std::size_t parent = (i - 1) / 2;
    if (heap_[parent]->when <= n->when) break;
    place(i, heap_[parent]);
    i = parent;
  }
  place(i, n);
}

inline void TimerHeap::sift_down(std::size_t i) noexcept {
  TimerNode* n = heap_[i];
  const std::size_t size = heap_.size();
  for (;;) {
    std::size_t child = 2 * i + 1;
    if (child >= size) break;
    if (child + 1 < size && heap_[child + 1]->when < heap_[child]->when) ++child;
    if (n->when <= heap_[child]->when) break;
    place(i, heap_[child]);
    i = child;
  }
  place(i, n);
}

}  // namespace goro::detail
