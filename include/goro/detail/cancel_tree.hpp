// The tree behind goro::Context: Go's context package internals.
//
// Nodes. Every Context names a ContextNode, shared (shared_ptr) by handles
// and by its children, each of which holds its parent: a node keeps its
// ancestors alive, never its descendants.
//   - the background node: no parent, never cancelled, no deadline;
//   - a CancelNode (with_cancel / with_timeout / with_deadline): can be
//     cancelled, and has children to cancel with it;
//   - a ValueNode<V> (with_value): a key and a value.
// Each node records `canceller`, the nearest CancelNode at or above it (null
// if there is none: such a context is never done), and `deadline_ns`, the
// earliest deadline on its path to the root. So err(), done() and deadline()
// are O(1); only value() walks up the chain, like Go.
//
// Cancellation. A CancelNode is registered with its parent's canceller in an
// intrusive list of children. Cancelling sets `err_`, closes the done channel,
// claims internal waiters (Semaphore's context-aware acquire) and detaches the
// whole child list in one pass under its lock; the children, pinned by strong
// references taken under that lock, are then cancelled from a work list, not
// by recursion, so neither a wide tree (100,000 children) nor a deep one
// costs stack. The root of a cancellation unlinks itself from its parent, and
// so does a node that is destroyed, so a long-lived parent does not
// accumulate dead children. Cancelling a node that is already cancelled reads
// `err_` and returns: no lock (every CancelFunc of a cancelled subtree is
// typically called once more, when its work is done).
//
// Settling (Go's context mutex, without holding a lock across the subtree).
// In Go, cancel() holds the context's mutex while it closes done and cancels
// every child, and Err() takes that mutex: so Err() != nil means done is
// closed and the whole subtree cancelled, and a second cancel() returns only
// after the first is through. Here `settled_` says the same: it is set once
// a node's done is closed and every descendant is settled, in post-order
// (the work list holds a "settle" step under the children of each node that
// has any; a leaf settles as soon as its done is closed).
// reason() (so err(), cause(), and the repeat cancel()) waits for it when
// it finds `err_` set first; so does a cancellation that meets a child
// another one cancels. Waits only ever point down the tree, at work in
// flight that takes no lock of ours, so they cannot form a cycle.
//
// Unlinking. `linked_` is written under the parent's lock but read without it
// by a destroyed child: the parent's detach pass clears it (release) as its
// very last touch of the child, so a child that reads false (acquire) knows
// nobody holds a pointer to it and skips the parent's lock. A child that
// reads true takes the lock and checks again.
//
// Ownership. Handles hold shared_ptrs; each CancelNode also holds a weak_ptr
// to itself (`self_`, set by make()), through which the detach pass pins a
// child whose handles may be going away (weak_ptr::lock() on the member: no
// copy of a weak_ptr per child), and after_func() entries refer to it. The
// done channel's state lives inside the node, and Context::done() hands out
// an aliasing shared_ptr built from the Context's own handle (which keeps the
// canceller alive through the parent chain), so done() costs one reference
// count increment and no allocation.
//
// Size. The node is allocated for every with_cancel() and its cache lines are
// touched by whoever creates, waits on, cancels and destroys it, often on
// different cores, so it carries nothing it may not need: the deadline timer
// and its cause live in TimedCancelNode, made only when a deadline is earlier
// than the inherited one.
//
// Causes (Go's WithCancelCause). A cancellation carries an optional cause,
// an exception_ptr written once under `lock_` before `err_` is published, so
// whoever reads err_ != none may read `cause_`. The work list hands each
// child the same cause, and a child born under a cancelled parent copies the
// parent's. A node made by with_deadline_cause keeps `deadline_cause_` for
// its own timer to pass on.
//
// AfterFunc. Each CancelNode also has an intrusive list of AfterFuncEntry
// (after_func.hpp). cancel_one() detaches the list with the children, in the
// same critical section, and the entries are launched once the node is
// settled (see Settling), with no lock held;
// a destroyed node releases its entries, so a context that is never
// cancelled does not keep its callbacks alive.
//
// Deadlines. A node whose deadline is earlier than its parent's is a
// TimedCancelNode and owns a TimerNode on the runtime's timer heap (no
// thread per context). While queued, the heap holds a reference to the node
// (`timer_ref_`), released when the timer fires or the node is cancelled, as
// Go's timer holds its context. TimerService fires due timers even when no
// runtime is running. A deadline fired on a worker is cancelled in a fiber
// of its own (TimedCancelNode::expire()).
//
// Locks. Each CancelNode's `lock_` guards its children list, the link fields
// of those children (`prev_sibling_`, `next_sibling_`; `linked_` is written
// under it, see Unlinking), its waiters and its after-func list (until
// cancel_one() detaches it). Lock order: a node's lock may be held while
// taking the timer heap's lock or a fresh channel's lock; a parent's lock is
// never taken while a child's is held, and vice versa (the cancel work list
// takes them one at a time). No lock is held across park(), and after-func
// functions are launched with no lock held.
#pragma once

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "../channel.hpp"
#include "../unit.hpp"
#include "after_func.hpp"
#include "config.hpp"
#include "deadline.hpp"
#include "parker.hpp"
#include "small_block_cache.hpp"
#include "spin_lock.hpp"
#include "timer_heap.hpp"
#include "timer_service.hpp"
#include "wait_list.hpp"

