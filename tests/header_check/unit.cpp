// <goro/unit.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/unit.hpp>

int main() {
  goro::Unit u{};
  (void)u;
  return 0;
}
