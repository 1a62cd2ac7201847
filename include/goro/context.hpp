// goro::Context: Go's context package: cancellation, deadlines and
// request-scoped values, passed down a tree of fibers.
//
//   auto [ctx, cancel] = goro::with_timeout(goro::background(), 2s);
//   goro::go([ctx = ctx, jobs] {  // `ctx = ctx`: clang 14 cannot capture a structured binding
//     for (;;) {
//       if (goro::select(goro::recv(ctx.done()), goro::recv(jobs, handle_job)) == 0) return;
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
// Go 1.20/1.21's additions are here too: with_cancel_cause() and cause()
// say *why* a context was cancelled, after_func() runs a function once a
// context is done, and without_cancel() keeps values but drops cancellation.
//
// Thread-safety: every member of Context, and every CancelFunc,
// CancelCauseFunc and StopFunc, is safe from any fiber or thread,
// concurrently.
#pragma once

#include <chrono>
#include <concepts>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
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
// identity (their address, and V), so two live keys never collide and a
// lookup is type-safe. A key must outlive every context that holds a value
// under it (a new key of the same type at a dead key's address would find
// the dead key's values). Define them once, usually as inline globals:
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
  Context() noexcept : node_(detail::unowned_background()) {}
  // Copying is cheap: a reference count. A move leaves `other` naming
  // background(), like a default-constructed Context, so a moved-from
  // Context is never empty: every member stays usable.
  Context(const Context&) = default;
  Context& operator=(const Context&) = default;
  Context(Context&& other) noexcept : node_(std::exchange(other.node_, detail::unowned_background())) {}
  Context& operator=(Context&& other) noexcept {
    if (this != &other) node_ = std::exchange(other.node_, detail::unowned_background());
    return *this;
  }

  // done() is a channel closed when the context is cancelled (use it in
  // select, or recv() it to wait). For a context that can never be cancelled
  // (background() and values on it) it is the nil channel: never ready.
  RecvChannel<Unit> done() const;
  // err() is {} while the context is live; after cancellation,
  // errc::canceled or errc::deadline_exceeded. Once set it never changes,
  // and by the time err() reports it done() is closed and every descendant
  // is cancelled (it may yield to a cancellation in flight elsewhere).
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
// the context was cancelled some other way, does nothing more; every call
// returns once the context and all its descendants are cancelled. Copyable;
// a default-constructed CancelFunc does nothing.
//
// Thread-safety: safe from any fiber or thread, concurrently.
class CancelFunc {
 public:
  CancelFunc() noexcept = default;
  explicit CancelFunc(std::shared_ptr<detail::CancelNode> node) noexcept : node_(std::move(node)) {}

  void operator()() const {
    detail::note_goro_use();
    if (node_) node_->cancel(detail::CancelReason::canceled);
  }

 private:
  std::shared_ptr<detail::CancelNode> node_;
};

// background() is the root context: never cancelled, no deadline, no values
// (Go's context.Background()).
inline Context background() {
  detail::note_goro_use();
  return Context();
}
// todo() is background(), for code that has no context to pass yet (Go's context.TODO()).
inline Context todo() { return background(); }

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
// A temporary key is gone at the end of the statement, and a value stored
// under it could never be looked up: refused at compile time.
template <class V, class U>
Context with_value(const Context& parent, const ContextKey<V>&& key, U&& value);

// without_cancel() returns a child of `parent` that keeps its values but is
// never cancelled and has no deadline: done() is the nil channel, err() is
// always {}, and cancelling `parent` does not reach it or its descendants
// (Go's context.WithoutCancel). Use it for work that must finish after the
// request that started it ends, such as writing an audit log.
Context without_cancel(const Context& parent);

// ---------------------------------------------------------------------------
// Causes: why a context was cancelled (Go's WithCancelCause and Cause).
//
// A cause is a std::exception_ptr, not a std::error_code. Go's cause is an
// `error`: any value, with its own type and message, that callers inspect
// with errors.Is/As. In C++ that is an exception object: it carries any
// type and message, is caught by type, and can be rethrown as is
// (std::rethrow_exception(goro::cause(ctx))). err() stays the error_code
// Go's Err() is; the cause is the richer, optional companion. An
// std::error_code may still be passed: it becomes an std::system_error.

