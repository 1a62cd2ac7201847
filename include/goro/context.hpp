// goro::Context: Go's context package: cancellation, deadlines and
// request-scoped values, passed down a tree of fibers.
//
//   auto [ctx, cancel] = goro::with_timeout(goro::background(), 2s);
//   goro::go([ctx] {
//     for (;;) {
//       if (goro::select(goro::recv(ctx.done()), goro::recv(jobs, handle)) == 0) return;
//     }
//   });
//   ...
//   cancel();  // or let the deadline pass; ctx.err() says which
//
// A Context is a cheap shared handle on an immutable node of the context
// tree (detail/cancel_tree.hpp has the design): copying one copies a
// shared_ptr. Cancelling a context cancels all its descendants with the same
// error and leaves its ancestors alone; a child's deadline is the earlier of
// its own and its parent's. Deadlines use the runtime's timers (no thread
// per context); they fire whether or not a runtime is running.
//
// Thread-safety: every member of Context, and every CancelFunc, is safe from
// any fiber or thread, concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>

#include "channel.hpp"
#include "detail/cancel_tree.hpp"
#include "unit.hpp"

namespace goro {

// errc is why a context is done: ctx.err() == goro::errc::canceled.
enum class errc : int {
  canceled = 1,           // Go's context.Canceled: a CancelFunc was called
  deadline_exceeded = 2,  // Go's context.DeadlineExceeded: the deadline passed
};

// context_category() is the std::error_category of goro::errc ("goro.context").
// Its codes also compare equal to the portable conditions
// std::errc::operation_canceled and std::errc::timed_out.
const std::error_category& context_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), context_category()};
}

}  // namespace goro

template <>
struct std::is_error_code_enum<goro::errc> : std::true_type {};

namespace goro {

namespace detail {

class ContextErrorCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "goro.context"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::canceled: return "context canceled";  // Go's wording
      case errc::deadline_exceeded: return "context deadline exceeded";
    }
    return "unknown context error";
  }
  std::error_condition default_error_condition(int code) const noexcept override {
    switch (static_cast<errc>(code)) {
      case errc::canceled: return std::errc::operation_canceled;
      case errc::deadline_exceeded: return std::errc::timed_out;
    }
    return {code, *this};
  }
};

inline std::error_code to_error_code(CancelReason r) noexcept {
  if (r == CancelReason::none) return {};
  return make_error_code(static_cast<errc>(r));
}

}  // namespace detail

inline const std::error_category& context_category() noexcept {
  static const detail::ContextErrorCategory category;
  return category;
}

// ContextKey<V> names a value of type V stored in contexts. Keys compare by
// identity (their address), so two keys never collide and a lookup is
// type-safe. Define them once, usually as inline globals:
//
//   inline const goro::ContextKey<std::string> request_id{"request_id"};
//
// Thread-safety: immutable.
template <class V>
class ContextKey {
  static_assert(std::is_object_v<V> && !std::is_const_v<V>,
                "goro::ContextKey<V>: V must be a non-const object type");

 public:
  using value_type = V;

  constexpr ContextKey() noexcept = default;
  // The name is for diagnostics only; it takes no part in lookups.
  constexpr explicit ContextKey(std::string_view name) noexcept : name_(name) {}
  ContextKey(const ContextKey&) = delete;  // a copy would be a different key
  ContextKey& operator=(const ContextKey&) = delete;

  constexpr std::string_view name() const noexcept { return name_; }

 private:
  std::string_view name_;
};

// Context carries cancellation, a deadline and values. A default-constructed
// Context is background().
class Context {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Context() is background(): never cancelled, no deadline, no values.
  Context() : node_(detail::background_node()) {}

  // done() is a channel closed when the context is cancelled (use it in
  // select, or recv() it to wait). For a context that can never be cancelled
  // (background() and values on it) it is the nil channel: never ready.
  RecvChannel<Unit> done() const;
  // err() is {} while the context is live; after cancellation,
  // errc::canceled or errc::deadline_exceeded. Once set it never changes,
  // and done() is closed by the time err() reports it.
  std::error_code err() const noexcept;
  // deadline() is when the context will be cancelled on its own, if ever.
  std::optional<time_point> deadline() const noexcept;
  // value() is the value of the nearest ancestor (or this context) that set
  // `key`, or nullptr. The pointer stays valid while any Context on this
  // path (this one, or a descendant) is alive.
  template <class V>
  const V* value(const ContextKey<V>& key) const noexcept;

  // Two handles are equal when they name the same context.
  friend bool operator==(const Context& a, const Context& b) noexcept { return a.node_ == b.node_; }

  // Internal: the node this handle names.
  explicit Context(std::shared_ptr<detail::ContextNode> node) noexcept : node_(std::move(node)) {}
  const std::shared_ptr<detail::ContextNode>& node() const noexcept { return node_; }

 private:
  std::shared_ptr<detail::ContextNode> node_;  // never null
};

// CancelFunc cancels the context it came with (errc::canceled) and all its
// descendants, and releases the context's timer. Calling it again, or after
// the context was cancelled some other way, does nothing. Copyable; a
// default-constructed CancelFunc does nothing.
//
// Thread-safety: safe from any fiber or thread, concurrently.
class CancelFunc {
 public:
  CancelFunc() noexcept = default;
  explicit CancelFunc(std::shared_ptr<detail::CancelNode> node) noexcept : node_(std::move(node)) {}

