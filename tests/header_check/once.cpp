// <goro/once.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/once.hpp>

int main() {
  goro::Once o;
  int n = 0;
  o.call([&] { ++n; });
  o.call([&] { ++n; });
  return n == 1 ? 0 : 1;
}
