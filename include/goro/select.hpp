// goro::select: Go's select statement.
//
//   std::size_t i = goro::select(
//       goro::recv(jobs, [](std::optional<Job> j) { ... }),   // case j, ok := <-jobs
//       goro::send(results, r, [] { ... }),                    // case results <- r
//       goro::timeout(100ms, [] { ... }));                     // case <-time.After(100ms)
//
// select() blocks until one case can proceed, runs it, and returns its index
// in the argument list. Among cases ready at the same moment it picks one
// uniformly at random; exactly one case commits (no losing case consumes or
// delivers a value), and the winner's handler runs after every internal lock
// is released. With goro::default_case it never blocks. A nil channel's case
// is never ready; select() with no cases blocks forever. A closed channel's
// recv case is always ready; a chosen send case on a closed channel throws
// goro::channel_closed. No heap allocation per call.
//
// Recv handlers: one that accepts std::optional<T> gets it (nullopt: closed);
// else one that accepts T gets the value (T{} when closed, Go's zero value);
// else one taking nothing is called.
//
// Dynamic select (Go's reflect.Select): when the number of cases is only
// known at run time, put them in a std::vector<goro::SelectCase> (or any
// contiguous range of them) and call goro::select(cases); it returns the
// index in that list, with the same semantics. The list can be reused by
// every call of a loop; up to 64 cases it allocates nothing per call. Misuse
// the variadic form rejects at compile time throws std::invalid_argument.
// See SelectCase (detail/select/dynamic_case.hpp) for what can be reused.
//
// Thread-safety: select may be called from any fiber or plain thread; the
// channels it names may be used concurrently by anyone.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>

#include "channel.hpp"
#include "detail/deadline.hpp"
#include "detail/select/commit.hpp"
#include "detail/select/dynamic_case.hpp"

namespace goro {

namespace detail {

struct NoHandler {
  void operator()() const noexcept {}
};

template <class T, class H>
void invoke_recv_handler(H& handler, std::optional<T>& slot) {
  if constexpr (std::is_invocable_v<H&, std::optional<T>>) {
    handler(std::move(slot));
  } else if constexpr (std::is_invocable_v<H&, T>) {
    static_assert(requires { T{}; },
                  "goro::recv: a handler taking T gets T{} when the channel is closed (Go's zero value), "
                  "and this T cannot be made with T{}; take std::optional<T> instead");
    if (slot) handler(std::move(*slot));
    else handler(T{});  // Go's zero value for a closed channel
  } else {
    static_assert(std::is_invocable_v<H&>,
                  "goro::recv handler must accept std::optional<T>, T, or nothing");
    handler();
  }
}

// DeferredWaiter<T>: a case's ChanWaiter, built only by enqueue(). Most
// selects complete in pass 0 or 1 and never queue a waiter; building one for
// every case up front cost a 4-case select about a tenth of its instructions.
template <class T>
class DeferredWaiter {
  static_assert(std::is_trivially_copyable_v<ChanWaiter<T>> && std::is_trivially_destructible_v<ChanWaiter<T>>,
                "a case copies or drops its unbuilt waiter as raw bytes");

 public:
  DeferredWaiter() noexcept {}
  // build() constructs the waiter (any earlier one is gone) and returns it.
  ChanWaiter<T>& build() noexcept { return *std::construct_at(&waiter_); }
  // get(): the waiter of the last build(); only after one.
  ChanWaiter<T>& get() noexcept { return waiter_; }

 private:
  union {
    ChanWaiter<T> waiter_;
  };
};

// NoChannelKeep: what a case keeps of a channel it names through a handle
// that outlives it: nothing (the handle keeps the channel alive).
struct NoChannelKeep {};

// RecvPort<T> is a recv case's side of the channel: everything but the
// handler. It is one type for every recv case of a T, so pass 0
// (try_alone in commit.hpp) runs the same code whichever of them the poll
// order drew.
template <class T>
class RecvPort {
 public:
  explicit RecvPort(ChanState<T>* chan) noexcept : chan_(chan) {}

