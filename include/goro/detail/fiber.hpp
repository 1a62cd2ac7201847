// Fiber: one goroutine. Its control block lives in a fiber block (see
// fiber_block.hpp) with the user's callable right behind it when that fits,
// so spawning costs no heap allocation and touches no stack page; the stack,
// reserved at spawn, is first touched when the fiber first runs. A parked
// fiber's footprint is that block plus the stack pages it touched.
#pragma once

#include <atomic>
#include <cstdint>

#include "execution_context.hpp"
#include "parker.hpp"
#include "stack.hpp"

namespace goro::detail {

struct Worker;

// Fiber states for the park/unpark handshake (see Runtime::park_current):
//   running  -> parked     by the worker that switched away from it
//   running  -> notified   by an unparker that came before the switch finished
//   parked   -> notified   by an unparker, which then enqueues the fiber
// A Publish::after_switch wait skips `notified`: its switch stores `parked`
// before the commit publishes the wait, and its unparker stores `running`.
enum class FiberState : std::uint8_t { running, parked, notified };

struct Fiber {
  explicit Fiber(Stack s, std::uint64_t fiber_id) noexcept : stack(s), id(fiber_id) {}
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

  // started() says whether it was ever switched to: its context is built on
  // its first run (Runtime::about_to_run), not at spawn.
  bool started() const noexcept { return ctx.fctx != nullptr; }

  ExecutionContext ctx;
  Stack stack;
  Parker parker{this};
  std::atomic<FiberState> state{FiberState::running};
  Fiber* next_runnable = nullptr;  // link in GlobalRunQueue

  // Registry links (guarded by the registry shard's lock).
  Fiber* reg_prev = nullptr;
  Fiber* reg_next = nullptr;
  std::uint32_t shard = 0;
  // Set once it has run for the last time; it stays in the registry, skipped
  // by readers, until its worker unregisters it (Runtime::unregister_exited).
  std::atomic<bool> exited{false};

  const std::uint64_t id;
  std::uint32_t last_worker = static_cast<std::uint32_t>(-1);  // the worker it last left
  // Its place in the spawn tree, for the order of the unwinding at stop
  // (unwind_order.hpp): one deeper than the fiber that spawned it (main is
  // 0; a fiber a plain thread or a timer spawned is 1, as if main had).
  std::uint32_t depth = 0;
  // The worker running it, set each time it is resumed, so the fiber's own
  // scheduling calls need no thread-local lookup. Meaningful only while the
  // fiber runs.
  Worker* worker = nullptr;
  bool is_main = false;
  // Set once it spawns a fiber, which may then refer to its frame. Written
  // only by this fiber; read by the unwinder once it is parked.
  std::atomic<bool> spawned{false};
  // Kept by the unwinder until deeper fibers are gone (UnwindOrder's lock).
  bool unwind_withheld = false;

  // The callable: `invoke` runs it, `destroy` destroys it (it sits at
  // `callable`, in this fiber's block or, if it is large, on the heap).
  void* callable = nullptr;
  void (*invoke)(void* callable) = nullptr;
  void (*destroy)(void* callable, bool on_heap) noexcept = nullptr;
  bool callable_on_heap = false;
};

}  // namespace goro::detail