namespace goro::detail {

// Why a context is done; the non-zero values equal goro::errc's.
enum class CancelReason : std::uint8_t { none = 0, canceled = 1, deadline_exceeded = 2 };

class CancelNode;

class ContextNode {
 public:
  ContextNode() = default;
  explicit ContextNode(std::shared_ptr<ContextNode> parent_node) noexcept
      : parent(std::move(parent_node)),
        canceller(parent->canceller),
        deadline_ns(parent->deadline_ns) {}
  ContextNode(const ContextNode&) = delete;
  ContextNode& operator=(const ContextNode&) = delete;
  virtual ~ContextNode();

  std::shared_ptr<ContextNode> parent;  // null for the background node
  CancelNode* canceller = nullptr;      // nearest CancelNode at or above; kept alive via `parent`
  std::int64_t deadline_ns = kNoDeadline;
  const void* key = nullptr;    // a ValueNode's ContextKey (by address)
  const void* value = nullptr;  // a ValueNode's value
};

// value_type_tag<V>'s address names the type V.
template <class V>
inline constexpr char value_type_tag = 0;

// ValueNodeBase is what every ValueNode<V> shares: a node with a key also
// names its value's type, so a lookup through a key of another type that
// happens to sit at a dead key's address finds nothing (find_value()).
class ValueNodeBase : public ContextNode {
 public:
  const void* value_type = nullptr;

 protected:
  using ContextNode::ContextNode;
};

// ValueNode<V> carries one value for one key.
template <class V>
class ValueNode final : public ValueNodeBase {
 public:
  template <class U>
  ValueNode(std::shared_ptr<ContextNode> parent_node, const void* key_address, U&& v)
      : ValueNodeBase(std::move(parent_node)), stored_(std::forward<U>(v)) {
    key = key_address;
    value = &stored_;
    value_type = &value_type_tag<V>;
  }

 private:
  V stored_;
};

// find_value() is the V stored under the key at `key_address` by `n` or its
// nearest ancestor that has one, or null.
template <class V>
const V* find_value(const ContextNode* n, const void* key_address) noexcept {
  for (; n; n = n->parent.get()) {
    if (n->key == key_address && static_cast<const ValueNodeBase*>(n)->value_type == &value_type_tag<V>) {
      return static_cast<const V*>(n->value);  // only a ValueNodeBase has a key
    }
  }
  return nullptr;
}

class TimedCancelNode;

class CancelNode : public ContextNode {
 public:
  // make() creates a node under `parent` and registers it with the parent's
  // canceller (born cancelled if that one already is). `deadline_ns` is this
  // node's own deadline (kNoDeadline: none); a timer is armed only if it is
  // earlier than the inherited one. `deadline_cause` is the cause the timer
  // cancels with (null: none).
  static std::shared_ptr<CancelNode> make(std::shared_ptr<ContextNode> parent_node, std::int64_t own_deadline_ns,
                                          std::exception_ptr deadline_cause = nullptr);

  explicit CancelNode(std::shared_ptr<ContextNode> parent_node) noexcept
      : ContextNode(std::move(parent_node)) {
    canceller = this;
  }
  ~CancelNode() override {
    unlink_from_parent();
    release_after_funcs();
  }

