// Spawning: a fiber's block, id and stack, taken from the worker's caches;
// the registry shards that list live fibers for the reports and the unwinder;
// and giving it all back when a fiber exits.
//
// Part of the scheduler: included at the end of ../scheduler.hpp, which
// declares Runtime and states the invariants and lock order.
#pragma once

#include "../scheduler.hpp"

namespace goro::detail {

template <class Fn>
Fiber* Runtime::spawn(Fn&& fn, bool is_main) {
  using Callable = std::decay_t<Fn>;
  // The control block and a small callable share one fiber block; the stack
  // is reserved now (so running out of stacks fails here) but first touched
  // when the fiber first runs (give_stack).
  constexpr std::size_t kHeader = (sizeof(Fiber) + 15) & ~std::size_t{15};
  constexpr bool kInline = sizeof(Callable) <= kFiberBlockSize - kHeader && alignof(Callable) <= 16;
  static_assert(kHeader + 64 <= kFiberBlockSize, "a fiber block must leave room for a callable");
  Worker* w = current_worker();
  if (w && w->rt != this) w = nullptr;
  void* block = take_block(w);
  Stack stack;
  try {
    stack = take_stack(w);
  } catch (...) {
    release_block(w, block);
    throw;
  }
  Fiber* f = new (block) Fiber(stack, take_fiber_id(w));
  try {
    if constexpr (kInline) {
      f->callable = new (static_cast<char*>(block) + kHeader) Callable(std::forward<Fn>(fn));
    } else {
      f->callable = new Callable(std::forward<Fn>(fn));
      f->callable_on_heap = true;
    }
  } catch (...) {
    f->~Fiber();
    StackPool::instance().release(stack);
    release_block(w, block);
    throw;
  }
  f->invoke = [](void* c) { (*static_cast<Callable*>(c))(); };
  f->destroy = [](void* c, bool on_heap) noexcept {
    if (on_heap) delete static_cast<Callable*>(c);
    else static_cast<Callable*>(c)->~Callable();
  };
  f->is_main = is_main;
  place_in_spawn_tree(f, w);
  register_fiber(f, w);
  make_runnable(f, w);
  return f;
}

// OutsideSpawn is what spawn_from_outside() did.
enum class OutsideSpawn : std::uint8_t { spawned, no_runtime, stopping };

// spawn_from_outside() calls `spawn(rt)` with the running runtime, from a
// thread that is not one of its workers (a plain thread, or goro's timer
// thread), unless no runtime is running or it is stopping: a thread spawning
// in a loop would keep a stopping runtime from ever finishing, and a fiber
// spawned after the unwinding would never run. g_runtime_entry keeps the
// runtime from being destroyed between the check and the spawn. With
// `join_deadlock_count` the calling thread counts as able to move before the
// fiber exists (the fiber may wait for it).
template <class SpawnOn>
OutsideSpawn spawn_from_outside(bool join_deadlock_count, SpawnOn&& spawn) {
  std::lock_guard guard(g_runtime_entry);
  Runtime* rt = current_runtime();
  if (!rt) return OutsideSpawn::no_runtime;
  if (rt->stopping()) return OutsideSpawn::stopping;
  if (join_deadlock_count) Parker::current();
  spawn(rt);
  return OutsideSpawn::spawned;
}

// about_to_run() readies `f`, which worker `w` is about to switch to: it
// records the worker and, on the first run, gives the fiber its stack.
inline void Runtime::about_to_run(Worker* w, Fiber* f) noexcept {
  w->current = f;
  f->worker = w;
  if (!f->started()) give_stack(w, f);
}

// give_stack() prepares a fiber's first run on worker `w`: it trades the
// stack reserved at spawn for the one this worker released last, which is
// still warm in cache, and builds the context on it.
inline void Runtime::give_stack(Worker* w, Fiber* f) noexcept {
  if (!w->stack_cache.empty()) std::swap(f->stack, w->stack_cache.back());
  StackPool::instance().first_run(f->stack);
#if GORO_ASAN
  // A pooled stack keeps the poisoned redzones of the frames its last fiber
  // never returned from.
  __asan_unpoison_memory_region(f->stack.base, f->stack.size);
#endif
  f->ctx.make(f->stack.base, f->stack.size, &Runtime::fiber_entry);
}

// take_stack() and take_block() serve `w` from its caches, refilled in
// batches; plain threads (w null) go to the pools directly.
inline Stack Runtime::take_stack(Worker* w) {
  if (!w) return StackPool::instance().acquire(config_.stack_size);
  if (w->stack_cache.empty()) {
    StackPool::instance().acquire_batch(config_.stack_size, Worker::kStackCache / 2, w->stack_cache);
  }
  return w->stack_cache.pop();
}

// take_fiber_id() hands out ids from a block reserved per worker, so
// spawning workers do not share the counter's cache line (and pay no locked
// add per fiber). Ids stay unique, not ordered across workers.
inline std::uint64_t Runtime::take_fiber_id(Worker* w) noexcept {
  if (!w) return next_id_.fetch_add(1, std::memory_order_relaxed);
  if (w->next_fiber_id == w->fiber_id_end) {
    w->next_fiber_id = next_id_.fetch_add(Worker::kFiberIdBlock, std::memory_order_relaxed);
    w->fiber_id_end = w->next_fiber_id + Worker::kFiberIdBlock;
  }
  return w->next_fiber_id++;
}

inline void* Runtime::take_block(Worker* w) {
  if (!w) return FiberBlockPool::instance().acquire();
  if (w->block_cache.empty()) FiberBlockPool::instance().refill(w->block_cache, Worker::kBlockCache / 2);
  // The next blocks were most likely freed on another core: ask for them
  // now, so their transfers overlap with filling this one (fiber_block.hpp).
  if (void* const* ahead = w->block_cache.upcoming(kBlockPrefetchDistance)) prefetch_block(*ahead);
  return w->block_cache.pop();
}

inline void Runtime::release_block(Worker* w, void* block) noexcept {
  if (!w) {
    FiberBlockPool::instance().release(block);
    return;
  }
  w->block_cache.push(block);
  if (w->block_cache.size() > Worker::kBlockCache) {
    FiberBlockPool::instance().give_back(w->block_cache, Worker::kBlockCache / 2);
  }
}

// place_in_spawn_tree() records `f`'s depth, and that its spawner now has
// a fiber that may refer to the spawner's frame, for the order in which the
// runtime unwinds its fibers when it stops (unwind_all()). A fiber spawned
// outside any fiber (by a plain thread or a timer) counts as main's.
GORO_ALWAYS_INLINE void Runtime::place_in_spawn_tree(Fiber* f, Worker* w) noexcept {
  if (Fiber* spawner = w ? w->current : nullptr) {
    f->depth = spawner->depth + 1;
    spawner->spawned.store(true, std::memory_order_relaxed);
  } else if (!f->is_main) {
    f->depth = 1;
    if (!spawned_outside_.load(std::memory_order_relaxed)) spawned_outside_.store(true, std::memory_order_relaxed);
  }
}

// register_fiber(), make_runnable(f, w) and wake_idle_worker()'s two checks
// are forced inline: GCC's inlining budget is per translation unit, and a
// program with more goro code in it (a large select) got them as calls,
// 24-41 instructions more per spawn (performance.md, twentieth round).
GORO_ALWAYS_INLINE void Runtime::register_fiber(Fiber* f, Worker* w) noexcept {
  f->shard = w ? w->index : static_cast<std::uint32_t>(workers_.size());
  RegistryShard& shard = shards_[f->shard];
  std::lock_guard guard(shard.lock);
  f->reg_prev = nullptr;
  f->reg_next = shard.head;
  if (shard.head) shard.head->reg_prev = f;
  shard.head = f;
  ++shard.count;
  if (unwind_order_.begun()) [[unlikely]] unwind_order_.note_registered(*f);
}

// unregister_exited() takes the fibers that exited on `w` out of their
// registry shards, one lock per shard for the whole batch, and frees their
// blocks. Deferring this from each exit to a batch matters because a fiber
// usually exits on another worker than the one that spawned it: one locked
// shard per exit bounced that shard's lock and the neighbouring fibers'
// links between the cores (spawn+join: 18% of its time).
inline void Runtime::unregister_exited(Worker* w) noexcept {
  Fiber* pending = w->exited;
  w->exited = nullptr;
  w->exited_count = 0;
  Fiber* freed = nullptr;
  while (pending) {
    const std::uint32_t index = pending->shard;
    RegistryShard& shard = shards_[index];
    std::lock_guard guard(shard.lock);
    for (Fiber** link = &pending; *link;) {
      Fiber* f = *link;
      if (f->shard != index) {
        link = &f->next_runnable;
        continue;
      }
      *link = f->next_runnable;
      if (f->reg_prev) f->reg_prev->reg_next = f->reg_next; else shard.head = f->reg_next;
      if (f->reg_next) f->reg_next->reg_prev = f->reg_prev;
      --shard.count;
      if (unwind_order_.begun()) [[unlikely]] unwind_order_.note_unregistered(*f);
      f->next_runnable = freed;
      freed = f;
    }
  }
  while (freed) {
    Fiber* next = freed->next_runnable;
    freed->~Fiber();
    release_block(w, freed);
    freed = next;
  }
}

// release_fiber() frees an exited fiber's resources; runs on another context.
// Its stack is reused at once; its block once unregister_exited() took it
// out of the registry (at once while the runtime stops, so the unwinder's
// count of live fibers falls as fibers finish).
inline void Runtime::release_fiber(Worker* w, Fiber* f) noexcept {
  if (!f) return;
  Stack stack = f->stack;
  f->ctx.release();
  f->exited.store(true, std::memory_order_relaxed);
  f->next_runnable = w->exited;
  w->exited = f;
  w->stack_cache.push(stack);  // room: trimmed below after every push
  if (w->stack_cache.size() > Worker::kStackCache) {
    StackPool::instance().release_batch(w->stack_cache, Worker::kStackCache / 2);
  }
  if (stopping()) {
    unregister_exited(w);
    // The spawners this exit lets go are claimed here, not by the unwinding
    // thread: a chain of them then unwinds without a thread wake-up a link.
    release_withheld();
    std::lock_guard guard(mutex_);
    cv_.notify_all();
  } else if (++w->exited_count >= Worker::kExitBatch) {
    unregister_exited(w);
  }
}

}  // namespace goro::detail