  ChanBase* channel() const noexcept { return chan_; }
  bool maybe_ready() const noexcept { return chan_ && (!chan_->recv_would_block() || chan_->closed()); }
  bool poll(WakeList& wake) {
    return chan_ && chan_->try_recv_locked(slot_, wake) != RecvStatus::would_block;
  }
  void enqueue(Parker::Ticket ticket, SelectRecord* record, std::size_t index) noexcept {
    if (!chan_) return;
    ChanWaiter<T>& w = waiter_.build();
    w.ticket = ticket;
    w.recv_slot = &slot_;
    w.select = record;
    w.case_index = index;
    chan_->enqueue_receiver(&w);
  }
  // dequeue() follows every enqueue(), before finish().
  void dequeue() noexcept {
    if (chan_) chan_->dequeue_receiver(&waiter_.get());
  }
  // rearm(): ready for another select (a closed channel leaves slot_ as is).
  void rearm() noexcept { slot_.reset(); }

 protected:
  ChanState<T>* chan_;
  std::optional<T> slot_;
  DeferredWaiter<T> waiter_;
};

// A case made from a temporary handle (after(d), ctx.done(), a function
// returning a channel) keeps the channel's state itself (Keep = ChanPtr<T>,
// moved out of the dying handle: no reference-count traffic), so it may be
// stored and selected on after that handle is gone.
template <class T, class H, class Keep = NoChannelKeep>
class RecvCase : public RecvPort<T> {
 public:
  using Port = RecvPort<T>;
  static constexpr bool kIsDefault = false;
  static constexpr bool kIsTimeout = false;

  RecvCase(ChanState<T>* chan, H handler, Keep keep = {})
      : RecvPort<T>(chan), handler_(std::move(handler)), keep_(std::move(keep)) {}

  Port* port() noexcept { return this; }
  void finish() { invoke_recv_handler<T>(handler_, this->slot_); }

 private:
  H handler_;
  [[no_unique_address]] Keep keep_;
};

// SendPort<T, Owning> is a send case's side of the channel, shared like
// RecvPort by every send case of a T: the channel, the value to send (a
// pointer to the caller's, or, Owning, the value itself), and whether the
// case won against a closed channel.
template <class T, bool Owning>
class SendPort {
 public:
  SendPort(ChanState<T>* chan, T* value) noexcept requires(!Owning) : chan_(chan), value_(value) {}
  template <class V>
  SendPort(ChanState<T>* chan, V&& value) requires(Owning) : chan_(chan), value_(std::forward<V>(value)) {}

  ChanBase* channel() const noexcept { return chan_; }
  bool maybe_ready() const noexcept { return chan_ && (chan_->closed() || !chan_->send_would_block()); }
  bool poll(WakeList& wake) {
    if (!chan_) return false;
    if (chan_->closed_locked()) return hit_closed_ = true;
    return chan_->try_send_locked(*value(), wake);
  }
  void enqueue(Parker::Ticket ticket, SelectRecord* record, std::size_t index) noexcept {
    if (!chan_) return;
    ChanWaiter<T>& w = waiter_.build();
    w.ticket = ticket;
    w.send_value = value();
    w.select = record;
    w.case_index = index;
    chan_->enqueue_sender(&w);
  }
  // dequeue() follows every enqueue(), before finish(): it notes whether
  // close() woke the waiter.
  void dequeue() noexcept {
    if (!chan_) return;
    ChanWaiter<T>& w = waiter_.get();
    chan_->dequeue_sender(&w);
    if (w.closed) hit_closed_ = true;
  }
  void rearm() noexcept { hit_closed_ = false; }

 protected:
  T* value() noexcept {
    if constexpr (Owning) return &value_;
    else return value_;
  }

  ChanState<T>* chan_;
  std::conditional_t<Owning, T, T*> value_;
  bool hit_closed_ = false;  // the case won against a closed channel
  DeferredWaiter<T> waiter_;
};

// SendCase refers to the caller's value (which outlives the select call),
// or, when the argument had to be converted to T, holds the converted value
// itself (Owning). Either way the value is moved only if the case wins.
//
// FromRvalue marks a pointer to an rvalue argument: fine for the variadic
// select when the case is passed straight to it (the argument lives until
// the call returns), but a case kept for later would outlive it. So select()
// refuses such a case passed as an lvalue (kRefersToRvalue), and SelectCase
// converts it to an Owning one first (owning()). Keep: as for RecvCase.
template <class T, class H, bool Owning = false, bool FromRvalue = false, class Keep = NoChannelKeep>
class SendCase : public SendPort<T, Owning> {
 public:
  using Port = SendPort<T, Owning>;
  static constexpr bool kIsDefault = false;
  static constexpr bool kIsTimeout = false;
  static constexpr bool kRefersToRvalue = FromRvalue && !Owning;

