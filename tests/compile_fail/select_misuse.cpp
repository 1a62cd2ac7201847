// Misuse of goro::select that must not compile (tests/CMakeLists.txt builds
// this file once per GORO_MISUSE value and expects failure; GORO_MISUSE=0 is
// the control that must compile, so a typo cannot pass as "failed").
#include <goro/select.hpp>

#include <chrono>
#include <memory>
#include <optional>

#ifndef GORO_MISUSE
#define GORO_MISUSE 0
#endif

struct NoDefault {
  explicit NoDefault(int) {}
};
struct Base {
  virtual ~Base() = default;
};
struct Derived : Base {};

void misuse(goro::Channel<int> c, goro::RecvChannel<int> r, goro::Channel<NoDefault> nd) {
  using namespace std::chrono_literals;
#if GORO_MISUSE == 0
  goro::select(goro::recv(c), goro::default_case());
  goro::select(goro::recv(c), goro::timeout(1ms));
  goro::select(goro::recv(r), goro::send(c, 1));
  goro::select(goro::recv(nd, [](std::optional<NoDefault>) {}), goro::recv(nd));
  int v = 1;
  auto kept = goro::send(c, v);  // refers to a named variable: may be kept
  goro::select(kept);
  goro::select(goro::send(c, 2));  // refers to the rvalue, passed straight in
  goro::select(goro::send(c, 2L), goro::default_case());  // a long converts by copying
  goro::Channel<std::unique_ptr<Base>> bases;
  goro::select(goro::send(bases, std::unique_ptr<Base>(std::make_unique<Derived>())), goro::default_case());
#elif GORO_MISUSE == 1
  goro::select(goro::recv(c), goro::timeout(1ms), goro::default_case());  // timeout and default
#elif GORO_MISUSE == 2
  goro::select(goro::recv(c), goro::default_case(), goro::default_case());  // two defaults
#elif GORO_MISUSE == 3
  goro::select(goro::recv(c), goro::timeout(1ms), goro::timeout(2ms));  // two timeouts
#elif GORO_MISUSE == 4
  goro::select(goro::send(r, 1));  // send on a receive-only channel
#elif GORO_MISUSE == 5
  goro::select(goro::recv(nd, [](NoDefault) {}));  // no T{} for a closed channel
#elif GORO_MISUSE == 6
  auto dangling = goro::send(c, 2);  // refers to the temporary 2, gone by the next line
  goro::select(dangling);
#elif GORO_MISUSE == 7
  goro::Channel<std::unique_ptr<Base>> bases;
  auto derived = std::make_unique<Derived>();
  goro::select(goro::send(bases, std::move(derived)), goro::default_case());  // would empty it even if it loses
#endif
}
