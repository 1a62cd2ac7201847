// <goro/atomic_value.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/atomic_value.hpp>

int main() {
  goro::AtomicValue<int> v;
  v.store(3);
  auto p = v.load();
  return (p && *p == 3) ? 0 : 1;
}
