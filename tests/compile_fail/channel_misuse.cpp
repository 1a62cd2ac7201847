// Channel element types, and sends, that must not compile, each with a
// static_assert that says what to write instead (tests/CMakeLists.txt builds this file once
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

struct Base {
  virtual ~Base() = default;
};
struct Derived : Base {};

void misuse() {
#if GORO_MISUSE == 0
  goro::Channel<goro::Unit> signal;
  goro::Channel<std::unique_ptr<int>> owned(1);
  goro::Channel<const int*> pointers(1);
  goro::Channel<std::array<int, 4>> arrays(1);
  goro::Channel<std::reference_wrapper<int>> references(1);
  goro::Channel<std::unique_ptr<Base>> bases(1);
  auto derived = std::make_unique<Derived>();
  (void)bases.try_send(std::unique_ptr<Base>(std::move(derived)));  // the caller made the T
  goro::Channel<long> longs(1);
  (void)longs.try_send(1);  // an int converts by copying
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
#elif GORO_MISUSE == 6
  goro::Channel<std::unique_ptr<Base>> bases(1);
  auto derived = std::make_unique<Derived>();
  (void)bases.try_send(std::move(derived));  // converting would empty `derived` even if nothing is sent
#endif
}
