// Timers as channels, like Go's time package: after(), Timer and Ticker all
// deliver the firing time on a receive-only channel of capacity one, so
// select treats them like any other channel. (For a plain deadline inside a
// select, goro::timeout costs no channel at all.)
//
//   goro::Timer t(50ms);
//   goro::select(goro::recv(t.channel(), [](auto) { ... }), goro::recv(done));
//   goro::Ticker tick(1s);
//   while (auto when = tick.channel().recv()) { ... }
//
// Timers park fibers, not threads, and fire within about a millisecond of
// their deadline under load. Thread-safety: Timer and Ticker may be used from
// any fiber or thread; like Go's, one Timer should not be reset and stopped
// concurrently from several places. A Ticker's stop() and reset() may race
// each other and its ticks.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "channel.hpp"
#include "detail/deadline.hpp"
#include "detail/spin_lock.hpp"
#include "detail/timer_heap.hpp"
#include "detail/timer_service.hpp"

namespace goro {

using TimePoint = std::chrono::steady_clock::time_point;

namespace detail {

// TimerState is shared by a Timer/Ticker handle and the timer heap: each
// holds one reference (the heap's while the node is queued or firing).
//
// The node's life: idle -> queued (in the heap) -> in flight (run_due took
// it off the heap and chained it on its `later` list; fire() has not yet
// sent) -> idle, or queued again by a ticker's fire(). Two rules keep that
// honest against stop() and reset() on other threads:
//   - A node in flight is never queued again until its fire() is done with
//     it: queueing it would relink `later_next` while run_due's list still
//     holds it (two lists would share the node, and it would fire twice).
//     fire() clears `in_flight` (under `lock`) before a ticker's reschedule.
//   - stop(), reset() and the destructors settle a firing in flight before
//     they return: they wait until its send is done (as Go 1.23's Stop and
//     Reset do), so the documented "if (!t.stop()) drain" finds the value,
//     and nothing is sent after stop() returns.
// A ticker's fire() (on the timer thread) reschedules while its handle may
// stop or reset it (on any thread): `lock` makes the two exclusive, so
// exactly one of them queues the node. Lock order: `lock`, then the timer
// heap's. No one waits for `in_flight` while holding `lock` (fire() needs
// it to finish).
struct TimerState {
  TimerNode node;
  Channel<TimePoint> channel{1};
  SpinLock lock;
  std::int64_t period = 0;  // 0: one-shot; guarded by lock
  bool stopped = false;     // guarded by lock
  // Set by run_due under the heap lock when it takes the node for firing;
  // cleared by fire() once its send is done.
  std::atomic<bool> in_flight{false};
  std::atomic<int> refs{1};

  TimerState() {
    node.expire = [](TimerNode* n, WakeList&, TimerNode*& later) {
      from_node(n)->in_flight.store(true, std::memory_order_relaxed);  // ordered by the heap lock
      n->later_next = later;  // the heap's reference moves to run_later
      later = n;
    };
    node.run_later = [](TimerNode* n) { from_node(n)->fire(); };
  }
  static TimerState* from_node(TimerNode* n) noexcept {
    return static_cast<TimerState*>(static_cast<void*>(reinterpret_cast<char*>(n) - offsetof(TimerState, node)));
  }

