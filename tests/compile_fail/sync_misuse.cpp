// Sync calls that must not compile, each with a static_assert that says what
// to write instead (tests/CMakeLists.txt builds this file once per
// GORO_MISUSE value and expects that message; GORO_MISUSE=0 is the control
// that must compile).
#include <goro/cond.hpp>

#include <mutex>

#ifndef GORO_MISUSE
#define GORO_MISUSE 0
#endif

void misuse(goro::Mutex& mu, goro::Cond& cond, bool& ready) {
  std::unique_lock lk(mu);
#if GORO_MISUSE == 0
  while (!ready) cond.wait();
  auto pred = [&] { return ready; };
  cond.wait(pred);
  const auto const_pred = [&] { return ready; };
  cond.wait(const_pred);
  int calls = 0;
  auto counting_pred = [&, calls]() mutable { return ++calls > 0 && ready; };
  cond.wait(counting_pred);
  cond.wait([&] { return ready; });
#elif GORO_MISUSE == 1
  cond.wait(lk);  // std::condition_variable's form
#endif
}