  // self() is a weak reference to this node (for registrations that must
  // not keep it alive).
  const std::weak_ptr<CancelNode>& self() const noexcept { return self_; }

  // reason() is why this node was cancelled, or none; once it is not none,
  // done is closed and every descendant cancelled (see Settling).
  CancelReason reason() const noexcept {
    const CancelReason r = err_.load(std::memory_order_acquire);
    if (r != CancelReason::none && !settled_.load(std::memory_order_acquire)) [[unlikely]] wait_settled();
    return r;
  }
  // cause() is the cause this node was cancelled with; null while live or
  // when cancelled without one.
  std::exception_ptr cause() const noexcept {
    return reason() == CancelReason::none ? nullptr : cause_;
  }
  // cancel() cancels this node and every descendant with `why` and `cause`
  // (a no-op if it is already cancelled) and unlinks it from its parent. It
  // returns once the node is settled, waiting (yielding) for a cancellation
  // in flight elsewhere that reached it or a descendant first.
  void cancel(CancelReason why, const std::exception_ptr& cause = nullptr) {
    cancel(why, cause, Waits::for_others);
  }
  // done_state() is the state of the channel closed on cancellation. It lives
  // inside this node: a handle on it must share the ownership of this node
  // or of a descendant (Context::done() aliases its own handle).
  ChanState<Unit>* done_state() noexcept { return &done_state_; }
  // add_waiter() queues `n` to be claimed (WakeReason::signaled) on
  // cancellation; false, queueing nothing, if the node is already cancelled.
  bool add_waiter(WaitList::Node* n);
  void remove_waiter(WaitList::Node* n) noexcept;
  // add_after_func() links `e` (taking the list's reference); false, linking
  // nothing, if the node is already cancelled.
  bool add_after_func(const std::shared_ptr<AfterFuncEntry>& e);
  // remove_after_func() unlinks `e` if it is still linked.
  void remove_after_func(AfterFuncEntry* e) noexcept;

  // For tests and benchmarks: the number of linked children.
  std::size_t child_count() noexcept {
    std::lock_guard guard(lock_);
    return child_count_;
  }

 private:
  friend class TimedCancelNode;

  // link() registers this fresh node with the parent's canceller, or makes
  // it born cancelled if that one already is.
  void link();
  // Waits says whether cancel() may wait for another cancellation in flight.
  // `never` is the last resort of a deadline fired inside the scheduler, where
  // nothing may yield, when no fiber could be spawned to cancel it: a node
  // another cancellation is working on is then left to it.
  enum class Waits : bool { never, for_others };
  void cancel(CancelReason why, const std::exception_ptr& cause, Waits waits);
  // A step of a cancellation's work list: cancel `node`, or, below its
  // children, mark it settled and launch its after-funcs.
  struct CancelStep {
    std::shared_ptr<CancelNode> node;
    bool settle;
    AfterFuncEntry* afters = nullptr;
  };
  // cancel_one() cancels this node alone, if nobody did before (else it
  // returns false), and pushes its children onto `work`; if it has any, it
  // first pushes this node's settle step, taking `self_ref` (the caller's
  // reference to this node; null for a cancellation's root, which settles
  // at the end of cancel()), and hands it the node's after-funcs. Otherwise
  // they are left in `afters` for the caller to launch once it has settled
  // the node: an after-func that runs at once (no fiber or thread could be
  // started for it) must find the context settled, or its err() would wait
  // for the very cancellation that runs it.
  bool cancel_one(CancelReason why, const std::exception_ptr& cause, std::vector<CancelStep>& work,
                  std::shared_ptr<CancelNode>&& self_ref, AfterFuncEntry*& afters);
  // settle() marks this node settled, then launches its after-funcs.
  void settle(AfterFuncEntry* afters) noexcept {
    settled_.store(true, std::memory_order_release);
    launch_after_funcs(afters);
  }
  // wait_settled() returns once a cancellation in flight has settled this node.
  void wait_settled() const noexcept;
  void close_done() noexcept;
  void unlink_from_parent() noexcept;
  static void launch_after_funcs(AfterFuncEntry* list) noexcept;
  void release_after_funcs() noexcept;

