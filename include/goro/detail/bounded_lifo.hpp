// BoundedLifo: a fixed array used as a stack, for a worker's private caches
// of free fiber stacks (StackCache) and free fiber blocks (FiberBlockCache).
// Pushing back a freed item needs no call and no allocation, batches move
// to and from the process-wide pools as plain copies of the oldest or into
// the free places, and the next items to come out are known in advance (a
// spawner prefetches them). Not thread-safe: one per worker.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>

namespace goro::detail {

template <class T, std::size_t Capacity>
class BoundedLifo {
 public:
  static constexpr std::size_t kCapacity = Capacity;

  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  T& back() noexcept { return items_[size_ - 1]; }
  T* begin() noexcept { return items_.data(); }
  T* end() noexcept { return items_.data() + size_; }

  // push() needs a free place; pop() a non-empty stack.
  void push(const T& item) noexcept { items_[size_++] = item; }
  T pop() noexcept { return items_[--size_]; }
  // upcoming(k) points at the item the (k+1)-th pop() from now returns, or
  // is null when there are not that many.
  const T* upcoming(std::size_t k) const noexcept { return k < size_ ? &items_[size_ - 1 - k] : nullptr; }
  // append() copies [first, last), which must fit in the free places.
  void append(const T* first, const T* last) noexcept {
    std::copy(first, last, end());
    size_ += static_cast<std::size_t>(last - first);
  }
  // drop_front() forgets the oldest `n` items (at most size()).
  void drop_front(std::size_t n) noexcept {
    std::copy(begin() + n, end(), begin());
    size_ -= n;
  }

 private:
  std::array<T, Capacity> items_{};
  std::size_t size_ = 0;
};

}  // namespace goro::detail
