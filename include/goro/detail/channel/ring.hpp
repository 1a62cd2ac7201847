// Ring: the buffer of a buffered channel. A fixed array of `capacity` raw
// slots used as a circular FIFO: no slot is wasted (count_ tells full from
// empty) and no slot is default-constructed (values are placement-new'd in
// and destroyed as they leave). Not thread-safe: the channel's lock guards it.
#pragma once

#include <cstddef>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace goro::detail {

template <class T>
class Ring {
 public:
  // Throws std::length_error, before allocating anything, when `capacity`
  // slots of T cannot be addressed.
  explicit Ring(std::size_t capacity) : capacity_(capacity) {
    check_capacity(capacity);
    if (capacity == 0) return;
    try {
      slots_ = static_cast<T*>(::operator new(capacity * sizeof(T), std::align_val_t{alignof(T)}));
    } catch (const std::bad_alloc&) {
      throw std::length_error("goro::Channel: capacity " + std::to_string(capacity) +
                              " cannot be allocated");
    }
  }

  // check_capacity() throws std::length_error for a buffer no machine can
  // hold (beyond a 47-bit address space), so callers can refuse it before
  // allocating anything.
  static void check_capacity(std::size_t capacity) {
    constexpr std::size_t kMaxBytes = std::size_t{1} << 47;
    if (capacity > kMaxBytes / sizeof(T)) {
      throw std::length_error("goro::Channel: capacity " + std::to_string(capacity) +
                              " is too large");
    }
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  ~Ring() {
    for (; count_ != 0; --count_) {
      slots_[head_].~T();
      if (++head_ == capacity_) head_ = 0;
    }
    if (slots_) ::operator delete(slots_, std::align_val_t{alignof(T)});
  }

  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size() const noexcept { return count_; }
  bool full() const noexcept { return count_ == capacity_; }
  bool empty() const noexcept { return count_ == 0; }

  // push() moves `v` in at the tail; the ring must not be full. If T's move
  // throws, the ring is unchanged.
  void push(T&& v) {
    std::size_t tail = head_ + count_;
    if (tail >= capacity_) tail -= capacity_;
    ::new (static_cast<void*>(slots_ + tail)) T(std::move(v));
    ++count_;
  }
  // pop_into() moves the head straight into `out` (which must be empty):
  // one move, so if T's move throws the head is still in the ring. The ring
  // must not be empty.
  void pop_into(std::optional<T>& out) {
    T* slot = slots_ + head_;
    out.emplace(std::move(*slot));
    slot->~T();
    if (++head_ == capacity_) head_ = 0;
    --count_;
  }

 private:
  T* slots_ = nullptr;
  std::size_t capacity_;
  std::size_t head_ = 0;
  std::size_t count_ = 0;
};

}  // namespace goro::detail
