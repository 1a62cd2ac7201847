// Channel element types that must not compile, each with a static_assert
// that says what to write instead (tests/CMakeLists.txt builds this file once
// per GORO_MISUSE value and expects that message; GORO_MISUSE=0 is the
// control that must compile).
#include <goro/channel.hpp>

#include <array>
#include <functional>
#include <memory>
#include <mutex>

#ifndef GORO_MISUSE
#define GORO_MISUSE 0
#endif

void misuse() {
#if GORO_MISUSE == 0
  goro::Channel<goro::Unit> signal;
  goro::Channel<std::unique_ptr<int>> owned(1);
  goro::Channel<const int*> pointers(1);
  goro::Channel<std::array<int, 4>> arrays(1);
  goro::Channel<std::reference_wrapper<int>> references(1);
#elif GORO_MISUSE == 1
  goro::Channel<int&> c;
#elif GORO_MISUSE == 2
  goro::Channel<const int> c;
#elif GORO_MISUSE == 3
  goro::Channel<int[4]> c;
#elif GORO_MISUSE == 4
  goro::Channel<void> c;
#elif GORO_MISUSE == 5
  goro::Channel<std::mutex> c;
#endif
}
