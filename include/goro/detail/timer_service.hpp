// TimerService: makes sure pending timers fire even when no goro worker is
// around to run them (Timer, Ticker and after() used from plain threads, or
// outliving a runtime). A background thread, started on first use, sleeps
// until the earliest deadline; while a runtime runs, its workers fire due
// timers too, whichever comes first.
#pragma once

#include <atomic>
#include <climits>
#include <cstdint>
#include <thread>

#include "futex.hpp"
#include "scheduler.hpp"
#include "timer_heap.hpp"

namespace goro::detail {

class TimerService {
 public:
  static TimerService& instance() {
    static TimerService* service = new TimerService();  // lives for the process
    return *service;
  }

  // schedule() queues `node` and wakes whoever must notice a new earliest.
  void schedule(TimerNode* node) {
    if (!timers().add(node)) return;
    if (Runtime* rt = current_runtime()) rt->timer_added();
    timers().wake_service();
  }

 private:
  TimerService() { std::thread([this] { loop(); }).detach(); }

  [[noreturn]] void loop() {
    // goro's own thread: the channel sends it makes when timers fire must
    // not register it as a user's plain thread (note_goro_use()), which the
    // deadlock detector would count as able to move for the process's life.
    // It is counted only while it fires timers, below.
    thread_state().registered = true;
    for (;;) {
      std::uint32_t seen = timers().service_word().load(std::memory_order_acquire);
      std::int64_t now = now_ns();
      std::int64_t earliest = timers().earliest();
      if (earliest <= now) {
        // While it fires timers this thread is a waker the deadlock detector
        // must see: the heap may look empty before the woken fiber is queued.
        g_active_threads.fetch_add(1, std::memory_order_seq_cst);
        timers().run_due(now);
        if (g_active_threads.fetch_sub(1, std::memory_order_seq_cst) == 1) threads_quiet();
        continue;
      }
      futex_wait(&timers().service_word(), seen, earliest == INT64_MAX ? -1 : earliest - now);
    }
  }
};

}  // namespace goro::detail
