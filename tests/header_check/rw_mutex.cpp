// <goro/rw_mutex.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/rw_mutex.hpp>

int main() {
  goro::RWMutex m;
  { std::shared_lock g(m); }
  { std::unique_lock g(m); }
  return 0;
}
