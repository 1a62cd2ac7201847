// goro::SelectCase: one type-erased select case, for a select whose case list
// is only known at run time (Go's reflect.SelectCase and reflect.Select).
//
//   std::vector<goro::SelectCase> cases;
//   for (auto& in : inputs) cases.emplace_back(goro::recv(in, handler));
//   std::size_t i = goro::select(cases);
//
// A SelectCase holds a case made by goro::recv, goro::send, goro::timeout or
// goro::default_case and forwards select's hooks (commit.hpp) to it through
// a table of function pointers. The case lives in the SelectCase itself when
// it fits kInlineBytes (a recv or send case of a T up to std::string's size
// with a handler capturing two references fits) and is nothrow-movable;
// otherwise it lives on the heap, allocated once when the SelectCase is made.
//
// SpanCases is the case set (commit.hpp) of a span of SelectCases: it checks
// the runtime misuse the variadic form rejects at compile time. A case is
// rearmed after its handler ran, so one list serves any number of calls.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "commit.hpp"

namespace goro {
class SelectCase;
}

namespace goro::detail {

// SelectHooks: what a case type must offer to be erased (what recv, send,
// timeout and default_case return). rearm() readies a case that already took
// part in a select for the next one.
template <class C>
concept SelectHooks = requires(C& c, const C& cc, WakeList& wake, Parker::Ticket ticket,
                               SelectRecord* record, std::size_t index) {
  { cc.channel() } -> std::same_as<ChanBase*>;
  typename C::Port;
  { c.port() } -> std::same_as<typename C::Port*>;
  { c.poll(wake) } -> std::convertible_to<bool>;
  c.enqueue(ticket, record, index);
  c.dequeue();
  c.finish();
  c.rearm();
  { C::kIsDefault } -> std::convertible_to<bool>;
  { C::kIsTimeout } -> std::convertible_to<bool>;
};

// CaseOps: one table per erased case type and storage mode. Every function
// takes the SelectCase's storage (which holds the case, or a pointer to it).
struct CaseOps {
  bool (*try_alone)(void* storage, WakeList& wake, bool& looked_ready);
  bool (*poll)(void* storage, WakeList& wake);
  void (*enqueue)(void* storage, Parker::Ticket, SelectRecord*, std::size_t) noexcept;
  void (*dequeue)(void* storage) noexcept;
  void (*finish)(void* storage);  // then rearms the case for the next select
  void (*relocate)(void* to, void* from) noexcept;  // moves the case (or its pointer) over
  void (*destroy)(void* storage) noexcept;
  bool inline_storage;
};

template <class C, bool Inline>
struct CaseOpsFor {
  static C& get(void* s) noexcept {
    if constexpr (Inline) return *std::launder(static_cast<C*>(s));
    else return **std::launder(static_cast<C**>(s));
  }
  static const C& get(const void* s) noexcept { return get(const_cast<void*>(s)); }

  static constexpr CaseOps table{
      [](void* s, WakeList& wake, bool& looked_ready) -> bool {
        return detail::try_alone<typename C::Port>(get(s).port(), wake, looked_ready);
      },
      [](void* s, WakeList& wake) -> bool { return get(s).poll(wake); },
      [](void* s, Parker::Ticket t, SelectRecord* r, std::size_t i) noexcept { get(s).enqueue(t, r, i); },
      [](void* s) noexcept { get(s).dequeue(); },
      [](void* s) {
        // The winner is the only case a select leaves changed (a loser's
        // waiter is never written to: its ticket was claimed by the winner),
        // so rearming it after its handler, even one that throws, readies
        // the whole list for the next call.
        struct Rearm {
          C& c;
          ~Rearm() { c.rearm(); }
        } rearm{get(s)};
        get(s).finish();
      },
      [](void* to, void* from) noexcept {
        if constexpr (Inline) {
          ::new (to) C(std::move(get(from)));
          get(from).~C();
        } else {
          ::new (to) C*(&get(from));
        }
      },
      [](void* s) noexcept {
        if constexpr (Inline) get(s).~C();
        else delete &get(s);
      },
      Inline,
  };
};

// ErasedCase: the storage and the hooks of a SelectCase (its private base, so
// the hooks stay out of the public type).
class ErasedCase {
 public:
  // kInlineBytes: the largest case kept without a heap allocation.
  static constexpr std::size_t kInlineBytes = 144;

