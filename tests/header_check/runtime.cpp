// <goro/runtime.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/runtime.hpp>

int main() {
  return goro::run([] {
    goro::this_fiber::yield();
    goro::this_fiber::sleep_for(std::chrono::milliseconds(1));
    return 0;
  });
}
