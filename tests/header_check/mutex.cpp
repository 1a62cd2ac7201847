// <goro/mutex.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/mutex.hpp>

int main() {
  goro::Mutex m;
  { std::lock_guard g(m); }
  if (!m.try_lock()) return 1;
  m.unlock();
  return 0;
}
