// goro::Channel<T>: Go's chan T, with send-only and receive-only views.
//
//   goro::Channel<int> jobs(100);           // make(chan int, 100)
//   goro::RecvChannel<int> in = jobs;       // <-chan int
//   goro::go([jobs] { for (int j : jobs) process(j); });   // for j := range jobs
//   jobs.send(1);                           // jobs <- 1
//   jobs.close();                           // close(jobs)
//
// A Channel is a shared handle: copies name the same channel, and the channel
// lives as long as any handle does. `Channel<T> ch;` is unbuffered,
// `Channel<T> ch(n)` has capacity n, `Channel<T> ch = nullptr;` is a nil
// channel (blocks forever; never chosen by select).
//
// Thread-safety: every operation is safe from any fiber or plain thread; a
// fiber parks, a plain thread blocks. Values are moved, never copied, on the
// way through. Go's memory model holds: a send happens-before the matching
// receive completes, and close happens-before a receive that returns because
// of it.
#pragma once

#include <concepts>
#include <cstddef>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "detail/channel/chan.hpp"
#include "detail/small_block_cache.hpp"
#include "detail/unwind.hpp"
#include "errors.hpp"
#include "runtime.hpp"
#include "unit.hpp"

namespace goro {

template <class T>
class SendChannel;
template <class T>
class RecvChannel;

namespace detail {

template <class T>
using ChanPtr = std::shared_ptr<ChanState<T>>;

// make_chan_state() makes a channel's shared state; the state and its
// reference counts come from the thread's SmallBlockCache (a pipeline or a
// tree of fibers makes and drops a channel per stage or node).
template <class T>
ChanPtr<T> make_chan_state(std::size_t capacity) {
  note_goro_use();
  return std::allocate_shared<ChanState<T>>(CachingAllocator<ChanState<T>>{}, capacity);
}

// AdoptState tags the internal constructors that wrap an existing state
// (a context's done channel lives inside its node).
struct AdoptState {};

// Shared implementation of the channel operations on a (possibly nil) state.
template <class T>
struct ChanOps {
  static void send(ChanState<T>* c, T& v);
  static std::optional<T> recv(ChanState<T>* c);
  // recv_into() is recv() into an empty `out`: the value moves once, from
  // the channel straight to `out`.
  static void recv_into(ChanState<T>* c, std::optional<T>& out);
  static bool try_send(ChanState<T>* c, T& v);
  static std::optional<T> try_recv(ChanState<T>* c);
  static void close(ChanState<T>* c);

