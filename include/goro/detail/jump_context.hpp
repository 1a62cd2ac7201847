// jump_context(): the machine-level switch between two fcontext frames.
//
// Boost.Context makes the frames (make_fcontext) and, off x86-64, switches
// them too. On x86-64 System V, goro switches with its own copy of Boost's
// jump_fcontext that differs in three ways, each measured on goro's
// unbuffered ping-pong (two switches per round trip, interleaved A/B):
//   - it returns into the resumed context with `ret` instead of `jmp *%r8`.
//     Every switch enters through a `call`; Boost's indirect jump leaves that
//     call's entry on the CPU's return-stack predictor, so every `ret` on the
//     way out of the resumed fiber (park, send, recv...) is mispredicted until
//     the predictor drains. With `ret` the predictor stays balanced:
//     128 -> 101 ns per round trip;
//   - it leaves MXCSR and the x87 control word alone. Saving them is cheap,
//     restoring them (ldmxcsr, fldcw) is serializing: about 5% of the round
//     trip. The floating-point environment therefore belongs to the worker
//     thread, as in Go: a fiber that changes the rounding mode or exception
//     masks must restore them before it can block or yield;
//   - it is a hidden symbol in every binary that includes goro, so the call
//     does not go through the PLT into libboost_context.
//
// Frame layout (Boost's, which make_fcontext writes and this reads):
//   0x00 MXCSR, x87 control word (written by make_fcontext, never read here)
//   0x08 r12, 0x10 r13, 0x18 r14, 0x20 r15, 0x28 rbx, 0x30 rbp
//   0x38 return address (make_fcontext's trampoline for a fresh frame)
// On return, the resumed side gets {suspended frame of the caller, data} in
// rax:rdx (a fresh frame's entry gets them in rdi:rsi via the trampoline).
//
// Define GORO_BOOST_JUMP to use Boost's jump_fcontext everywhere.
#pragma once

#include <boost/context/detail/fcontext.hpp>

namespace goro::detail {

namespace fctx = boost::context::detail;

#if defined(__x86_64__) && defined(__ELF__) && !defined(_WIN32) && !defined(GORO_BOOST_JUMP)

extern "C" fctx::transfer_t goro_jump_context(fctx::fcontext_t to, void* data) noexcept;

// One copy per binary: a weak, hidden definition in a COMDAT group, as the
// compiler emits for an inline function.
__asm__(
    ".pushsection .text.goro_jump_context,\"axG\",@progbits,goro_jump_context,comdat\n"
    ".weak goro_jump_context\n"
    ".hidden goro_jump_context\n"
    ".type goro_jump_context,@function\n"
    ".p2align 4\n"
    "goro_jump_context:\n"
    "  leaq -0x38(%rsp), %rsp\n"  // the return address of our call sits at 0x38
    "  movq %r12, 0x08(%rsp)\n"
    "  movq %r13, 0x10(%rsp)\n"
    "  movq %r14, 0x18(%rsp)\n"
    "  movq %r15, 0x20(%rsp)\n"
    "  movq %rbx, 0x28(%rsp)\n"
    "  movq %rbp, 0x30(%rsp)\n"
    "  movq %rsp, %rax\n"  // the suspended frame, handed to the resumed side
    "  movq %rdi, %rsp\n"
    "  movq 0x08(%rsp), %r12\n"
    "  movq 0x10(%rsp), %r13\n"
    "  movq 0x18(%rsp), %r14\n"
    "  movq 0x20(%rsp), %r15\n"
    "  movq 0x28(%rsp), %rbx\n"
    "  movq 0x30(%rsp), %rbp\n"
    "  leaq 0x38(%rsp), %rsp\n"
    "  movq %rsi, %rdx\n"  // transfer_t{rax, rdx} for a resumed call...
    "  movq %rax, %rdi\n"  // ...and {rdi, rsi} for a fresh frame's entry
    "  ret\n"
    ".size goro_jump_context, .-goro_jump_context\n"
    ".popsection\n");

// jump_context() suspends the calling context and resumes the frame `to`,
// handing it `data`; returns, once something resumes this context, the
// frame that did and the data it handed over.
inline fctx::transfer_t jump_context(fctx::fcontext_t to, void* data) noexcept {
  return goro_jump_context(to, data);
}

#else

inline fctx::transfer_t jump_context(fctx::fcontext_t to, void* data) noexcept {
  return fctx::jump_fcontext(to, data);
}

#endif

}  // namespace goro::detail
