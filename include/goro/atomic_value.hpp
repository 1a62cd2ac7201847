// goro::AtomicValue<T>: Go's atomic.Value / atomic.Pointer[T]. Readers get
// an immutable snapshot (shared_ptr<const T>) without taking any lock;
// writers publish a new one.
//
// Why not std::atomic<std::shared_ptr<const T>>: libstdc++ 12 implements it
// with a spin lock inside the pointer word, so a reader can wait on a
// preempted reader or writer. AtomicValue's load() is lock-free.
//
// Design: split reference counting. The current snapshot lives in a Holder
// (the shared_ptr plus a `returned` counter). `word_` packs the Holder's
// address (low 48 bits) with the number of readers currently borrowing it
// (high 16 bits):
//   load():   fetch_add one borrow on word_ (now the Holder cannot be freed),
//             copy holder->value, then give the borrow back: CAS the count
//             down if word_ still names that Holder; if a writer replaced it
//             meanwhile, the writer took over our borrow and we settle it
//             on holder->returned instead.
//   replace:  exchange word_ for a fresh Holder with zero borrows; the old
//             one had `b` borrows outstanding; subtract b from its
//             `returned`, and each of those b readers adds 1 when it
//             finishes. Whoever brings `returned` to 0 frees it. Before the
//             writer's subtraction `returned` is >= 0 and only grows, so it
//             cannot hit 0 early.
// Every step is a single atomic RMW, so readers never wait for anyone.
// Writers (store/swap/compare_and_swap) serialize on a SpinLock, which also
// makes compare_and_swap's read-compare-replace atomic.
//
// Limits: at most 65,535 threads inside load() on one AtomicValue at the same
// instant (the window is a few instructions; fibers do not count, as load()
// never switches); and Holders must sit below 2^48, true of user-space
// addresses on x86-64 and AArch64 Linux (checked; the process stops with a
// message otherwise).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <utility>

#include "detail/spin_lock.hpp"
#include "runtime.hpp"

namespace goro {

// AtomicValue holds a shared_ptr<const T> that can be read and replaced
// atomically. load() is null until the first store.
//
// Thread-safety: every member is safe from any fiber or thread, concurrently;
// load() is lock-free. The values themselves are immutable (const T).
template <class T>
class AtomicValue {
 public:
  // AtomicValue() holds nothing: load() returns null.
  AtomicValue() : word_(pack(new Holder{})) {}
  // AtomicValue(v) holds v.
  explicit AtomicValue(T initial) : word_(pack(new Holder{std::make_shared<const T>(std::move(initial))})) {}
  ~AtomicValue() { delete holder_of(word_.load(std::memory_order_acquire)); }
  AtomicValue(const AtomicValue&) = delete;
  AtomicValue& operator=(const AtomicValue&) = delete;

  // load() returns the current value (null before the first store). The
  // snapshot stays valid, unchanged, however long it is kept.
  std::shared_ptr<const T> load() const;
  // store() makes `v` the current value.
  void store(T v) { replace(std::make_shared<const T>(std::move(v))); }
  void store(std::shared_ptr<const T> v) { replace(std::move(v)); }
  // swap() makes `v` the current value and returns the previous one.
  std::shared_ptr<const T> swap(T v) { return replace(std::make_shared<const T>(std::move(v))); }
  std::shared_ptr<const T> swap(std::shared_ptr<const T> v) { return replace(std::move(v)); }
  // compare_and_swap() makes `desired` the current value if the current one
  // is `expected` (the same object, compared by address; null matches
  // null), and returns whether it did.
  bool compare_and_swap(const std::shared_ptr<const T>& expected, T desired);
  bool compare_and_swap(const std::shared_ptr<const T>& expected, std::shared_ptr<const T> desired);

 private:
  struct Holder {
    std::shared_ptr<const T> value;
    std::atomic<std::int64_t> returned{0};  // borrows settled after the Holder was replaced
  };

  static constexpr int kBorrowShift = 48;
  static constexpr std::uint64_t kOneBorrow = std::uint64_t{1} << kBorrowShift;
  static constexpr std::uint64_t kAddressMask = kOneBorrow - 1;

  static std::uint64_t pack(Holder* h) {
    auto address = reinterpret_cast<std::uintptr_t>(h);
    if (address & ~kAddressMask) {
      std::fputs("goro: fatal error: AtomicValue holder above 2^48; this platform is not supported\n", stderr);
      std::abort();
    }
    return address;
  }
  static Holder* holder_of(std::uint64_t word) noexcept { return reinterpret_cast<Holder*>(word & kAddressMask); }
  static std::int64_t borrows_of(std::uint64_t word) noexcept { return static_cast<std::int64_t>(word >> kBorrowShift); }

  // replace() installs `v` and returns the old value.
  std::shared_ptr<const T> replace(std::shared_ptr<const T> v);
  // install_locked() publishes `fresh` (writer_ held) and retires the old Holder.
  std::shared_ptr<const T> install_locked(Holder* fresh);
  // settle() ends a replaced Holder's life once its borrows are all returned.
  static void settle(Holder* h, std::int64_t delta) noexcept {
    if (h->returned.fetch_add(delta, std::memory_order_acq_rel) + delta == 0) delete h;
  }

  mutable std::atomic<std::uint64_t> word_;
  detail::SpinLock writer_;
};

// ---------------------------------------------------------------------------

template <class T>
std::shared_ptr<const T> AtomicValue<T>::load() const {
  detail::note_goro_use();
  std::uint64_t word = word_.fetch_add(kOneBorrow, std::memory_order_acquire) + kOneBorrow;
  Holder* h = holder_of(word);
  std::shared_ptr<const T> result = h->value;  // h stays alive while we borrow it
  for (;;) {
    if (holder_of(word) != h) {
      settle(h, 1);  // replaced: the writer counted our borrow against `returned`
      break;
    }
    if (word_.compare_exchange_weak(word, word - kOneBorrow, std::memory_order_release,
                                    std::memory_order_relaxed)) {
      break;
    }
  }
  return result;
}

template <class T>
std::shared_ptr<const T> AtomicValue<T>::replace(std::shared_ptr<const T> v) {
  detail::note_goro_use();
  Holder* fresh = new Holder{std::move(v)};  // allocated before taking the spin lock
  std::lock_guard guard(writer_);
  return install_locked(fresh);
}

template <class T>
std::shared_ptr<const T> AtomicValue<T>::install_locked(Holder* fresh) {
  std::uint64_t old = word_.exchange(pack(fresh), std::memory_order_acq_rel);
  Holder* h = holder_of(old);
  std::shared_ptr<const T> previous = h->value;  // a copy: borrowers may still be reading it
  settle(h, -borrows_of(old));
  return previous;
}

template <class T>
bool AtomicValue<T>::compare_and_swap(const std::shared_ptr<const T>& expected, T desired) {
  return compare_and_swap(expected, std::make_shared<const T>(std::move(desired)));
}

template <class T>
bool AtomicValue<T>::compare_and_swap(const std::shared_ptr<const T>& expected,
                                      std::shared_ptr<const T> desired) {
  detail::note_goro_use();
  std::unique_ptr<Holder> fresh(new Holder{std::move(desired)});
  std::lock_guard guard(writer_);
  // Only writers replace the Holder, so the current one is stable here.
  if (holder_of(word_.load(std::memory_order_acquire))->value.get() != expected.get()) return false;
  install_locked(fresh.release());
  return true;
}

}  // namespace goro