 private:
  enum class Side { sender, receiver };
  // The fast path holds the bare lock: only a T whose move cannot throw.
  static constexpr bool kBufferFastPath = ChanState<T>::kNothrowMove;
  static void send_buffered(ChanState<T>* c, T& v);
  static void recv_buffered(ChanState<T>* c, std::optional<T>& out);
  static void send_general(ChanState<T>* c, T& v);
  static void recv_general(ChanState<T>* c, std::optional<T>& out);
  static void send_locked(ChanState<T>* c, T& v);
  static void recv_locked(ChanState<T>* c, std::optional<T>& out);
  // send_locked() and recv_locked() out of line, for the buffered paths.
  GORO_NOINLINE static void send_locked_cold(ChanState<T>* c, T& v) { send_locked(c, v); }
  GORO_NOINLINE static void recv_locked_cold(ChanState<T>* c, std::optional<T>& out) { recv_locked(c, out); }
  static void park_queued(ChanState<T>* c, ChanWaiter<T>& w, Side side);
};

[[noreturn]] inline void throw_send_on_closed() {
  throw channel_closed("goro: send on closed channel");
}

// ChannelValue<T> checks, with a message that says what to write instead,
// that T can travel through a channel: an object type, moved by
// construction, neither const nor a C array.
template <class T>
concept Carriable = !std::is_void_v<T> && !std::is_reference_v<T> && !std::is_array_v<T> &&
                    !std::is_const_v<T> && !std::is_volatile_v<T> && std::is_move_constructible_v<T>;

template <class T>
struct ChannelValue {
  static_assert(!std::is_void_v<T>,
                "goro::Channel<void>: for a signal channel (Go's chan struct{}) use goro::Channel<goro::Unit>");
  static_assert(!std::is_reference_v<T>,
                "goro::Channel<T&>: a channel carries values; send a pointer or std::reference_wrapper<T>");
  static_assert(!std::is_array_v<T>, "goro::Channel<T[N]>: a C array cannot be moved; use std::array<T, N>");
  static_assert(!std::is_const_v<T> && !std::is_volatile_v<T>,
                "goro::Channel<const T>: values are moved through a channel, so T cannot be const or volatile; use goro::Channel<T>");
  static_assert(std::is_void_v<T> || std::is_reference_v<T> || std::is_array_v<T> ||
                    std::is_move_constructible_v<T>,
                "goro::Channel<T>: T must be move-constructible (or copy-constructible)");
  static constexpr bool ok = true;
};

// converted_copy<T>(v) is the T that `v`, a value of another type or a
// const T, stands for, made by copying so that `v` stays untouched when the
// operation does not send it (a try_send() that would block, a losing
// select case). A value that converts to T only by being moved from is
// refused at compile time: that move would happen before anyone knows
// whether the value is sent.
template <class T, class U>
T converted_copy(U&& v) {
  constexpr bool kCopies = std::is_constructible_v<T, const std::remove_reference_t<U>&>;
  if constexpr (kCopies) {
    return T(std::as_const(v));
  } else {
    static_assert(kCopies,
                  "goro: this value converts to the channel's T only by being moved from, which would happen "
                  "even if it is not sent; make the T first (T(std::move(v))) and pass that");
  }
}

// ConvertibleSendArg<U, T>: an argument try_send() takes as another type
// than T and converts itself (see converted_copy).
template <class U, class T>
concept ConvertibleSendArg = !std::is_same_v<std::remove_cvref_t<U>, T> && std::is_convertible_v<U, T>;

// ChannelHandle is what every channel handle has: a shared state (null for
// the nil channel) and the queries that need no direction.
template <class T>
class ChannelHandle {
  static_assert(ChannelValue<T>::ok);

 public:
  using value_type = T;

  bool closed() const noexcept {
    note_goro_use();
    return state_ && state_->closed();
  }
  std::size_t size() const noexcept {
    note_goro_use();
    return state_ ? state_->size() : 0;
  }
  std::size_t capacity() const noexcept {
    note_goro_use();
    return state_ ? state_->capacity() : 0;
  }
  bool is_nil() const noexcept { return !state_; }
  explicit operator bool() const noexcept { return static_cast<bool>(state_); }

  // Two handles are equal when they name the same channel (or are both nil).
  friend bool operator==(const ChannelHandle& a, const ChannelHandle& b) noexcept {
    return a.get() == b.get();
  }

  // Internal: the shared state (null for nil).
  ChanState<T>* get() const noexcept { return state_.get(); }
  const ChanPtr<T>& state() const noexcept { return state_; }
  // Internal: the shared state, taken from a handle about to die (a select
  // case built from a temporary handle keeps its channel alive with it).
  ChanPtr<T> take_state() && noexcept { return std::move(state_); }

 protected:
  ChannelHandle() = default;
  explicit ChannelHandle(ChanPtr<T> state) noexcept : state_(std::move(state)) {}

  ChanPtr<T> state_;
};

// RecvIterator drives `for (T v : ch)`: it receives until closed and drained.
template <class T>
class RecvIterator {
 public:
  using value_type = T;
  using difference_type = std::ptrdiff_t;

  RecvIterator() = default;
  explicit RecvIterator(ChanState<T>* c) : chan_(c) { ++*this; }

  // Yields an rvalue so `for (T v : ch)` moves move-only values out.
  T&& operator*() { return std::move(*value_); }
  RecvIterator& operator++() {
    value_.reset();
    ChanOps<T>::recv_into(chan_, value_);
    return *this;
  }
  void operator++(int) { ++*this; }
  friend bool operator==(const RecvIterator& it, std::default_sentinel_t) { return !it.value_; }

