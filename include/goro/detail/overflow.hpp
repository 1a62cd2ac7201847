// Stack overflow detection. A fiber that runs off its guarded stack touches
// the PROT_NONE page below it; the SIGSEGV handler, running on the worker's
// alternate signal stack, recognises the address and stops the program with
// a message naming the fiber and its stack size. A fault anywhere else is
// passed on to the handler that was installed before goro's. Unguarded
// stacks (beyond the mapping budget, see stack.hpp) are checked at each
// switch instead: a saved stack pointer below the stack stops the program.
// An unguarded overflow that faults before its next switch (it ran through
// the stacks below it into memory that is not writable) is recognised by
// the handler as well: the fault is at the faulting thread's stack pointer,
// and that pointer is below the running fiber's stack.
#pragma once

#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "stack.hpp"

namespace goro::detail {

// Defined in scheduler.hpp: what runs on the faulting thread.
struct FiberIdentity {
  const Stack* stack;
  std::uint64_t id;
};
FiberIdentity current_fiber_identity() noexcept;

// Async-signal-safe formatting of an unsigned number.
inline char* format_unsigned(char* out, std::uint64_t v) noexcept {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *out++ = digits[--n];
  return out;
}

// Where an overflow was seen, for its message.
enum class OverflowSeen { guard_page, switch_below_stack, fault_below_stack };

[[noreturn]] inline void report_overflow_and_die(std::uint64_t fiber_id, std::size_t stack_size,
                                                 OverflowSeen seen) noexcept {
  char msg[256];
  char* p = msg;
  auto put = [&](const char* s) {
    std::size_t n = std::strlen(s);
    std::memcpy(p, s, n);
    p += n;
  };
  put("goro: fatal error: stack overflow in fiber ");
  p = format_unsigned(p, fiber_id);
  put(" (stack size ");
  p = format_unsigned(p, stack_size);
  put(seen == OverflowSeen::guard_page           ? " bytes; hit the guard page)\n"
      : seen == OverflowSeen::switch_below_stack ? " bytes; stack pointer below the stack at a switch)\n"
                                                 : " bytes; stack pointer below the stack at a fault)\n");
  ssize_t ignored = ::write(STDERR_FILENO, msg, static_cast<std::size_t>(p - msg));
  (void)ignored;
  std::abort();
}

inline struct sigaction g_previous_segv{};

// interrupted_stack_pointer() is the stack pointer of the code the signal
// interrupted, or null where goro does not know the machine's context.
inline const char* interrupted_stack_pointer(void* uctx) noexcept {
  const auto* context = static_cast<const ucontext_t*>(uctx);
#if defined(__x86_64__)
  return reinterpret_cast<const char*>(context->uc_mcontext.gregs[REG_RSP]);
#elif defined(__aarch64__)
  return reinterpret_cast<const char*>(context->uc_mcontext.sp);
#else
  (void)context;
  return nullptr;
#endif
}

// overflowed_at_fault() says whether a fault at `addr` on the fiber running
// on `stack` is that fiber overflowing: for a guarded stack, the address is
// in or just below the guard page; for an unguarded one, the fault is
// within 64 KiB of a stack pointer that is below the stack (a null pointer
// or a wild write elsewhere is not, even if the fiber also overflowed).
inline bool overflowed_at_fault(const Stack& stack, const char* addr, void* uctx) noexcept {
  constexpr std::size_t kReach = 64 * 1024;
  if (stack.guarded) {
    const char* guard = stack.base - page_size();
    return addr >= guard - kReach && addr < stack.base;
  }
  const char* sp = interrupted_stack_pointer(uctx);
  if (!sp || sp >= stack.base) return false;
  const auto at = reinterpret_cast<std::uintptr_t>(addr), below = reinterpret_cast<std::uintptr_t>(sp);
  return (at >= below ? at - below : below - at) < kReach;
}

inline void segv_handler(int sig, siginfo_t* info, void* uctx) {
  FiberIdentity who = current_fiber_identity();
  if (who.stack && overflowed_at_fault(*who.stack, static_cast<const char*>(info->si_addr), uctx)) {
    report_overflow_and_die(who.id, who.stack->size,
                            who.stack->guarded ? OverflowSeen::guard_page : OverflowSeen::fault_below_stack);
  }
  // Not ours: hand over to whoever was there before.
  if (g_previous_segv.sa_flags & SA_SIGINFO) {
    if (g_previous_segv.sa_sigaction) {
      g_previous_segv.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (g_previous_segv.sa_handler != SIG_DFL && g_previous_segv.sa_handler != SIG_IGN) {
    g_previous_segv.sa_handler(sig);
    return;
  }
  ::signal(sig, SIG_DFL);  // the fault repeats and kills the process as usual
}

// install_overflow_handler() installs the SIGSEGV handler once per process.
inline void install_overflow_handler() noexcept {
  static const bool installed = [] {
    struct sigaction sa {};
    sa.sa_sigaction = &segv_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    return true;
  }();
  (void)installed;
}

// AltSignalStack gives a worker thread a signal stack, so the handler can run
// when the fault is an exhausted stack. Owned by its worker thread.
class AltSignalStack {
 public:
  static constexpr std::size_t kSize = 64 * 1024;
  void install() noexcept {
    memory_ = std::malloc(kSize);
    if (!memory_) return;
    stack_t ss{};
    ss.ss_sp = memory_;
    ss.ss_size = kSize;
    sigaltstack(&ss, nullptr);
  }
  void remove() noexcept {
    if (!memory_) return;
    stack_t ss{};
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, nullptr);
    std::free(memory_);
    memory_ = nullptr;
  }

 private:
  void* memory_ = nullptr;
};

}  // namespace goro::detail