  // schedule_at() queues the node: it must be neither queued nor in flight.
  // If the timer thread cannot be started (the first timer only), it throws
  // std::system_error having changed nothing.
  void schedule_at(std::int64_t when) {
    TimerService& service = TimerService::instance();
    node.when = when;
    refs.fetch_add(1, std::memory_order_relaxed);
    service.schedule(&node);
  }
  // dequeue() takes the node off the heap: true if it was queued.
  bool dequeue() noexcept {
    if (!timers().remove(&node)) return false;
    unref();
    return true;
  }
  // settle() waits until no firing is in flight. The node must be off the
  // heap and unable to get back on (only fire() or this handle requeue it),
  // and the caller must not hold `lock`.
  void settle() const noexcept {
    for (int spins = 0; in_flight.load(std::memory_order_acquire); ++spins) {
      if (spins < 64) GORO_CPU_RELAX(); else std::this_thread::yield();
    }
  }
  // unschedule() is a Timer's stop(): true if it kept the timer from firing;
  // false if it had fired (that firing's send done by now) or was stopped.
  bool unschedule() noexcept {
    if (dequeue()) return true;
    settle();
    return false;
  }
  void fire() {
    channel.try_send(std::chrono::steady_clock::now());  // a full channel drops the tick, as Go's
    {
      std::lock_guard guard(lock);
      in_flight.store(false, std::memory_order_release);
      // A ticker's next tick is a period after this one's deadline, or a
      // period from now if that has passed; unless it was stopped (a reset
      // waiting for this tick stops it first, and queues the node itself).
      if (period > 0 && !stopped) {
        const std::chrono::nanoseconds step(period);
        const std::int64_t next = deadline_plus(node.when, step);
        schedule_at(next > now_ns() ? next : deadline_from_now(step));
      }
    }
    unref();
  }
  // stop_ticking() and restart_ticking() are a Ticker's stop() and reset().
  void stop_ticking() noexcept {
    {
      std::lock_guard guard(lock);
      stopped = true;  // a tick in flight will not reschedule
      dequeue();
    }
    settle();
  }
  void restart_ticking(std::int64_t period_ns) {
    for (;;) {
      {
        std::lock_guard guard(lock);
        dequeue();  // off the heap first: then nothing can set in_flight
        if (!in_flight.load(std::memory_order_acquire)) {
          period = period_ns;
          stopped = false;
          schedule_at(deadline_from_now(std::chrono::nanoseconds(period_ns)));
          return;
        }
        stopped = true;  // the tick in flight must not reschedule: we will
      }
      settle();
    }
  }
  void unref() noexcept {
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  struct Unref {
    void operator()(TimerState* state) const noexcept { state->unref(); }
  };
};

// OwnedTimerState holds a handle's reference while the handle is being made,
// so a first schedule that throws frees the state.
using OwnedTimerState = std::unique_ptr<TimerState, TimerState::Unref>;

// live_state() is a Timer's or Ticker's state for `call`; it throws
// std::logic_error naming the call when the handle was moved from (null).
inline TimerState* live_state(TimerState* state, const char* type, const char* call) {
  if (!state) throw std::logic_error(std::string("goro::") + type + "::" + call + " on a moved-from " + type);
  return state;
}

}  // namespace detail

// after(d) is Go's time.After: a channel that receives the time once, d from now.
template <class Rep, class Period>
RecvChannel<TimePoint> after(std::chrono::duration<Rep, Period> d) {
  detail::OwnedTimerState state(new detail::TimerState());
  RecvChannel<TimePoint> ch = state->channel;
  state->schedule_at(detail::deadline_after(d));
  return ch;  // `state` lets go: only the heap holds it now
}

// Timer is Go's time.Timer: channel() receives the time once when it fires.
class Timer {
 public:
  template <class Rep, class Period>
  explicit Timer(std::chrono::duration<Rep, Period> d) {
    detail::OwnedTimerState state(new detail::TimerState());
    state->schedule_at(detail::deadline_after(d));
    state_ = state.release();
  }
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  Timer(Timer&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Timer& operator=(Timer&& other) noexcept {
    if (this != &other) {
      release();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~Timer() { release(); }

  // channel() receives the firing time. Throws std::logic_error on a
  // moved-from Timer.
  RecvChannel<TimePoint> channel() const {
    detail::note_goro_use();
    return detail::live_state(state_, "Timer", "channel()")->channel;
  }
  // stop() prevents the timer from firing: true if that stopped it, false if
  // it had already fired or been stopped (or this Timer was moved from: it
  // has nothing left to stop).
  bool stop() noexcept {
    detail::note_goro_use();
    return state_ && state_->unschedule();
  }
  // reset() makes the timer fire d from now: true if it had been active.
  // Like Go's, it does not drain a value already sent on channel(). Throws
  // std::logic_error on a moved-from Timer.
  template <class Rep, class Period>
  bool reset(std::chrono::duration<Rep, Period> d) {
    detail::note_goro_use();
    bool was_active = detail::live_state(state_, "Timer", "reset()")->unschedule();
    state_->schedule_at(detail::deadline_after(d));
    return was_active;
  }

 private:
  void release() noexcept {
    if (!state_) return;
    state_->unschedule();
    state_->unref();
    state_ = nullptr;
  }

  detail::TimerState* state_ = nullptr;  // null once moved from
};

// Ticker is Go's time.Ticker: channel() receives the time every period; a
// slow receiver misses ticks rather than queueing them.
class Ticker {
 public:
  template <class Rep, class Period>
  explicit Ticker(std::chrono::duration<Rep, Period> period)
      : Ticker(detail::to_ns_saturated(period).count(), 0) {}
  Ticker(const Ticker&) = delete;
  Ticker& operator=(const Ticker&) = delete;
  Ticker(Ticker&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}
  Ticker& operator=(Ticker&& other) noexcept {
    if (this != &other) {
      release();
      state_ = std::exchange(other.state_, nullptr);
    }
    return *this;
  }
  ~Ticker() { release(); }

  // channel() receives the ticks. Throws std::logic_error on a moved-from
  // Ticker.
  RecvChannel<TimePoint> channel() const {
    detail::note_goro_use();
    return detail::live_state(state_, "Ticker", "channel()")->channel;
  }
  // stop() turns the ticker off; no more ticks are sent. It does not close
  // the channel. On a moved-from Ticker it does nothing.
  void stop() noexcept {
    detail::note_goro_use();
    if (state_) state_->stop_ticking();
  }
  // reset() (Go's Ticker.Reset) stops the ticker and restarts it with a new
  // period: the next tick comes `period` from now. It works on a stopped
  // ticker too. Like Go's, it does not drain a tick already sent on
  // channel(). Throws std::invalid_argument for a non-positive period and
  // std::logic_error on a moved-from Ticker, changing nothing.
  template <class Rep, class Period>
  void reset(std::chrono::duration<Rep, Period> period) {
    detail::note_goro_use();
    const std::int64_t period_ns = checked_period(detail::to_ns_saturated(period).count(), "goro::Ticker::reset()");
    detail::live_state(state_, "Ticker", "reset()")->restart_ticking(period_ns);
  }

 private:
  // Checks the period before allocating anything.
  Ticker(std::int64_t period_ns, int) {
    checked_period(period_ns, "goro::Ticker");
    detail::OwnedTimerState state(new detail::TimerState());
    state->restart_ticking(period_ns);
    state_ = state.release();
  }
  static std::int64_t checked_period(std::int64_t period_ns, const char* what) {
    if (period_ns <= 0) throw std::invalid_argument(std::string(what) + ": non-positive period (zero, negative or NaN)");
    return period_ns;
  }

  void release() noexcept {
    if (!state_) return;
    state_->stop_ticking();
    state_->unref();
    state_ = nullptr;
  }

  detail::TimerState* state_ = nullptr;  // null once moved from
};

}  // namespace goro