// CancelCauseFunc cancels its context, like CancelFunc, and records why.
// Only the first call, or the first cancellation from any source, counts:
// later causes are ignored. A null cause (or an empty error_code) records
// none, and cause() then reports err(). Copyable; a default-constructed
// CancelCauseFunc does nothing.
//
// Thread-safety: safe from any fiber or thread, concurrently.
class CancelCauseFunc {
 public:
  CancelCauseFunc() noexcept = default;
  explicit CancelCauseFunc(std::shared_ptr<detail::CancelNode> node) noexcept : node_(std::move(node)) {}

  // cancel(cause) cancels with errc::canceled and records `cause`.
  void operator()(std::exception_ptr cause = nullptr) const;
  // cancel(code) records std::system_error(code) as the cause ({}: none).
  void operator()(std::error_code code) const;
  // cancel(exception) records a copy of any exception object, so
  // cancel(std::runtime_error("shutting down")) works.
  template <class E>
    requires std::derived_from<std::remove_cvref_t<E>, std::exception>
  void operator()(E&& cause) const {
    (*this)(std::make_exception_ptr(std::forward<E>(cause)));
  }

 private:
  std::shared_ptr<detail::CancelNode> node_;
};

// with_cancel_cause() is with_cancel() whose cancel function records a
// cause (Go's context.WithCancelCause).
std::pair<Context, CancelCauseFunc> with_cancel_cause(const Context& parent);

// cause() is why `ctx` was cancelled (Go's context.Cause):
//   - null while ctx is live (and always for background() and without_cancel());
//   - the cause given to the CancelCauseFunc (or the with_deadline_cause
//     cause) of the context whose cancellation reached ctx: descendants get
//     their ancestor's cause;
//   - otherwise, an std::system_error whose code() is ctx.err(), so a cause
//     can always be rethrown and inspected the same way.
std::exception_ptr cause(const Context& ctx);

// with_deadline_cause() is with_deadline() that records `cause` when the
// deadline passes (Go's context.WithDeadlineCause). err() is still
// errc::deadline_exceeded; the CancelFunc still cancels without a cause.
template <class Clock, class Duration>
std::pair<Context, CancelFunc> with_deadline_cause(const Context& parent,
                                                   const std::chrono::time_point<Clock, Duration>& when,
                                                   std::exception_ptr cause);

// with_timeout_cause() is with_deadline_cause(parent, now + timeout, cause)
// (Go's context.WithTimeoutCause).
template <class Rep, class Period>
std::pair<Context, CancelFunc> with_timeout_cause(const Context& parent, std::chrono::duration<Rep, Period> timeout,
                                                  std::exception_ptr cause);

// ---------------------------------------------------------------------------
// after_func (Go's context.AfterFunc).

// StopFunc unregisters an after_func() function. `stop()` returns true if it
// stopped the function from being run: the context was not done yet (or was
// destroyed without being cancelled) and this is the first stop. It returns
// false if the function has already been started, or already stopped. It
// does not wait for a started function to finish; coordinate with it
// yourself if you need that. Copyable (copies share the registration); a
// default-constructed StopFunc returns false.
//
// Thread-safety: safe from any fiber or thread, concurrently.
class StopFunc {
 public:
  StopFunc() noexcept = default;
  explicit StopFunc(std::shared_ptr<detail::AfterFuncEntry> entry) noexcept : entry_(std::move(entry)) {}

  bool operator()() const noexcept;

 private:
  std::shared_ptr<detail::AfterFuncEntry> entry_;
};

