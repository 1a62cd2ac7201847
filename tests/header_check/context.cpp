// <goro/context.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/context.hpp>

#include <chrono>

inline const goro::ContextKey<int> key;

int main() {
  auto [ctx, cancel] = goro::with_cancel(goro::background());
  const goro::Context valued = goro::with_value(ctx, key, 5);
  auto [timed, cancel_timed] = goro::with_timeout(valued, std::chrono::hours(1));
  cancel();
  timed.done().recv();
  cancel_timed();
  const int* p = timed.value(key);
  return (timed.err() == goro::errc::canceled && timed.deadline() && p && *p == 5) ? 0 : 1;
}
