// The channel algorithm, after Go's runtime/chan.go: one small lock per
// channel, a Ring for the buffer, and FIFO queues of parked senders and
// receivers whose waiter records (ChanWaiter) live on the parked fibers'
// stacks.
//
// Invariants (ignoring stale waiters, see below):
//   - at least one of sendq and recvq is empty;
//   - sendq non-empty implies the buffer is full (unbuffered: always "full");
//   - recvq non-empty implies the buffer is empty;
//   - once closed, sendq and recvq are empty and stay empty.
// A waiter of a select can stay queued after another case of the same select
// won (its ticket is already claimed): a waker that dequeues it fails the
// claim and skips it, and the select removes its leftovers itself. Such stale
// waiters are why the invariants only hold for claimable ones.
//
// Direct handoff: a sender that finds a parked receiver moves the value
// straight into the receiver's slot and unparks it (into the waker's
// runnext slot when the waker is a fiber); a receiver that finds a parked
// sender on a full buffer takes the buffer's head and moves the sender's value
// into the tail, so FIFO order holds.
//
// A move of T that throws (only a T whose move is not noexcept) changes
// nothing that was not already settled: the operation that made the move
// gets the exception, and a parked partner that take() had already claimed
// is sent back (send_back()) to start its operation over, its value or its
// empty slot as it was. The one move made on a partner's behalf after the
// caller's own operation completed, a parked sender's value into a freed
// buffer slot, is not the caller's failure: the sender is sent back and
// makes the move again itself, so the exception, if it recurs, is its own;
// the next parked sender is tried in its place, so the invariants hold.
//
// Lock: `lock` guards buffer, sendq, recvq, closed and every queued waiter's
// fields. The mirrors (closed_flag, count, waiting senders/receivers) are
// written under the lock and read without it by the "would block" fast paths
// of try_send/try_recv and non-blocking select. Select takes the locks of all
// its channels in address order (select/commit.hpp). No other lock is ever
// taken while a channel lock is held, except the timer heap's.
#pragma once

#include <atomic>
#include <cstddef>
#include <optional>
#include <type_traits>
#include <utility>

#include "../parker.hpp"
#include "../spin_lock.hpp"
#include "ring.hpp"

namespace goro::detail {

// SelectRecord is shared by all the waiters of one blocking select: the
// waker that claims the select's ticket writes the winning case here.
struct SelectRecord {
  std::size_t winner = static_cast<std::size_t>(-1);
  bool retry = false;  // the winner was sent back: select again
};

template <class T>
struct ChanWaiter {
  Parker::Ticket ticket{};
  ChanWaiter* prev = nullptr;
  ChanWaiter* next = nullptr;
  bool queued = false;
  T* send_value = nullptr;                // a sender's value, moved from only by its taker
  std::optional<T>* recv_slot = nullptr;  // where a receiver's value goes
  bool closed = false;                    // woken by close() rather than a transfer
  bool retry = false;                     // woken by send_back(): start the operation over
  SelectRecord* select = nullptr;         // null for a plain send/recv
  std::size_t case_index = 0;
};

// WaitQueue: FIFO of ChanWaiters, guarded by the channel lock.
template <class T>
class WaitQueue {
 public:
  bool empty() const noexcept { return head_ == nullptr; }

  void push(ChanWaiter<T>* w) noexcept {
    w->prev = tail_;
    w->next = nullptr;
    if (tail_) tail_->next = w; else head_ = w;
    tail_ = w;
    w->queued = true;
    ++size_;
  }
  void remove(ChanWaiter<T>* w) noexcept {
    if (!w->queued) return;
    if (w->prev) w->prev->next = w->next; else head_ = w->next;
    if (w->next) w->next->prev = w->prev; else tail_ = w->prev;
    w->queued = false;
    --size_;
  }
  // take() dequeues the first waiter whose ticket it can claim (recording
  // the winning select case) and queues its Parker on `wake`; stale waiters
  // on the way are dropped. Returns null when none is left. A plain send or
  // receive is claimed without a compare-and-swap: its wait was opened with
  // prepare_locked() under this channel's lock, which the caller holds.
  ChanWaiter<T>* take(WakeList& wake) noexcept {
    while (ChanWaiter<T>* w = head_) {
      remove(w);
      const bool claimed = w->select ? Parker::claim(w->ticket, WakeReason::signaled)
                                     : Parker::claim_locked(w->ticket, WakeReason::signaled);
      if (claimed) {
        if (w->select) w->select->winner = w->case_index;
        wake.add(w->ticket.parker);
        return w;
      }
    }
    return nullptr;
  }
  std::size_t size() const noexcept { return size_; }