// after_func() arranges for `f` to run once, in its own fiber, after `ctx`
// is done (cancelled, or its deadline passed); if ctx is already done, f is
// started right away. Several after_func() calls on one context run
// independently.
//
// Where f runs: in a new fiber when a runtime is running (whoever cancels,
// fiber, plain thread or goro's timer thread, only spawns it); otherwise,
// or while the runtime is shutting down, on a new detached std::thread, so
// a context cancelled outside goro::run still runs its functions. An
// exception escaping f behaves as in any fiber (run() rethrows it), or, on
// such a thread, as in std::thread (std::terminate). Only if neither a fiber
// nor a thread can be created does f run on the canceller, inside cancel().
//
// Lifetime: the registration does not keep ctx alive. If ctx is destroyed
// without being cancelled, f is destroyed without running. But f itself
// must not hold ctx (or a descendant) if ctx may never be cancelled: that
// would keep ctx alive through its own registration until stop() is called.
// For a context that can never be done (background(), without_cancel()), f
// is dropped at once.
//
// f is decay-copied (moved from an rvalue) and may be move-only; it is
// called once, as an rvalue, with no arguments. Throws
// std::invalid_argument if f is empty (a null std::function or function
// pointer).
template <class F>
StopFunc after_func(const Context& ctx, F&& f);

// ---------------------------------------------------------------------------

inline RecvChannel<Unit> Context::done() const {
  detail::note_goro_use();
  detail::CancelNode* c = node_->canceller;
  if (!c) return nullptr;
  // Aliasing our own handle: node_ keeps its canceller (itself or an
  // ancestor) alive, and copying it is one increment, with no weak_ptr lock.
  return RecvChannel<Unit>(detail::AdoptState{}, std::shared_ptr<detail::ChanState<Unit>>(node_, c->done_state()));
}

inline std::error_code Context::err() const noexcept {
  detail::note_goro_use();
  if (detail::CancelNode* c = node_->canceller) return detail::to_error_code(c->reason());
  return {};
}

inline std::optional<Context::time_point> Context::deadline() const noexcept {
  detail::note_goro_use();
  if (node_->deadline_ns == detail::kNoDeadline) return std::nullopt;
  return time_point(std::chrono::duration_cast<time_point::duration>(std::chrono::nanoseconds(node_->deadline_ns)));
}

template <class V>
const V* Context::value(const ContextKey<V>& key) const noexcept {
  detail::note_goro_use();
  return detail::find_value<V>(node_.get(), &key);
}

namespace detail {

inline std::pair<Context, CancelFunc> make_cancel_context(const Context& parent, std::int64_t deadline_ns,
                                                         std::exception_ptr deadline_cause = nullptr) {
  note_goro_use();
  std::shared_ptr<CancelNode> node = CancelNode::make(parent.node(), deadline_ns, std::move(deadline_cause));
  CancelFunc cancel(node);
  return {Context(std::move(node)), std::move(cancel)};
}

}  // namespace detail

inline std::pair<Context, CancelFunc> with_cancel(const Context& parent) {
  return detail::make_cancel_context(parent, detail::kNoDeadline);
}

template <class Clock, class Duration>
std::pair<Context, CancelFunc> with_deadline(const Context& parent,
                                             const std::chrono::time_point<Clock, Duration>& when) {
  return detail::make_cancel_context(parent, detail::deadline_ns_of(when));
}

template <class Rep, class Period>
std::pair<Context, CancelFunc> with_timeout(const Context& parent, std::chrono::duration<Rep, Period> timeout) {
  return detail::make_cancel_context(parent, detail::deadline_after(timeout));
}

template <class V>
Context with_value(const Context& parent, const ContextKey<V>& key, std::type_identity_t<V> value) {
  detail::note_goro_use();
  return Context(std::make_shared<detail::ValueNode<V>>(parent.node(), &key, std::move(value)));
}

template <class V, class U>
Context with_value(const Context&, const ContextKey<V>&&, U&&) {
  static_assert(sizeof(V) == 0,
                "goro::with_value: the key is a temporary, gone at the end of the statement; "
                "a key must outlive the contexts that use it (define keys as inline globals)");
  return {};
}

inline Context without_cancel(const Context& parent) {
  detail::note_goro_use();
  return Context(detail::detached_node(parent.node()));
}

// ---------------------------------------------------------------------------
// Causes

