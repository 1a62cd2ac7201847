// <goro/channel.hpp> alone, in user code: it must compile without any other goro
// header and without warnings (tests/CMakeLists.txt, goro_header_check).
#include <goro/channel.hpp>

#include <memory>

int main() {
  goro::Channel<std::unique_ptr<int>> ch(2);
  goro::SendChannel<std::unique_ptr<int>> out = ch;
  goro::RecvChannel<std::unique_ptr<int>> in = ch;
  out.send(std::make_unique<int>(1));
  auto extra = std::make_unique<int>(2);
  const bool sent = out.try_send(std::move(extra));
  out.close();
  int sum = 0;
  for (auto&& v : in) sum += *v;
  return (sent && sum == 3 && !ch.try_recv() && ch.capacity() == 2 && ch.size() == 0) ? 0 : 1;
}
