// goro::go calls that must not compile, each with a static_assert that says
// what to write instead (tests/CMakeLists.txt builds this file once per
// GORO_MISUSE value and expects that message; GORO_MISUSE=0 is the control
// that must compile).
#include <goro/runtime.hpp>

#include <functional>
#include <memory>

#ifndef GORO_MISUSE
#define GORO_MISUSE 0
#endif

void misuse() {
  auto owned = std::make_unique<int>(1);
  int shared = 0;
#if GORO_MISUSE == 0
  goro::go([](std::unique_ptr<int>) {}, std::move(owned));
  goro::go([](int& s) { ++s; }, std::ref(shared));
  goro::go([](const int&, int) {}, shared, 2);
  goro::go([owned = std::move(owned)] {});
#elif GORO_MISUSE == 1
  goro::go([](std::unique_ptr<int>) {}, owned);  // a move-only lvalue
#elif GORO_MISUSE == 2
  goro::go([](int& s) { ++s; }, shared);  // T& without std::ref
#elif GORO_MISUSE == 3
  goro::go([](int) {});  // an argument missing
#endif
}