 private:
  ChanWaiter<T>* head_ = nullptr;
  ChanWaiter<T>* tail_ = nullptr;
  std::size_t size_ = 0;
};

// ChanBase is what select needs of any channel: its lock. ChanState keeps
// what every buffered operation writes (the lock, the ring's indices, the
// count mirror) together at its start, so producers and consumers on
// different cores move as few cache lines as possible. (Not alignas(64):
// over-aligned channels cost a memalign per channel, about 500 instructions,
// which channel-per-request code such as contexts' done() pays.)
struct ChanBase {
  SpinLock lock;
};

enum class RecvStatus { value, closed, would_block };

template <class T>
class ChanState : public ChanBase {
 public:
  explicit ChanState(std::size_t capacity) : buffer_(capacity) {}
  ChanState(const ChanState&) = delete;
  ChanState& operator=(const ChanState&) = delete;

  std::size_t capacity() const noexcept { return buffer_.capacity(); }
  std::size_t size() const noexcept { return count_.load(std::memory_order_acquire); }
  bool closed() const noexcept { return closed_flag_.load(std::memory_order_acquire); }

  // Lock-free "would block" tests (Go's full()/empty()); a stale answer only
  // sends the caller to the locked path or is linearizable as "not ready".
  bool send_would_block() const noexcept {
    return capacity() == 0 ? recv_waiting_.load(std::memory_order_acquire) == 0
                           : count_.load(std::memory_order_acquire) == capacity();
  }
  bool recv_would_block() const noexcept {
    return capacity() == 0 ? send_waiting_.load(std::memory_order_acquire) == 0
                           : count_.load(std::memory_order_acquire) == 0;
  }

  // --- Operations below require `lock` held. ---

  bool closed_locked() const noexcept { return closed_; }

  // try_send_locked() delivers `v` to a waiting receiver or the buffer and
  // returns true, or returns false (v untouched) when it would block. The
  // channel must be open.
  bool try_send_locked(T& v, WakeList& wake) {
    if (!recvq_.empty()) {
      ChanWaiter<T>* r = recvq_.take(wake);
      sync_mirrors();  // take() dequeued r, or only stale waiters
      if (r) {
        move_or_send_back(r, [&] { r->recv_slot->emplace(std::move(v)); });
        return true;
      }
    }
    return buffer_send_locked(v);  // no receiver is left waiting
  }

  // buffer_send_locked() and buffer_recv_locked() complete an operation
  // that only touches the buffer (open channel, nobody waiting on the other
  // side, room or a value) and report false, changing nothing, otherwise:
  // the buffered fast paths, and the tails of try_send_locked() and
  // try_recv_locked(). The buffer is tested first, so an unbuffered channel
  // (always full and empty) leaves at once. They throw only what T's move
  // throws.
  static constexpr bool kNothrowMove = std::is_nothrow_move_constructible_v<T>;
  bool buffer_send_locked(T& v) noexcept(kNothrowMove) {
    if (buffer_.full() || closed_ || !recvq_.empty()) return false;
    buffer_.push(std::move(v));
    sync_count();
    return true;
  }
  bool buffer_recv_locked(std::optional<T>& out) noexcept(kNothrowMove) {
    if (buffer_.empty() || !sendq_.empty()) return false;
    buffer_.pop_into(out);
    sync_count();
    return true;
  }