  SendCase(ChanState<T>* chan, T* value, H handler, Keep keep = {}) requires(!Owning)
      : Port(chan, value), handler_(std::move(handler)), keep_(std::move(keep)) {}
  template <class V>
  SendCase(ChanState<T>* chan, V&& value, H handler, Keep keep = {}) requires(Owning)
      : Port(chan, std::forward<V>(value)), handler_(std::move(handler)), keep_(std::move(keep)) {}
  SendCase(const SendCase&) = delete;
  SendCase& operator=(const SendCase&) = delete;
  SendCase(SendCase&&) = default;  // for SelectCase; never while enqueued

  // owning(): the same case holding its value (moved in from the argument).
  SendCase<T, H, true, false, Keep> owning() && requires(FromRvalue) {
    return SendCase<T, H, true, false, Keep>(this->chan_, std::move(*this->value_), std::move(handler_),
                                             std::move(keep_));
  }

  Port* port() noexcept { return this; }
  void finish() {
    if (this->hit_closed_) throw_send_on_closed();
    handler_();
  }

 private:
  H handler_;
  [[no_unique_address]] Keep keep_;
};

// refers_to_rvalue_v<C>: C is a case that points at the rvalue it was made from.
template <class C>
inline constexpr bool refers_to_rvalue_v = requires { requires C::kRefersToRvalue; };

// NoPort: the channel side of a case that names no channel (timeout,
// default_case): pass 0 never finds it ready.
struct NoPort {
  ChanBase* channel() const noexcept { return nullptr; }
  bool maybe_ready() const noexcept { return false; }
  bool poll(WakeList&) noexcept { return false; }
};

// ChannelFreeCase: the select hooks of a case that names no channel.
template <class H>
class ChannelFreeCase : public NoPort {
 public:
  using Port = NoPort;

  explicit ChannelFreeCase(H handler) : handler_(std::move(handler)) {}

  Port* port() noexcept { return this; }
  void enqueue(Parker::Ticket, SelectRecord*, std::size_t) noexcept {}
  void dequeue() noexcept {}
  void finish() { handler_(); }
  void rearm() noexcept {}

 private:
  H handler_;
};

template <class H>
class TimeoutCase : public ChannelFreeCase<H> {
 public:
  static constexpr bool kIsDefault = false;
  static constexpr bool kIsTimeout = true;

  TimeoutCase(std::int64_t deadline_ns, H handler)
      : ChannelFreeCase<H>(std::move(handler)), deadline_(deadline_ns) {}

  std::int64_t deadline() const noexcept { return deadline_; }

 private:
  std::int64_t deadline_;
};

template <class H>
class DefaultCase : public ChannelFreeCase<H> {
 public:
  static constexpr bool kIsDefault = true;
  static constexpr bool kIsTimeout = false;

