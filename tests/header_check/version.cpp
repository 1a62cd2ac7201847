// <goro/version.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/version.hpp>

#include <cstdio>
#if GORO_VERSION < 100
#error old
#endif
int main() {
  std::printf("%s %d.%d.%d\n", GORO_VERSION_STRING, GORO_VERSION_MAJOR, GORO_VERSION_MINOR,
              GORO_VERSION_PATCH);
  return 0;
}
