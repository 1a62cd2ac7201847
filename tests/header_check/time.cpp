// <goro/time.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/time.hpp>

#include <chrono>

int main() {
  using namespace std::chrono_literals;
  return goro::run([] {
    goro::Timer t(1ms);
    t.channel().recv();
    const bool was_active = t.reset(1h);
    const bool stopped = t.stop();
    goro::Ticker k(1ms);
    k.channel().recv();
    k.stop();
    goro::after(1ms).recv();
    return (!was_active && stopped) ? 0 : 1;
  });
}
