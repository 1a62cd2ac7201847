// A buffered channel of messages: sends complete without a receiver until the
// buffer is full.
//
//   messages := make(chan string, 2)
//   messages <- "buffered"
//   messages <- "channel"
//   fmt.Println(len(messages), cap(messages))   // 2 2
//   fmt.Println(<-messages)
//   fmt.Println(<-messages)
#include <goro/goro.hpp>

#include <cstdio>
#include <string>

int main() {
  goro::run([] {
    goro::Channel<std::string> messages(2);  // make(chan string, 2)
    messages.send("buffered");               // no receiver needed: the buffer has room
    messages.send("channel");
    std::printf("%zu %zu\n", messages.size(), messages.capacity());  // len, cap
    std::printf("%s\n", messages.recv()->c_str());  // recv() returns std::optional<std::string>
    std::printf("%s\n", messages.recv()->c_str());
  });
}
