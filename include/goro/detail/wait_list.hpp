// WaitList: a FIFO of parked waiters for the sync primitives (WaitGroup,
// Mutex, Cond, Semaphore, ...). Nodes live on the waiters' stacks; the list is
// guarded by its owner's lock, and so is each node's `queued` flag.
//
// A node popped by a waker whose claim fails (its owner was unwound or timed
// out) is simply dropped: its owner will see `queued == false` and not touch
// the list again.
#pragma once

#include <cstddef>

#include "parker.hpp"

namespace goro::detail {

class WaitList {
 public:
  struct Node {
    Parker::Ticket ticket{};
    Node* prev = nullptr;
    Node* next = nullptr;
    bool queued = false;
    std::int64_t weight = 0;  // for primitives that wait for an amount
  };

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  Node* front() const noexcept { return head_; }

  void push(Node* n) noexcept {
    n->prev = tail_;
    n->next = nullptr;
    if (tail_) tail_->next = n; else head_ = n;
    tail_ = n;
    n->queued = true;
    ++size_;
  }

  // remove() unlinks `n` if it is still queued; returns whether it was.
  bool remove(Node* n) noexcept {
    if (!n->queued) return false;
    if (n->prev) n->prev->next = n->next; else head_ = n->next;
    if (n->next) n->next->prev = n->prev; else tail_ = n->prev;
    n->queued = false;
    --size_;
    return true;
  }

  Node* pop_front() noexcept {
    Node* n = head_;
    if (n) remove(n);
    return n;
  }

  // claim_one() pops waiters until one is claimed (queued on `wake`) and
  // returns it, or returns null when the list runs out.
  Node* claim_one(WakeList& wake) noexcept {
    while (Node* n = pop_front()) {
      if (wake.add_if_claimed(n->ticket)) return n;
    }
    return nullptr;
  }

  // claim_all() pops every waiter and claims those still waiting; returns
  // how many nodes were popped.
  std::size_t claim_all(WakeList& wake) noexcept {
    std::size_t popped = 0;
    while (Node* n = pop_front()) {
      wake.add_if_claimed(n->ticket);
      ++popped;
    }
    return popped;
  }

 private:
  Node* head_ = nullptr;
  Node* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace goro::detail
