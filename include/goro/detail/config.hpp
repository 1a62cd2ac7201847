// Build configuration shared by goro's internals: sanitizer detection and
// small portability helpers.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define GORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GORO_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define GORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GORO_TSAN 1
#endif
#endif

#ifndef GORO_ASAN
#define GORO_ASAN 0
#endif
#ifndef GORO_TSAN
#define GORO_TSAN 0
#endif

// Functions that read thread-local state are kept out of line: a fiber may
// resume on another worker thread, and an inlined thread_local access lets the
// compiler reuse the address it computed before the switch.
#define GORO_NOINLINE __attribute__((noinline))
// A helper that must cost nothing over writing its body at each call site
// (channel parking, shared by send and receive).
#define GORO_ALWAYS_INLINE __attribute__((always_inline)) inline

#if defined(__x86_64__) || defined(__i386__)
#define GORO_CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define GORO_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define GORO_CPU_RELAX() ((void)0)
#endif
