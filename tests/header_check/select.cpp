// <goro/select.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/select.hpp>

#include <chrono>
#include <optional>
#include <span>
#include <vector>

int main() {
  goro::Channel<int> a(1), b(1);
  a.send(2);
  int got = 0;
  const std::size_t first =
      goro::select(goro::recv(a, [&](int v) { got = v; }), goro::default_case());
  const std::size_t second =
      goro::select(goro::send(b, 3), goro::timeout(std::chrono::milliseconds(1)));
  const std::size_t third =
      goro::select(goro::recv(b, [&](std::optional<int> v) { got += v.value_or(0); }));
  std::vector<goro::SelectCase> cases;
  cases.emplace_back(goro::recv(a));
  cases.emplace_back(goro::default_case());
  const std::size_t fourth = goro::select(std::span<goro::SelectCase>(cases));
  return (first == 0 && second == 0 && third == 0 && fourth == 1 && got == 5) ? 0 : 1;
}
