// <goro/wait_group.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/wait_group.hpp>

int main() {
  return goro::run([] {
    goro::WaitGroup wg;
    wg.go([] {});
    wg.wait();
    return 0;
  });
}