namespace detail {

// The cause() of a context cancelled without one: an std::system_error for
// its err(), made once per error so every call returns the same object.
inline const std::exception_ptr& error_as_cause(CancelReason r) {
  static const auto* canceled = new std::exception_ptr(
      std::make_exception_ptr(std::system_error(make_error_code(errc::canceled))));
  static const auto* deadline = new std::exception_ptr(
      std::make_exception_ptr(std::system_error(make_error_code(errc::deadline_exceeded))));
  return r == CancelReason::deadline_exceeded ? *deadline : *canceled;
}

}  // namespace detail

inline void CancelCauseFunc::operator()(std::exception_ptr cause) const {
  detail::note_goro_use();
  if (node_) node_->cancel(detail::CancelReason::canceled, cause);
}

inline void CancelCauseFunc::operator()(std::error_code code) const {
  (*this)(code ? std::make_exception_ptr(std::system_error(code)) : std::exception_ptr());
}

inline std::pair<Context, CancelCauseFunc> with_cancel_cause(const Context& parent) {
  detail::note_goro_use();
  std::shared_ptr<detail::CancelNode> node = detail::CancelNode::make(parent.node(), detail::kNoDeadline);
  CancelCauseFunc cancel(node);
  return {Context(std::move(node)), std::move(cancel)};
}

inline std::exception_ptr cause(const Context& ctx) {
  detail::note_goro_use();
  detail::CancelNode* c = ctx.node()->canceller;
  if (!c) return nullptr;
  detail::CancelReason r = c->reason();
  if (r == detail::CancelReason::none) return nullptr;
  std::exception_ptr given = c->cause();
  return given ? given : detail::error_as_cause(r);
}

template <class Clock, class Duration>
std::pair<Context, CancelFunc> with_deadline_cause(const Context& parent,
                                                   const std::chrono::time_point<Clock, Duration>& when,
                                                   std::exception_ptr cause) {
  return detail::make_cancel_context(parent, detail::deadline_ns_of(when), std::move(cause));
}

template <class Rep, class Period>
std::pair<Context, CancelFunc> with_timeout_cause(const Context& parent, std::chrono::duration<Rep, Period> timeout,
                                                  std::exception_ptr cause) {
  return detail::make_cancel_context(parent, detail::deadline_after(timeout),
                                     std::move(cause));
}

// ---------------------------------------------------------------------------
// after_func

inline bool StopFunc::operator()() const noexcept {
  detail::note_goro_use();
  if (!entry_ || !entry_->claim_stop()) return false;
  if (std::shared_ptr<detail::CancelNode> owner = entry_->owner.lock()) owner->remove_after_func(entry_.get());
  return true;
}

namespace detail {

// register_after_func() is after_func() once f is known to be a callable.
inline StopFunc register_after_func(const Context& ctx, AfterFuncTask f) {
  note_goro_use();
  auto entry = std::make_shared<AfterFuncEntry>(std::move(f));
  CancelNode* c = ctx.node()->canceller;
  if (!c) {  // never done: f can never run
    entry->claim(AfterFuncEntry::State::released);
    entry->fn.reset();
    return StopFunc(std::move(entry));
  }
  entry->owner = c->self();
  if (!c->add_after_func(entry) && entry->claim(AfterFuncEntry::State::started)) {
    launch_after_func(std::move(entry->fn));  // already done: start it now
  }
  return StopFunc(std::move(entry));
}

}  // namespace detail

template <class F>
StopFunc after_func(const Context& ctx, F&& f) {
  using Fn = std::decay_t<F>;
  constexpr bool kNull = std::is_null_pointer_v<Fn>;  // after_func(ctx, nullptr): empty, as a null std::function
  static_assert(kNull || std::is_constructible_v<Fn, F>,
                "goro::after_func: f is decay-copied: std::move a move-only callable in");
  static_assert(kNull || std::is_invocable_v<Fn>, "goro::after_func: f must be callable with no arguments");
  if constexpr (kNull) {
    throw std::invalid_argument("goro::after_func: f is empty (nullptr)");
  } else {
    if constexpr (std::is_constructible_v<bool, const Fn&>) {
      if (!static_cast<bool>(f)) throw std::invalid_argument("goro::after_func: f is empty (a null function)");
    }
    return detail::register_after_func(ctx, detail::AfterFuncTask(std::forward<F>(f)));
  }
}

}  // namespace goro