  // try_recv_locked() takes a value into `out` (which must be empty), or
  // reports closed-and-drained, or would_block.
  RecvStatus try_recv_locked(std::optional<T>& out, WakeList& wake) {
    if (!sendq_.empty()) {
      if (buffer_.capacity() == 0) {
        ChanWaiter<T>* s = sendq_.take(wake);
        sync_mirrors();  // take() dequeued s, or only stale waiters
        if (s) {
          move_or_send_back(s, [&] { out.emplace(std::move(*s->send_value)); });
          return RecvStatus::value;
        }
      } else if (!buffer_.empty()) {
        // A full buffer with senders waiting: its head first (if that move
        // throws, nothing has changed), then the first sender's value into
        // the freed tail, so FIFO order holds.
        buffer_.pop_into(out);
        refill_from_senders(wake);
        sync_mirrors();
        return RecvStatus::value;
      }
    }
    if (buffer_recv_locked(out)) return RecvStatus::value;  // no sender is left waiting
    return closed_ ? RecvStatus::closed : RecvStatus::would_block;
  }

  void enqueue_sender(ChanWaiter<T>* w) noexcept {
    sendq_.push(w);
    sync_mirrors();
  }
  void enqueue_receiver(ChanWaiter<T>* w) noexcept {
    recvq_.push(w);
    sync_mirrors();
  }
  void dequeue_sender(ChanWaiter<T>* w) noexcept {
    sendq_.remove(w);
    sync_mirrors();
  }
  void dequeue_receiver(ChanWaiter<T>* w) noexcept {
    recvq_.remove(w);
    sync_mirrors();
  }

  // close_locked() marks the channel closed and wakes every waiter: receivers
  // get "closed", senders will throw channel_closed. Returns false if it was
  // already closed.
  bool close_locked(WakeList& wake) noexcept {
    if (closed_) return false;
    closed_ = true;
    closed_flag_.store(true, std::memory_order_release);
    while (ChanWaiter<T>* r = recvq_.take(wake)) r->closed = true;
    while (ChanWaiter<T>* s = sendq_.take(wake)) s->closed = true;
    sync_mirrors();
    return true;
  }

 private:
  // move_or_send_back() runs `move`, a move of T to or from the waiter w that
  // take() claimed. If it throws, w is sent back and the exception propagates.
  template <class Move>
  static void move_or_send_back(ChanWaiter<T>* w, Move&& move) noexcept(kNothrowMove) {
    if constexpr (kNothrowMove) {
      move();
    } else {
      try {
        move();
      } catch (...) {
        send_back(w);
        throw;
      }
    }
  }
  // refill_from_senders() fills the slot a receive just freed with the
  // first parked sender's value. A sender whose move throws is sent back (it
  // makes the move again itself: the receiver's own operation has already
  // succeeded) and the next one is tried, so that senders never wait beside
  // a buffer with room (the invariant above).
  void refill_from_senders(WakeList& wake) noexcept {
    while (ChanWaiter<T>* s = sendq_.take(wake)) {
      try {
        buffer_.push(std::move(*s->send_value));
        return;
      } catch (...) {
        send_back(s);
      }
    }
  }
  // send_back(): the claimed waiter w wakes to start its operation over (a
  // select selects again), its value untouched or its slot still empty.
  static void send_back(ChanWaiter<T>* w) noexcept {
    w->retry = true;
    if (w->select) w->select->retry = true;
  }

  // sync_count() is enough after an operation that touched only the buffer.
  void sync_count() noexcept { count_.store(buffer_.size(), std::memory_order_release); }
  void sync_mirrors() noexcept {
    sync_count();
    // Stored only when they change, so the line they share stays clean in
    // every core's cache while nobody waits.
    store_if_changed(send_waiting_, sendq_.size());
    store_if_changed(recv_waiting_, recvq_.size());
  }
  static void store_if_changed(std::atomic<std::size_t>& mirror, std::size_t value) noexcept {
    if (mirror.load(std::memory_order_relaxed) != value) mirror.store(value, std::memory_order_release);
  }

  // Written by every operation: with the lock, on the first cache line.
  Ring<T> buffer_;
  std::atomic<std::size_t> count_{0};
  std::atomic<bool> closed_flag_{false};
  bool closed_ = false;
  // Written only when fibers start or stop waiting: on the second line,
  // which buffered traffic then only reads.
  WaitQueue<T> sendq_;
  WaitQueue<T> recvq_;
  std::atomic<std::size_t> send_waiting_{0};
  std::atomic<std::size_t> recv_waiting_{0};
};

}  // namespace goro::detail
