// <goro/sync_map.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/sync_map.hpp>

int main() {
  goro::SyncMap<int, int> m;
  m.store(1, 2);
  auto [v, loaded] = m.load_or_store(1, 3);
  return (loaded && v == 2) ? 0 : 1;
}
