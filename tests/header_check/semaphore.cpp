// <goro/semaphore.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/semaphore.hpp>

int main() {
  goro::Semaphore s(2);
  s.acquire();
  bool ok = s.try_acquire();
  s.release(2);
  return ok ? 0 : 1;
}
