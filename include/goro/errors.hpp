// goro's exception types. A Go panic for API misuse becomes one of these.
#pragma once

#include <stdexcept>
#include <string>

namespace goro {

// channel_closed is thrown by a send on a closed channel and by closing a
// channel twice.
class channel_closed : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

// deadlock_error is thrown by run() when every fiber is blocked and nothing
// can wake any of them. what() starts with "all fibers are asleep - deadlock!"
// and lists each blocked fiber with what it waits on.
class deadlock_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// leak_error is thrown by run() under Options::fail_on_leak when fibers were
// still alive after main returned; what() says how many and where they were.
class leak_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace goro
