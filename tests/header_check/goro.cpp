// <goro/goro.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/goro.hpp>

int main() {
  return goro::run([] {
    goro::Channel<int> ch;
    goro::go([ch]() mutable { ch.send(1); });
    return *ch.recv() - 1;
  });
}