  void operator()() const {
    if (node_) node_->cancel(detail::CancelReason::canceled);
  }

 private:
  std::shared_ptr<detail::CancelNode> node_;
};

// background() is the root context: never cancelled, no deadline, no values
// (Go's context.Background()).
inline Context background() { return Context(); }
// todo() is background(), for code that has no context to pass yet (Go's context.TODO()).
inline Context todo() { return Context(); }

// with_cancel() returns a child of `parent` and the function that cancels it.
// Call the CancelFunc as soon as the work it covers is done: that unlinks
// the child from its parent.
std::pair<Context, CancelFunc> with_cancel(const Context& parent);

// with_deadline() is with_cancel() that also cancels the child with
// errc::deadline_exceeded at `when` (or at the parent's deadline, if that is
// earlier). A deadline already past gives an already-cancelled child.
// Clocks other than steady_clock are converted once, at the call.
template <class Clock, class Duration>
std::pair<Context, CancelFunc> with_deadline(const Context& parent,
                                             const std::chrono::time_point<Clock, Duration>& when);

// with_timeout() is with_deadline(parent, now + timeout).
template <class Rep, class Period>
std::pair<Context, CancelFunc> with_timeout(const Context& parent, std::chrono::duration<Rep, Period> timeout);

// with_value() returns a child of `parent` carrying `value` under `key`.
// Lookups walk up the chain, so use values for request-scoped data, not as a
// general map (Go's advice).
template <class V>
Context with_value(const Context& parent, const ContextKey<V>& key, std::type_identity_t<V> value);

// ---------------------------------------------------------------------------

inline RecvChannel<Unit> Context::done() const {
  if (detail::CancelNode* c = node_->canceller) return c->done_channel();
  return nullptr;
}

inline std::error_code Context::err() const noexcept {
  if (detail::CancelNode* c = node_->canceller) return detail::to_error_code(c->reason());
  return {};
}

inline std::optional<Context::time_point> Context::deadline() const noexcept {
  if (node_->deadline_ns == detail::kNoDeadline) return std::nullopt;
  return time_point(std::chrono::duration_cast<time_point::duration>(std::chrono::nanoseconds(node_->deadline_ns)));
}

template <class V>
const V* Context::value(const ContextKey<V>& key) const noexcept {
  for (const detail::ContextNode* n = node_.get(); n; n = n->parent.get()) {
    if (n->key == &key) return static_cast<const V*>(n->value);
  }
  return nullptr;
}

namespace detail {

inline std::pair<Context, CancelFunc> make_cancel_context(const Context& parent, std::int64_t deadline_ns) {
  std::shared_ptr<CancelNode> node = CancelNode::make(parent.node(), deadline_ns);
  CancelFunc cancel(node);
  return {Context(std::move(node)), std::move(cancel)};
}

// to_ns_saturated() converts any duration to nanoseconds, clamping instead
// of overflowing (with_timeout(ctx, std::chrono::hours::max()) is valid).
template <class Rep, class Period>
std::chrono::nanoseconds to_ns_saturated(std::chrono::duration<Rep, Period> d) noexcept {
  long double ns = std::chrono::duration<long double, std::nano>(d).count();
  if (ns >= 9.0e18L) return std::chrono::nanoseconds::max();
  if (ns <= -9.0e18L) return std::chrono::nanoseconds::min();
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d);
}

// Saturating steady-clock nanoseconds for `now + d`.
inline std::int64_t deadline_from_now(std::chrono::nanoseconds d) noexcept {
  std::int64_t now = now_ns();
  if (d.count() <= 0) return now;
  if (d.count() >= kNoDeadline - now) return kNoDeadline - 1;
  return now + d.count();
}

}  // namespace detail

inline std::pair<Context, CancelFunc> with_cancel(const Context& parent) {
  return detail::make_cancel_context(parent, detail::kNoDeadline);
}

template <class Clock, class Duration>
std::pair<Context, CancelFunc> with_deadline(const Context& parent,
                                             const std::chrono::time_point<Clock, Duration>& when) {
  std::int64_t deadline_ns;
  if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
    auto since_epoch = detail::to_ns_saturated(when.time_since_epoch());
    deadline_ns = since_epoch.count() >= detail::kNoDeadline ? detail::kNoDeadline - 1 : since_epoch.count();
  } else {
    auto now = Clock::now();
    deadline_ns = when <= now ? detail::now_ns() : detail::deadline_from_now(detail::to_ns_saturated(when - now));
  }
  return detail::make_cancel_context(parent, deadline_ns);
}

template <class Rep, class Period>
std::pair<Context, CancelFunc> with_timeout(const Context& parent, std::chrono::duration<Rep, Period> timeout) {
  return detail::make_cancel_context(parent, detail::deadline_from_now(detail::to_ns_saturated(timeout)));
}

template <class V>
Context with_value(const Context& parent, const ContextKey<V>& key, std::type_identity_t<V> value) {
  return Context(std::make_shared<detail::ValueNode<V>>(parent.node(), &key, std::move(value)));
}

}  // namespace goro