  explicit DefaultCase(H handler) : ChannelFreeCase<H>(std::move(handler)) {}
};

template <class C>
concept Receivable = requires(const C& c) {
  typename C::value_type;
  c.recv();
  c.get();
};
template <class C>
concept Sendable = requires(const C& c) {
  typename C::value_type;
  c.send(std::declval<typename C::value_type>());
  c.get();
};

template <class C>
struct CaseTraits {
  static constexpr int timeouts = 0;
  static constexpr int defaults = 0;
};
template <class H>
struct CaseTraits<TimeoutCase<H>> {
  static constexpr int timeouts = 1;
  static constexpr int defaults = 0;
};
template <class H>
struct CaseTraits<DefaultCase<H>> {
  static constexpr int timeouts = 0;
  static constexpr int defaults = 1;
};

}  // namespace detail

namespace detail {

// make_send_case() builds send()'s case over `chan`, keeping `keep`.
template <class T, class Keep, class V, class H>
auto make_send_case(ChanState<T>* chan, Keep keep, V&& value, H handler) {
  if constexpr (std::is_same_v<std::remove_cvref_t<V>, T> && !std::is_const_v<std::remove_reference_t<V>>) {
    return SendCase<T, H, false, !std::is_lvalue_reference_v<V>, Keep>(chan, &value, std::move(handler),
                                                                       std::move(keep));
  } else {
    return SendCase<T, H, true, false, Keep>(chan, converted_copy<T>(std::forward<V>(value)), std::move(handler),
                                             std::move(keep));
  }
}

// A temporary (non-const rvalue) channel handle, whose state a case takes over.
template <class C>
concept TemporaryHandle = !std::is_reference_v<C> && !std::is_const_v<C>;

}  // namespace detail

// recv(ch, handler) is `case v := <-ch:`; recv(ch) discards the value. The
// case refers to ch's channel: a named handle must outlive the case (it
// does, passed straight to select); a temporary one (goro::after(d),
// ctx.done(), a function returning a channel) is kept alive by the case.
template <detail::Receivable C, class H = detail::NoHandler>
auto recv(const C& ch, H handler = {}) {
  return detail::RecvCase<typename C::value_type, H>(ch.get(), std::move(handler));
}
template <detail::Receivable C, class H = detail::NoHandler>
  requires detail::TemporaryHandle<C>
auto recv(C&& ch, H handler = {}) {
  using T = typename C::value_type;
  detail::ChanPtr<T> keep = std::move(ch).take_state();
  detail::ChanState<T>* chan = keep.get();
  return detail::RecvCase<T, H, detail::ChanPtr<T>>(chan, std::move(handler), std::move(keep));
}

// send(ch, value, handler) is `case ch <- value:`. `value` is moved only if
// this case wins. The channel is referred to or kept as by recv(); `value`
// is referred to when it is a non-const T (an lvalue, or an rvalue passed
// straight to select), else copied into a T the case holds (a value that
// converts to T only by being moved from does not compile: see
// detail::converted_copy).
template <detail::Sendable C, class V, class H = detail::NoHandler>
auto send(const C& ch, V&& value, H handler = {}) {
  return detail::make_send_case(ch.get(), detail::NoChannelKeep{}, std::forward<V>(value), std::move(handler));
}
template <detail::Sendable C, class V, class H = detail::NoHandler>
  requires detail::TemporaryHandle<C>
auto send(C&& ch, V&& value, H handler = {}) {
  using T = typename C::value_type;
  detail::ChanPtr<T> keep = std::move(ch).take_state();
  detail::ChanState<T>* chan = keep.get();
  return detail::make_send_case(chan, std::move(keep), std::forward<V>(value), std::move(handler));
}

// timeout(d, handler) is `case <-time.After(d):`, without a timer channel.
template <class Rep, class Period, class H = detail::NoHandler>
auto timeout(std::chrono::duration<Rep, Period> d, H handler = {}) {
  return detail::TimeoutCase<H>(detail::deadline_after(d), std::move(handler));
}

// default_case(handler) is `default:`; it makes select non-blocking.
template <class H = detail::NoHandler>
auto default_case(H handler = {}) {
  return detail::DefaultCase<H>(std::move(handler));
}

// select() runs exactly one ready case; see the top of this header.
template <class... Cases>
  requires(detail::SelectHooks<std::remove_cvref_t<Cases>> && ...)
std::size_t select(Cases&&... cases) {
  constexpr int timeouts = (0 + ... + detail::CaseTraits<std::remove_cvref_t<Cases>>::timeouts);
  constexpr int defaults = (0 + ... + detail::CaseTraits<std::remove_cvref_t<Cases>>::defaults);
  static_assert(timeouts <= 1, "goro::select: at most one timeout case");
  static_assert(defaults <= 1, "goro::select: at most one default_case");
  static_assert(timeouts + defaults <= 1, "goro::select: timeout and default_case cannot both appear");
  static_assert(!((std::is_lvalue_reference_v<Cases> && detail::refers_to_rvalue_v<std::remove_cvref_t<Cases>>) ||
                  ...),
                "goro::select: this send case refers to the rvalue it was made from, which may be gone by now: "
                "pass goro::send(ch, value) straight to select, or make the case from a named variable "
                "(goro::send(ch, v)), which it refers to and moves from only if it wins");
  // A case passed as an lvalue may have run in an earlier select.
  ([&] { if constexpr (std::is_lvalue_reference_v<Cases>) cases.rearm(); }(), ...);
  return detail::select_static(cases...);
}

// select(cases) is the same statement over a list built at run time (Go's
// reflect.Select): it returns the index in `cases` of the case that ran, with
// the variadic form's semantics. A std::vector<SelectCase> or an array of
// them converts. The misuse the variadic form rejects at compile time (two
// default_cases, two timeouts, a timeout and a default_case) and a moved-from
// SelectCase throw std::invalid_argument before any case commits. An empty
// list blocks forever, like select(). Up to 64 cases, no heap allocation per
// call; beyond that, two arrays of that many pointers are allocated per call.
// The cases stay in `cases` and can be reused (see SelectCase); a handler
// must not add or remove elements of `cases` (use the returned index after
// select returns).
inline std::size_t select(std::span<SelectCase> cases) { return detail::select_span(cases); }

}  // namespace goro
