// goro::with_value calls that must not compile (tests/CMakeLists.txt builds
// this file once per GORO_MISUSE value and expects the static_assert's
// message; GORO_MISUSE=0 is the control that must compile).
#include <goro/context.hpp>

#include <string>

#ifndef GORO_MISUSE
#define GORO_MISUSE 0
#endif

inline const goro::ContextKey<std::string> request_id{"request_id"};

void misuse() {
#if GORO_MISUSE == 0
  goro::Context ctx = goro::with_value(goro::background(), request_id, std::string("r-1"));
  (void)ctx.value(request_id);
#elif GORO_MISUSE == 1
  (void)goro::with_value(goro::background(), goro::ContextKey<int>{"tmp"}, 1);  // a temporary key
#endif
}