  enum class Kind : std::uint8_t { empty, channel, timeout, fallback };

  template <class C>
  static constexpr bool fits_inline = sizeof(C) <= kInlineBytes &&
                                      alignof(C) <= alignof(std::max_align_t) &&
                                      std::is_nothrow_move_constructible_v<C>;

  ErasedCase() noexcept = default;
  template <class C>
    requires SelectHooks<std::remove_cvref_t<C>>
  explicit ErasedCase(C&& c) {
    using Case = std::remove_cvref_t<C>;
    c.rearm();  // it may have run in a variadic select before
    chan_ = c.channel();
    if constexpr (Case::kIsDefault) {
      kind_ = Kind::fallback;
    } else if constexpr (Case::kIsTimeout) {
      kind_ = Kind::timeout;
      deadline_ = c.deadline();
    } else {
      kind_ = Kind::channel;
    }
    if constexpr (fits_inline<Case>) {
      ::new (static_cast<void*>(storage_)) Case(std::move(c));
      ops_ = &CaseOpsFor<Case, true>::table;
    } else {
      ::new (static_cast<void*>(storage_)) Case*(new Case(std::move(c)));
      ops_ = &CaseOpsFor<Case, false>::table;
    }
  }
  ErasedCase(ErasedCase&& other) noexcept { take(other); }
  ErasedCase& operator=(ErasedCase&& other) noexcept {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  ~ErasedCase() { reset(); }

  // The select hooks (commit.hpp). A nil channel's or a channel-free case's
  // channel() is null, and then only finish() reaches the case.
  ChanBase* channel() const noexcept { return chan_; }
  bool try_alone(WakeList& wake, bool& looked_ready) { return chan_ && ops_->try_alone(storage_, wake, looked_ready); }
  bool poll(WakeList& wake) { return chan_ && ops_->poll(storage_, wake); }
  void enqueue(Parker::Ticket ticket, SelectRecord* record, std::size_t index) noexcept {
    if (chan_) ops_->enqueue(storage_, ticket, record, index);
  }
  void dequeue() noexcept {
    if (chan_) ops_->dequeue(storage_);
  }
  void finish() { ops_->finish(storage_); }

  Kind kind() const noexcept { return kind_; }
  std::int64_t deadline() const noexcept { return deadline_; }
  bool stored_inline() const noexcept { return ops_ && ops_->inline_storage; }

 private:
  void take(ErasedCase& other) noexcept {
    if (!other.ops_) return;
    other.ops_->relocate(storage_, other.storage_);
    ops_ = std::exchange(other.ops_, nullptr);
    chan_ = std::exchange(other.chan_, nullptr);
    deadline_ = other.deadline_;
    kind_ = std::exchange(other.kind_, Kind::empty);
  }
  void reset() noexcept {
    if (ops_) ops_->destroy(storage_);
    ops_ = nullptr;
    chan_ = nullptr;
    kind_ = Kind::empty;
  }

  const CaseOps* ops_ = nullptr;
  ChanBase* chan_ = nullptr;
  std::int64_t deadline_ = -1;
  Kind kind_ = Kind::empty;
  alignas(std::max_align_t) unsigned char storage_[kInlineBytes];
};

class SpanCases;

// erasable(): the case a SelectCase stores. A send case that points at an
// rvalue argument (which dies with the full expression that made it) is
// turned into one that owns the value.
template <class C>
decltype(auto) erasable(C&& c) {
  if constexpr (requires(C&& x) { std::move(x).owning(); }) return std::move(c).owning();
  else return std::move(c);
}

}  // namespace goro::detail

namespace goro {

// SelectCase: a select case whose type no longer names its channel or
// handler, so that cases of different types fit one container. Move-only.
// Make one from goro::recv(...), goro::send(...), goro::timeout(...) or
// goro::default_case(...); run a list of them with goro::select(span).
//
// Reuse: a SelectCase may take part in any number of select calls, one at a
// time (never in two running selects at once, and never twice in one list).
//   - recv and default_case: fully reusable. A case made from a named
//     channel handle needs that handle (or a copy) alive while it is; one
//     made from a temporary handle (after(d), ctx.done()) keeps the channel.
//   - timeout: its deadline was fixed when goro::timeout() was called, so a
//     reused timeout case is one deadline for the whole loop.
//   - send: the value is moved each time the case wins. A case made from a
//     non-const lvalue T refers to that variable, which must outlive the
//     SelectCase: refill it before the next select. A case made from anything
//     else (a temporary, std::move(v), a const or converted value) holds its
//     own T, moved or copied in when the SelectCase is made; after a win it
//     sends whatever a moved-from T holds.
class SelectCase : private detail::ErasedCase {
  friend class detail::SpanCases;