 private:
  ChanState<T>* chan_ = nullptr;
  std::optional<T> value_;
};

}  // namespace detail

// Channel<T> is a bidirectional channel handle.
template <class T>
class Channel : public detail::ChannelHandle<T> {
 public:
  // Channel() makes an unbuffered (rendezvous) channel.
  Channel() : detail::ChannelHandle<T>(detail::make_chan_state<T>(0)) {}
  // Channel(n) makes a channel with capacity n (0: unbuffered). Throws
  // std::length_error, before allocating, for a negative or impossible n.
  template <std::integral I>
  explicit Channel(I capacity) : detail::ChannelHandle<T>(make_state(capacity)) {}
  // Channel(nullptr) is the nil channel.
  Channel(std::nullptr_t) noexcept {}

  // send() blocks until `v` is delivered to a receiver or buffered. Throws
  // goro::channel_closed if the channel is (or becomes, while waiting) closed.
  void send(T v) const { detail::ChanOps<T>::send(this->get(), v); }
  // recv() blocks until a value arrives; std::nullopt once closed and drained.
  std::optional<T> recv() const { return detail::ChanOps<T>::recv(this->get()); }
  // try_send() never blocks: false, leaving `v` untouched, if it would.
  // Throws goro::channel_closed on a closed channel. A value of another
  // type is converted by copying (detail::converted_copy), so it too is
  // untouched whatever happens.
  bool try_send(T&& v) const { return detail::ChanOps<T>::try_send(this->get(), v); }
  template <detail::ConvertibleSendArg<T> U>
  bool try_send(U&& v) const {
    return try_send(detail::converted_copy<T>(std::forward<U>(v)));
  }
  // try_recv() never blocks: std::nullopt if nothing is ready (or closed and drained).
  std::optional<T> try_recv() const { return detail::ChanOps<T>::try_recv(this->get()); }
  // close() closes the channel: receivers drain the buffer, then get nullopt;
  // blocked senders throw. Throws goro::channel_closed if already closed.
  void close() const { detail::ChanOps<T>::close(this->get()); }

  // Range: `for (T v : ch)` receives until the channel is closed and drained.
  detail::RecvIterator<T> begin() const { return detail::RecvIterator<T>(this->get()); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  template <class I>
  static detail::ChanPtr<T> make_state(I capacity) {
    if constexpr (std::is_signed_v<I>) {
      if (capacity < 0) throw std::length_error("goro::Channel: negative capacity");
    }
    detail::Ring<T>::check_capacity(static_cast<std::size_t>(capacity));  // before allocating
    return detail::make_chan_state<T>(static_cast<std::size_t>(capacity));
  }
};

// SendChannel<T> is a send-only view (Go's chan<- T): no recv, no range.
template <class T>
class SendChannel : public detail::ChannelHandle<T> {
 public:
  SendChannel(std::nullptr_t) noexcept {}
  SendChannel(const Channel<T>& ch) noexcept : detail::ChannelHandle<T>(ch.state()) {}

  void send(T v) const { detail::ChanOps<T>::send(this->get(), v); }
  bool try_send(T&& v) const { return detail::ChanOps<T>::try_send(this->get(), v); }
  template <detail::ConvertibleSendArg<T> U>
  bool try_send(U&& v) const {
    return try_send(detail::converted_copy<T>(std::forward<U>(v)));
  }
  void close() const { detail::ChanOps<T>::close(this->get()); }
};

// RecvChannel<T> is a receive-only view (Go's <-chan T): no send, no close.
template <class T>
class RecvChannel : public detail::ChannelHandle<T> {
 public:
  // Internal: a handle to an existing state.
  RecvChannel(detail::AdoptState, detail::ChanPtr<T> state) noexcept
      : detail::ChannelHandle<T>(std::move(state)) {}
  RecvChannel(std::nullptr_t) noexcept {}
  RecvChannel(const Channel<T>& ch) noexcept : detail::ChannelHandle<T>(ch.state()) {}

