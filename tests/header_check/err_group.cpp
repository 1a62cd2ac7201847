// <goro/err_group.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/err_group.hpp>

int main() {
  return goro::run([] {
    goro::ErrGroup g;
    g.go([] {});
    g.wait();
    return 0;
  });
}