  SpinLock lock_;
  std::atomic<CancelReason> err_{CancelReason::none};
  std::atomic<bool> settled_{false};  // see Settling
  // Set (seq_cst) by a TimedCancelNode before its timer is queued, so
  // cancel_one() leaves the global timer heap alone for the (many) nodes
  // that never had a timer.
  std::atomic<bool> timer_armed_{false};
  // Our membership in parent_canceller_'s list: see Unlinking.
  std::atomic<bool> linked_{false};
  std::exception_ptr cause_;  // written once under lock_, before err_
  CancelNode* parent_canceller_ = nullptr;  // the node we are registered with; alive via `parent`
  std::weak_ptr<CancelNode> self_;          // set by make(), before the node is shared

  // Children, guarded by lock_.
  CancelNode* first_child_ = nullptr;
  std::size_t child_count_ = 0;
  // Our links in parent_canceller_'s list, guarded by parent_canceller_->lock_.
  CancelNode* prev_sibling_ = nullptr;
  CancelNode* next_sibling_ = nullptr;

  WaitList waiters_;  // guarded by lock_
  AfterFuncEntry* first_after_ = nullptr;  // guarded by lock_; detached by cancel_one()

  // Closed when the node is cancelled (by cancel_one(), or at birth).
  ChanState<Unit> done_state_{0};
};

// TimedCancelNode is a CancelNode with its own deadline timer.
class TimedCancelNode final : public CancelNode {
 public:
  TimedCancelNode(std::shared_ptr<ContextNode> parent_node, std::exception_ptr deadline_cause) noexcept
      : CancelNode(std::move(parent_node)), deadline_cause_(std::move(deadline_cause)) {}

  // start() applies deadline `when` (earlier than the inherited one) to a
  // node just linked: cancels it now if `when` has passed, else arms the timer.
  void start(std::int64_t when);
  // disarm() dequeues the timer of a cancelled node; the heap's reference,
  // if it was still queued, moves to `ref` (for the caller to drop last).
  void disarm(std::shared_ptr<CancelNode>& ref) noexcept;

 private:
  // DeadlineTimer puts a back pointer next to the TimerNode (first member, so
  // the heap's TimerNode* converts back).
  struct DeadlineTimer {
    TimerNode node;
    TimedCancelNode* owner = nullptr;
  };

  void arm_timer(std::int64_t when);
  // expire() cancels `node` (the heap's reference, handed over) for its
  // deadline, from a firing timer.
  static void expire(std::shared_ptr<CancelNode> node, const std::exception_ptr& cause) noexcept;