  std::optional<T> recv() const { return detail::ChanOps<T>::recv(this->get()); }
  std::optional<T> try_recv() const { return detail::ChanOps<T>::try_recv(this->get()); }

  detail::RecvIterator<T> begin() const { return detail::RecvIterator<T>(this->get()); }
  std::default_sentinel_t end() const noexcept { return {}; }
};

// A T that cannot travel through a channel (void, a reference, a C array,
// const, not movable) gets ChannelValue's one message saying what to write
// instead, not that message buried under errors from members whose
// signatures cannot be formed.
template <class T>
  requires(!detail::Carriable<T>)
class Channel<T> {
  static_assert(detail::ChannelValue<T>::ok);
};
template <class T>
  requires(!detail::Carriable<T>)
class SendChannel<T> {
  static_assert(detail::ChannelValue<T>::ok);
};
template <class T>
  requires(!detail::Carriable<T>)
class RecvChannel<T> {
  static_assert(detail::ChannelValue<T>::ok);
};

// ---------------------------------------------------------------------------

namespace detail {

// Every operation makes a plain thread visible to the deadlock detector
// (note_goro_use(): one thread-local load and a branch), so a thread whose
// channel calls never block still counts as able to move. send() and recv()
// do it in their out-of-line paths, which keeps their inline part small
// enough to stay inlined at every call site (a select's handler sending a
// token back took 9 instructions more when the call sat inline).
//
// send() and recv() dispatch on the channel's kind, at the call site. A
// buffered channel (whose T moves without throwing) first tries the fast
// path, an operation that only touches the buffer, with the bare lock and
// no frame to speak of; only if that fails does it set up the general path
// (send_locked(), recv_locked()): a wake list, a unique_lock and the
// registers parking needs, which were a sixth of a buffered item's
// instructions (108 -> 91 a sent and received item). Unbuffered channels
// go straight to the general path, as before.
template <class T>
GORO_ALWAYS_INLINE void ChanOps<T>::send(ChanState<T>* c, T& v) {
  if (!c) park_forever("chan send (nil chan)");
  if constexpr (kBufferFastPath) {
    if (c->capacity() != 0) return send_buffered(c, v);
  }
  send_general(c, v);
}

template <class T>
GORO_ALWAYS_INLINE std::optional<T> ChanOps<T>::recv(ChanState<T>* c) {
  std::optional<T> out;
  recv_into(c, out);
  return out;  // empty if closed and drained
}

template <class T>
GORO_ALWAYS_INLINE void ChanOps<T>::recv_into(ChanState<T>* c, std::optional<T>& out) {
  if (!c) park_forever("chan receive (nil chan)");
  if constexpr (kBufferFastPath) {
    if (c->capacity() != 0) return recv_buffered(c, out);
  }
  recv_general(c, out);
}

template <class T>
GORO_NOINLINE void ChanOps<T>::send_buffered(ChanState<T>* c, T& v) {
  note_goro_use();
  c->lock.lock();
  if (c->buffer_send_locked(v)) {
    c->lock.unlock();
    return;
  }
  send_locked_cold(c, v);
}

template <class T>
GORO_NOINLINE void ChanOps<T>::recv_buffered(ChanState<T>* c, std::optional<T>& out) {
  note_goro_use();
  c->lock.lock();
  if (c->buffer_recv_locked(out)) {
    c->lock.unlock();
    return;
  }
  recv_locked_cold(c, out);
}

template <class T>
GORO_NOINLINE void ChanOps<T>::send_general(ChanState<T>* c, T& v) {
  note_goro_use();
  c->lock.lock();
  send_locked(c, v);
}

template <class T>
GORO_NOINLINE void ChanOps<T>::recv_general(ChanState<T>* c, std::optional<T>& out) {
  note_goro_use();
  c->lock.lock();
  recv_locked(c, out);
}

// send_locked(): c must be locked; unlocks c. Hands `v` to a waiting
// receiver or the buffer, or parks until a receiver takes it; throws
// channel_closed if c is or gets closed, and what T's move throws.
template <class T>
GORO_ALWAYS_INLINE void ChanOps<T>::send_locked(ChanState<T>* c, T& v) {
  for (;;) {
    {
      WakeList wake;  // declared first: unparks after the lock is released
      std::unique_lock lock(c->lock, std::adopt_lock);
      if (c->closed_locked()) {
        lock.unlock();
        throw_send_on_closed();
      }
      if (c->try_send_locked(v, wake)) return;
      lock.release();  // still locked: parked below, unlocked by park's commit
    }
    ChanWaiter<T> self_waiter;
    self_waiter.send_value = &v;
    park_queued(c, self_waiter, Side::sender);
    if (self_waiter.closed) throw_send_on_closed();
    if (ChanState<T>::kNothrowMove || !self_waiter.retry) return;
    c->lock.lock();  // the receiver could not move v: send it again
  }
}

// recv_locked(): c must be locked; unlocks c. Takes a value into `out`
// (which must be empty) from a waiting sender or the buffer, or parks until
// one comes; leaves `out` empty if c is closed and drained. Throws what T's
// move throws.
template <class T>
GORO_ALWAYS_INLINE void ChanOps<T>::recv_locked(ChanState<T>* c, std::optional<T>& out) {
  for (;;) {
    {
      WakeList wake;  // declared first: unparks after the lock is released
      std::unique_lock lock(c->lock, std::adopt_lock);
      if (c->try_recv_locked(out, wake) != RecvStatus::would_block) return;
      lock.release();  // still locked: parked below, unlocked by park's commit
    }
    ChanWaiter<T> self_waiter;
    self_waiter.recv_slot = &out;
    park_queued(c, self_waiter, Side::receiver);
    if (ChanState<T>::kNothrowMove || !self_waiter.retry) return;
    c->lock.lock();  // the sender could not move its value here: receive again
  }
}

// park_queued(): c must be locked. Queues `w` on c's senders or receivers,
// parks with c's lock handed to the switch (unlocked once this fiber is
// switched out), and returns when a partner or close() woke it; on unwind,
// dequeues `w` and throws FiberUnwind.
template <class T>
GORO_ALWAYS_INLINE void ChanOps<T>::park_queued(ChanState<T>* c, ChanWaiter<T>& w, Side side) {
  Parker& self = Parker::current();
  const bool sender = side == Side::sender;
  w.ticket = self.prepare_locked(sender ? "chan send" : "chan receive", c->lock);
  sender ? c->enqueue_sender(&w) : c->enqueue_receiver(&w);
  if (self.park(ParkCommit::unlock(c->lock)) == WakeReason::unwind) {
    std::lock_guard lock(c->lock);
    sender ? c->dequeue_sender(&w) : c->dequeue_receiver(&w);
    throw FiberUnwind{};
  }
}

template <class T>
bool ChanOps<T>::try_send(ChanState<T>* c, T& v) {
  note_goro_use();
  if (!c) return false;
  if (!c->closed() && c->send_would_block()) return false;
  WakeList wake;
  std::unique_lock lock(c->lock);
  if (c->closed_locked()) {
    lock.unlock();
    throw_send_on_closed();
  }
  return c->try_send_locked(v, wake);
}

template <class T>
std::optional<T> ChanOps<T>::try_recv(ChanState<T>* c) {
  note_goro_use();
  std::optional<T> out;
  if (!c) return out;
  if (c->recv_would_block() && !c->closed()) return out;
  WakeList wake;
  std::lock_guard lock(c->lock);
  c->try_recv_locked(out, wake);
  return out;
}

template <class T>
void ChanOps<T>::close(ChanState<T>* c) {
  note_goro_use();
  if (!c) throw channel_closed("goro: close of nil channel");
  WakeList wake;
  std::unique_lock lock(c->lock);
  if (!c->close_locked(wake)) {
    lock.unlock();
    throw channel_closed("goro: close of closed channel");
  }
}

}  // namespace detail
}  // namespace goro