 public:
  // The most bytes a case may take and still be stored without a heap
  // allocation; larger (or throwing-move) cases are allocated once, here.
  static constexpr std::size_t inline_size = kInlineBytes;

  template <class C>
    requires(!std::is_lvalue_reference_v<C> && !std::same_as<std::remove_cvref_t<C>, SelectCase> &&
             detail::SelectHooks<std::remove_cvref_t<C>> &&
             std::move_constructible<std::remove_cvref_t<C>>)
  SelectCase(C&& c) : detail::ErasedCase(detail::erasable(std::move(c))) {}  // NOLINT: implicit, like std::function

  SelectCase(SelectCase&&) noexcept = default;
  SelectCase& operator=(SelectCase&&) noexcept = default;

  // empty(): true for a moved-from SelectCase (select throws on one).
  bool empty() const noexcept { return kind() == Kind::empty; }
  bool is_default() const noexcept { return kind() == Kind::fallback; }
  bool is_timeout() const noexcept { return kind() == Kind::timeout; }
  // stored_inline(): the case lives inside this object (no heap allocation).
  using detail::ErasedCase::stored_inline;
};

}  // namespace goro

namespace goro::detail {

// SpanCases: the case set (commit.hpp) of a runtime list of SelectCases.
class SpanCases {
 public:
  static constexpr std::size_t kExtent = std::dynamic_extent;

  // Checks the list; throws std::invalid_argument,
  // before anything is committed, on the misuse the variadic select rejects
  // at compile time, and on a moved-from case.
  explicit SpanCases(std::span<SelectCase> cases) : cases_(cases) {
    for (std::size_t i = 0; i < cases_.size(); ++i) {
      ErasedCase& c = cases_[i];
      switch (c.kind()) {
        case ErasedCase::Kind::empty:
          misuse("empty SelectCase (moved from) at index ", i);
        case ErasedCase::Kind::fallback:
          if (default_ != kNoCase) misuse("at most one default_case; another at index ", i);
          if (timeout_ != kNoCase) misuse("timeout and default_case cannot both appear; default_case at index ", i);
          default_ = i;
          break;
        case ErasedCase::Kind::timeout:
          if (timeout_ != kNoCase) misuse("at most one timeout case; another at index ", i);
          if (default_ != kNoCase) misuse("timeout and default_case cannot both appear; timeout at index ", i);
          timeout_ = i;
          deadline_ = c.deadline();
          break;
        case ErasedCase::Kind::channel:
          break;
      }
    }
  }

  std::size_t size() const noexcept { return cases_.size(); }
  std::size_t default_index() const noexcept { return default_; }
  std::size_t timeout_index() const noexcept { return timeout_; }
  std::int64_t deadline() const noexcept { return deadline_; }
  template <class F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < cases_.size(); ++i) f(erased(i), i);
  }
  template <class F>
  void visit(std::size_t i, F&& f) {
    f(erased(i));
  }
  bool try_alone(std::size_t i, WakeList& wake, bool& looked_ready) {
    return erased(i).try_alone(wake, looked_ready);
  }
  void finish(std::size_t i) { erased(i).finish(); }

 private:
  ErasedCase& erased(std::size_t i) noexcept { return cases_[i]; }
  [[noreturn]] static void misuse(const char* what, std::size_t index) {
    throw std::invalid_argument(std::string("goro::select: ") + what + std::to_string(index));
  }

  std::span<SelectCase> cases_;
  std::size_t default_ = kNoCase;
  std::size_t timeout_ = kNoCase;
  std::int64_t deadline_ = -1;
};

inline std::size_t select_span(std::span<SelectCase> cases) {
  SpanCases set(cases);
  return select_commit(set);
}

}  // namespace goro::detail
