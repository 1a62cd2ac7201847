// <goro/cond.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/cond.hpp>

int main() {
  goro::Mutex m;
  goro::Cond c(m);
  c.signal();
  c.broadcast();
  return 0;
}
