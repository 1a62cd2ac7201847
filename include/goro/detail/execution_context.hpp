// ExecutionContext: one suspended flow of control (a fiber, or a worker
// thread's own stack) and the switch between two of them, on Boost.Context's
// fcontext frames (jump_context.hpp switches them). A switch also carries
// what the C++ runtime and the sanitizers keep per thread but that belongs to
// the flow of control:
//   - errno, so a fiber that migrates keeps the value it set;
//   - the exception-handling globals (caught-exception stack, uncaught count),
//     so `throw;`, std::current_exception() and std::uncaught_exceptions() stay
//     right for a fiber that parks inside a catch block or migrates threads;
//   - ASan's current stack (__sanitizer_start/finish_switch_fiber);
//   - TSan's current fiber (__tsan_switch_to_fiber).
#pragma once

#include <boost/context/detail/fcontext.hpp>
#include <pthread.h>

#include <cerrno>
#include <cstddef>

#include "config.hpp"
#include "jump_context.hpp"

#if GORO_ASAN
#include <sanitizer/asan_interface.h>
#endif
#if GORO_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace goro::detail {

// The libstdc++/libc++abi per-thread exception globals. Reached through an
// asm label rather than <cxxabi.h>, whose declaration is marked `const` and so
// lets the compiler reuse the address across a switch to another thread.
struct CxaEhGlobals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};
extern "C++" CxaEhGlobals* goro_cxa_get_globals() noexcept __asm__("__cxa_get_globals");

// ThreadSwitchState: where the calling OS thread keeps the per-thread state a
// switch carries (the exception globals and errno). Both addresses are fixed
// for a thread's lifetime, so a worker looks them up once instead of calling
// __cxa_get_globals and __errno_location on every switch.
struct ThreadSwitchState {
  CxaEhGlobals* eh = nullptr;
  int* errno_at = nullptr;

  // of_this_thread() must be called on the thread that will switch with it.
  static ThreadSwitchState of_this_thread() noexcept { return {goro_cxa_get_globals(), &errno}; }
};

struct ExecutionContext {
  fctx::fcontext_t fctx = nullptr;
  CxaEhGlobals eh{nullptr, 0};
  int saved_errno = 0;  // errno belongs to the fiber, not the thread it runs on
  const void* stack_bottom = nullptr;  // lowest address, for ASan
  std::size_t stack_size = 0;
#if GORO_ASAN
  void* asan_fake_stack = nullptr;
#endif
#if GORO_TSAN
  void* tsan_fiber = nullptr;
  bool owns_tsan_fiber = false;
#endif

  // adopt_thread() describes the calling thread's own stack.
  void adopt_thread() noexcept {
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
      void* addr = nullptr;
      std::size_t size = 0;
      pthread_attr_getstack(&attr, &addr, &size);
      stack_bottom = addr;
      stack_size = size;
      pthread_attr_destroy(&attr);
    }
#if GORO_TSAN
    tsan_fiber = __tsan_get_current_fiber();
#endif
  }

  // make() prepares a context that will run `entry` on [bottom, bottom+size).
  void make(void* bottom, std::size_t size, void (*entry)(fctx::transfer_t)) noexcept {
    stack_bottom = bottom;
    stack_size = size;
    fctx = fctx::make_fcontext(static_cast<char*>(bottom) + size, size, entry);
#if GORO_TSAN
    tsan_fiber = __tsan_create_fiber(0);
    owns_tsan_fiber = true;
#endif
  }

  // release() frees sanitizer state; called once the context ran for the
  // last time, from another context.
  void release() noexcept {
#if GORO_TSAN
    if (owns_tsan_fiber) __tsan_destroy_fiber(tsan_fiber);
    owns_tsan_fiber = false;
#endif
  }
};

// finish_switch() completes the sanitizers' side of a switch into `self`;
// every context calls it first thing after it starts running or resumes.
inline void finish_switch([[maybe_unused]] ExecutionContext& self) noexcept {
#if GORO_ASAN
  __sanitizer_finish_switch_fiber(self.asan_fake_stack, nullptr, nullptr);
#endif
}

// switch_context() suspends `from` and resumes `to` on the calling thread,
// whose ThreadSwitchState is `here`, handing `data` to it. When `from` is resumed later (perhaps on another
// thread), it returns what its resumer handed over; the resumer's suspended
// fcontext is in the result's `fctx` and must be stored by the caller into the
// resumer's ExecutionContext. `from_exits` says `from` never resumes.
inline fctx::transfer_t switch_context(const ThreadSwitchState& here, ExecutionContext& from,
                                       ExecutionContext& to, void* data,
                                       bool from_exits = false) noexcept {
  from.eh = *here.eh;
  *here.eh = to.eh;
  from.saved_errno = *here.errno_at;
  *here.errno_at = to.saved_errno;
#if GORO_ASAN
  __sanitizer_start_switch_fiber(from_exits ? nullptr : &from.asan_fake_stack, to.stack_bottom,
                                 to.stack_size);
#else
  (void)from_exits;
#endif
#if GORO_TSAN
  __tsan_switch_to_fiber(to.tsan_fiber, 0);
#endif
  fctx::transfer_t t = jump_context(to.fctx, data);
  finish_switch(from);
  return t;
}

}  // namespace goro::detail
