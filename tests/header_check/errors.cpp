// <goro/errors.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/errors.hpp>

int main() {
  try {
    throw goro::channel_closed("x");
  } catch (const std::logic_error&) {
    return 0;
  }
}