  std::exception_ptr deadline_cause_;  // set at construction; read by the timer
  DeadlineTimer timer_;
  std::shared_ptr<CancelNode> timer_ref_;  // the heap's reference while the timer is queued
};

// ---------------------------------------------------------------------------
// Releasing chains without recursion.
//
// Dropping the last handle of a deep chain would destroy each node from its
// child's destructor, one stack frame per level: enough to overflow a fiber
// stack on a chain of a few thousand contexts. Instead the outermost
// destructor on a thread runs a trampoline: nested destructors park their
// parent reference in a small per-thread buffer and return, and the outer
// one releases them in a loop. The buffer is trivially destructible raw
// storage (it is always empty between destructor calls), so it is safe even
// from static destructors after thread_local destruction; if it ever fills
// up (a value holding many contexts), releases fall back to plain recursion.

struct ReleaseTrampoline {
  static constexpr int kSlots = 32;
  bool active;
  int count;
  alignas(std::shared_ptr<ContextNode>) unsigned char storage[kSlots * sizeof(std::shared_ptr<ContextNode>)];
  std::shared_ptr<ContextNode>* slot(int i) noexcept {
    return std::launder(static_cast<std::shared_ptr<ContextNode>*>(static_cast<void*>(storage)) + i);
  }
};

GORO_NOINLINE inline ReleaseTrampoline& release_trampoline() noexcept {
  thread_local ReleaseTrampoline trampoline;  // zero-initialized, trivially destructible
  return trampoline;
}

inline ContextNode::~ContextNode() {
  if (!parent) return;
  ReleaseTrampoline& t = release_trampoline();
  if (t.active) {
    if (t.count < ReleaseTrampoline::kSlots) new (t.slot(t.count++)) std::shared_ptr<ContextNode>(std::move(parent));
    return;  // else `parent` is released by the member destructor, recursively
  }
  t.active = true;
  parent.reset();
  while (t.count > 0) {
    std::shared_ptr<ContextNode>* s = t.slot(--t.count);
    std::shared_ptr<ContextNode> next = std::move(*s);
    s->~shared_ptr();
    next.reset();  // may park more references in the buffer
  }
  t.active = false;
}

// background_node() is the root every tree hangs from. Never destroyed: it
// may be referenced from static Contexts and detached threads at exit.
inline const std::shared_ptr<ContextNode>& background_node() {
  static const auto* root = new std::shared_ptr<ContextNode>(std::make_shared<ContextNode>());
  return *root;
}

// unowned_background() names the background node without sharing its
// reference count (an aliasing pointer with no owner; the node is never
// destroyed), so making a background Context, or leaving one behind after a
// move, writes no cache line that every core shares.
inline std::shared_ptr<ContextNode> unowned_background() noexcept {
  static ContextNode* const root = background_node().get();
  return std::shared_ptr<ContextNode>(std::shared_ptr<ContextNode>(), root);
}

// detached_node() is WithoutCancel's node: it keeps the parent (so values
// are found through it) but has no canceller and no deadline, so nothing
// above can cancel what hangs below it.
inline std::shared_ptr<ContextNode> detached_node(std::shared_ptr<ContextNode> parent) {
  auto node = std::make_shared<ContextNode>(std::move(parent));
  node->canceller = nullptr;
  node->deadline_ns = kNoDeadline;
  return node;
}

// ---------------------------------------------------------------------------
// CancelNode

inline std::shared_ptr<CancelNode> CancelNode::make(std::shared_ptr<ContextNode> parent_node,
                                                    std::int64_t own_deadline_ns,
                                                    std::exception_ptr deadline_cause) {
  if (own_deadline_ns >= parent_node->deadline_ns) {  // the inherited deadline comes first: no timer of our own
    auto node = std::allocate_shared<CancelNode>(CachingAllocator<CancelNode>{}, std::move(parent_node));
    node->self_ = node;
    node->link();
    return node;
  }
  auto node = std::allocate_shared<TimedCancelNode>(CachingAllocator<TimedCancelNode>{}, std::move(parent_node),
                                                    std::move(deadline_cause));
  node->self_ = node;
  node->link();
  node->start(own_deadline_ns);
  return node;
}

inline void CancelNode::link() {
  CancelNode* pc = parent->canceller;
  if (!pc) return;
  parent_canceller_ = pc;
  std::lock_guard guard(pc->lock_);
  CancelReason r = pc->err_.load(std::memory_order_relaxed);
  if (r != CancelReason::none) {
    cause_ = pc->cause_;  // born cancelled, like Go's propagateCancel
    err_.store(r, std::memory_order_relaxed);
    close_done();
    settled_.store(true, std::memory_order_release);  // no children to wait for
    return;
  }
  next_sibling_ = pc->first_child_;
  if (pc->first_child_) pc->first_child_->prev_sibling_ = this;
  pc->first_child_ = this;
  linked_.store(true, std::memory_order_relaxed);  // published with the node
  ++pc->child_count_;
}

inline void TimedCancelNode::start(std::int64_t when) {
  deadline_ns = when;
  if (when <= now_ns()) {
    cancel(CancelReason::deadline_exceeded, deadline_cause_);
  } else if (reason() == CancelReason::none) {
    arm_timer(when);
  }
}

inline void TimedCancelNode::arm_timer(std::int64_t when) {
  timer_.owner = this;
  timer_.node.when = when;
  timer_.node.expire = [](TimerNode* n, WakeList&, TimerNode*& later) {
    n->later_next = later;  // cancel after the heap lock is released
    later = n;
  };
  timer_.node.run_later = [](TimerNode* n) {
    TimedCancelNode* self = reinterpret_cast<DeadlineTimer*>(n)->owner;
    expire(std::move(self->timer_ref_), self->deadline_cause_);  // the heap's reference, now ours
  };
  TimerService& service = TimerService::instance();  // may throw (no timer thread): nothing armed yet
  timer_ref_ = self_.lock();
  timer_armed_.store(true, std::memory_order_seq_cst);
  service.schedule(&timer_.node);
  // A cancel that ran before the timer was queued could not dequeue it. (The
  // seq_cst pair timer_armed_/err_ means at least one of us sees the other.)
  if (err_.load(std::memory_order_seq_cst) != CancelReason::none && timers().remove(&timer_.node)) {
    timer_ref_.reset();
  }
}

// A timer fires on the timer thread, or on a worker inside the scheduler: in
// the middle of a fiber's switch, where yielding would recurse into the
// scheduler. There the cancellation runs in a fiber of its own, as Go's
// deadline runs in time.AfterFunc's goroutine, so it can wait for another in
// flight like any other cancel(). A stopping runtime may not run a new fiber,
// and a spawn may fail: then it cancels right here, without waiting.
inline void TimedCancelNode::expire(std::shared_ptr<CancelNode> node, const std::exception_ptr& cause) noexcept {
  Worker* w = current_worker();
  if (!w) {
    node->cancel(CancelReason::deadline_exceeded, cause);
    return;
  }
  if (!w->rt->stopping()) {
    try {
      w->rt->spawn([node, cause] { node->cancel(CancelReason::deadline_exceeded, cause); });
      return;
    } catch (...) {
    }
  }
  node->cancel(CancelReason::deadline_exceeded, cause, Waits::never);
}

inline void TimedCancelNode::disarm(std::shared_ptr<CancelNode>& ref) noexcept {
  if (timers().remove(&timer_.node)) ref = std::move(timer_ref_);
}

inline void CancelNode::cancel(CancelReason why, const std::exception_ptr& cause, Waits waits) {
  const bool wait_for_others = waits == Waits::for_others;
  std::vector<CancelStep> work;
  AfterFuncEntry* root_afters = nullptr;
  // A repeat call (the common one) finds err_ set and takes no lock.
  if (err_.load(std::memory_order_acquire) != CancelReason::none ||
      !cancel_one(why, cause, work, nullptr, root_afters)) {
    if (wait_for_others) wait_settled();  // another cancellation won: return once it is through
    return;
  }
  while (!work.empty()) {
    CancelStep step = std::move(work.back());
    work.pop_back();
    CancelNode* node = step.node.get();
    AfterFuncEntry* afters = nullptr;
    if (step.settle) {
      node->settle(step.afters);
    } else if (!node->cancel_one(why, cause, work, std::move(step.node), afters)) {
      if (wait_for_others) node->wait_settled();  // another cancellation won this child: wait until it is through
    } else if (step.node) {
      node->settle(afters);  // a leaf: nothing below to wait for
    }
  }
  // Unlinked only now, as Go's removeChild comes after the subtree: until
  // then a cancellation of an ancestor still finds this node, and waits for it.
  unlink_from_parent();
  settle(root_afters);
}

inline void CancelNode::wait_settled() const noexcept {
  while (!settled_.load(std::memory_order_acquire)) yield_to_peer();
}

inline bool CancelNode::cancel_one(CancelReason why, const std::exception_ptr& cause, std::vector<CancelStep>& work,
                                   std::shared_ptr<CancelNode>&& self_ref, AfterFuncEntry*& afters) {
  WakeList wake;  // declared first: unparks after lock_ is released
  std::shared_ptr<CancelNode> timer_ref;  // dropped last; the caller holds another reference
  CancelStep* settle_step = nullptr;
  {
    std::lock_guard guard(lock_);
    if (err_.load(std::memory_order_relaxed) != CancelReason::none) return false;
    // Room for the settle step and every child, so `settle_step` stays put;
    // grown geometrically, or a deep chain (one settle step a level) would
    // copy the whole list at every level.
    if (const std::size_t need = work.size() + child_count_ + 1; need > work.capacity()) {
      work.reserve(std::max(need, 2 * work.capacity()));
    }
    cause_ = cause;
    err_.store(why, std::memory_order_seq_cst);
    if (first_child_ && self_ref) {
      work.push_back({std::move(self_ref), true});  // below the children
      settle_step = &work.back();  // stays put: the reserve above covers the children too
    }
    for (CancelNode* c = first_child_; c;) {
      CancelNode* next = c->next_sibling_;
      // A child whose last handle is gone is being destroyed (its destructor
      // waits for lock_, or for linked_ to clear): there is nothing to cancel.
      if (std::shared_ptr<CancelNode> pinned = c->self_.lock()) work.push_back({std::move(pinned), false});
      c->linked_.store(false, std::memory_order_release);  // our last touch of c
      c = next;
    }
    first_child_ = nullptr;
    child_count_ = 0;
    waiters_.claim_all(wake);
    afters = std::exchange(first_after_, nullptr);  // ours now: see remove_after_func()
  }
  close_done();
  if (settle_step) settle_step->afters = std::exchange(afters, nullptr);  // launched once settled
  if (timer_armed_.load(std::memory_order_seq_cst)) static_cast<TimedCancelNode*>(this)->disarm(timer_ref);
  return true;
}

inline void CancelNode::unlink_from_parent() noexcept {
  CancelNode* pc = parent_canceller_;
  // Already detached (cancelled, or born cancelled): the parent is done with us.
  if (!pc || !linked_.load(std::memory_order_acquire)) return;
  std::lock_guard guard(pc->lock_);
  if (!linked_.load(std::memory_order_relaxed)) return;
  if (prev_sibling_) prev_sibling_->next_sibling_ = next_sibling_; else pc->first_child_ = next_sibling_;
  if (next_sibling_) next_sibling_->prev_sibling_ = prev_sibling_;
  prev_sibling_ = next_sibling_ = nullptr;
  linked_.store(false, std::memory_order_relaxed);
  --pc->child_count_;
}

// close_done() closes done_state_, waking its receivers; once per node (the
// callers run only for the cancellation that wins).
inline void CancelNode::close_done() noexcept {
  WakeList wake;  // declared first: unparks after the channel lock is released
  std::lock_guard guard(done_state_.lock);
  done_state_.close_locked(wake);
}

inline bool CancelNode::add_after_func(const std::shared_ptr<AfterFuncEntry>& e) {
  std::lock_guard guard(lock_);
  if (err_.load(std::memory_order_relaxed) != CancelReason::none) return false;
  e->next = first_after_;
  if (first_after_) first_after_->prev = e.get();
  first_after_ = e.get();
  e->self = e;
  return true;
}

inline void CancelNode::remove_after_func(AfterFuncEntry* e) noexcept {
  std::shared_ptr<AfterFuncEntry> list_ref;  // dropped after the lock
  std::lock_guard guard(lock_);
  // Once cancelled, the list belongs to the cancelling thread, which walks
  // it without the lock: leave the links alone.
  if (err_.load(std::memory_order_relaxed) != CancelReason::none || !e->self) return;
  if (e->prev) e->prev->next = e->next; else first_after_ = e->next;
  if (e->next) e->next->prev = e->prev;
  e->prev = e->next = nullptr;
  list_ref = std::move(e->self);
}

// launch_after_funcs() runs the entries of a list detached by cancel_one().
inline void CancelNode::launch_after_funcs(AfterFuncEntry* list) noexcept {
  while (list) {
    std::shared_ptr<AfterFuncEntry> e = std::move(list->self);
    list = list->next;
    if (e->claim(AfterFuncEntry::State::started)) launch_after_func(std::move(e->fn));
  }
}

// release_after_funcs() drops the entries of a node destroyed uncancelled:
// their functions can never run. Nothing else can reach the list any more
// (a StopFunc only reaches it through a weak_ptr, now expired).
inline void CancelNode::release_after_funcs() noexcept {
  while (AfterFuncEntry* e = first_after_) {
    first_after_ = e->next;
    std::shared_ptr<AfterFuncEntry> list_ref = std::move(e->self);
    if (e->claim(AfterFuncEntry::State::released)) e->fn.reset();
  }
}

inline bool CancelNode::add_waiter(WaitList::Node* n) {
  std::lock_guard guard(lock_);
  if (err_.load(std::memory_order_relaxed) != CancelReason::none) return false;
  waiters_.push(n);
  return true;
}

inline void CancelNode::remove_waiter(WaitList::Node* n) noexcept {
  std::lock_guard guard(lock_);
  waiters_.remove(n);
}

}  // namespace goro::detail
