// goro::SyncMap<K, V>: Go's sync.Map, a concurrent map for read-mostly use
// (caches that only grow, entries written once and read many times).
//
// Design. One std::unordered_map guarded by a detail::ReadMostlyLock: every
// read (load, and the read-first step of load_or_store / erase /
// load_and_delete) takes only the read side, which touches a per-thread
// cache line, so readers on different threads never contend with each
// other; writers are exclusive and wait only for readers already inside.
// That is a different trade-off from Go's (an immutable read map plus a
// locked dirty map), with the same effect where it matters: loads do not
// serialize, and a key that is present costs no write-side lock to look up.
// Stores are dearer than with a plain mutex-protected map (a writer scans
// every reader slot), so for write-heavy maps use Mutex + unordered_map.
//
// Values are copied out (load returns std::optional<V>); store a
// std::shared_ptr<const X> as V when copying X is costly. No lock is held
// while user code other than K's and V's own copy/move, hash and equality
// runs: range() calls f on a snapshot, so f may call any method of the map.
// Those K/V operations must not block (park) or re-enter the map.
//
// Exceptions. A call that throws (a copy or move of K or V, V's ==, an
// allocation) leaves the map as it was, provided a move that throws leaves
// its source as it was (what goro assumes of every type: see
// docs/channels.md) and Hash and KeyEqual do not throw for a key they have
// already handled. Every step that may throw comes before the first change
// to the map; the changes themselves move no V (nodes trade places) or use
// only V's noexcept moves, and load_or_store() takes its value back out if
// copying the result fails.
#pragma once

#include <concepts>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "detail/read_mostly_lock.hpp"
#include "runtime.hpp"

namespace goro {

// SyncMap is a map safe for concurrent use, optimized for loads.
//
// Thread-safety: every member is safe from any fiber or thread, concurrently.
// Exception safety: strong (a call that throws changes nothing; see above).
template <class K, class V, class Hash = std::hash<K>, class KeyEqual = std::equal_to<K>>
class SyncMap {
 public:
  using key_type = K;
  using mapped_type = V;

  SyncMap() = default;
  SyncMap(const SyncMap&) = delete;
  SyncMap& operator=(const SyncMap&) = delete;

  // load() returns a copy of the value stored for `key`, or std::nullopt.
  std::optional<V> load(const K& key) const;
  // store() sets the value for `key`.
  void store(const K& key, V value);
  // load_or_store() returns the existing value for `key` and true if there
  // is one; otherwise it stores `value` and returns it and false.
  std::pair<V, bool> load_or_store(const K& key, V value);
  // load_and_delete() removes `key`, returning its value if it was present.
  std::optional<V> load_and_delete(const K& key);
  // erase() removes `key` (Go's Delete); absent keys are fine.
  void erase(const K& key);
  // swap() stores `value` for `key` and returns the previous value, if any.
  std::optional<V> swap(const K& key, V value);
  // compare_and_swap() replaces the value for `key` with `desired` if it
  // equals `expected`; returns whether it did.
  bool compare_and_swap(const K& key, const V& expected, V desired)
    requires std::equality_comparable<V>;
  // compare_and_delete() removes `key` if its value equals `expected`.
  bool compare_and_delete(const K& key, const V& expected)
    requires std::equality_comparable<V>;
  // range() calls f(key, value) for each entry until f returns false. It
  // works on a snapshot taken at the call (O(size) copies): f sees no entry
  // twice, may call any method of the map, and does not see its own changes.
  template <class F>
  void range(F&& f) const;
  // clear() removes every entry.
  void clear();

 private:
  using ReadGuard = detail::ReadMostlyLock::ReadGuard;

  // if_value_equals() runs apply(it) under the write lock when `key` holds
  // `expected`. It checks under the read lock first, so a failing
  // compare-and-X does not contend with readers.
  template <class Apply>
  bool if_value_equals(const K& key, const V& expected, Apply&& apply);

  using Map = std::unordered_map<K, V, Hash, KeyEqual>;
  // replace() gives the entry at `it` the value `value`, first moving the
  // old value into *previous if `previous` is not null; lock_ must be held
  // for writing. If it throws, the entry (and *previous) are unchanged. V
  // need not be assignable (a struct with a const member).
  void replace(typename Map::iterator it, V&& value, std::optional<V>* previous = nullptr);

  mutable detail::ReadMostlyLock lock_;
  Map map_;  // guarded by lock_
};

// ---------------------------------------------------------------------------

template <class K, class V, class H, class E>
std::optional<V> SyncMap<K, V, H, E>::load(const K& key) const {
  detail::note_goro_use();
  ReadGuard guard(lock_);
  auto it = map_.find(key);
  if (it == map_.end()) return std::nullopt;
  return it->second;
}

template <class K, class V, class H, class E>
void SyncMap<K, V, H, E>::replace(typename Map::iterator it, V&& value, std::optional<V>* previous) {
  if constexpr (std::is_nothrow_move_assignable_v<V> && std::is_nothrow_move_constructible_v<V>) {
    if (previous) previous->emplace(std::move(it->second));
    it->second = std::move(value);
  } else {
    // Whatever may throw comes first: the new value is built in a node of
    // its own, then the old value is moved out (a move that throws leaves
    // its source as it was). Then the nodes trade places, moving no V; map_
    // has just lost an entry, so the insertion cannot rehash.
    Map staging;
    auto fresh = staging.emplace(it->first, std::move(value)).first;
    if (previous) previous->emplace(std::move(it->second));
    map_.erase(it);
    map_.insert(staging.extract(fresh));
  }
}

template <class K, class V, class H, class E>
void SyncMap<K, V, H, E>::store(const K& key, V value) {
  detail::note_goro_use();
  std::lock_guard guard(lock_);
  auto [it, inserted] = map_.try_emplace(key, std::move(value));
  if (!inserted) replace(it, std::move(value));  // try_emplace left `value` alone: the key existed
}

template <class K, class V, class H, class E>
std::pair<V, bool> SyncMap<K, V, H, E>::load_or_store(const K& key, V value) {
  detail::note_goro_use();
  {
    ReadGuard guard(lock_);
    auto it = map_.find(key);
    if (it != map_.end()) return {it->second, true};
  }
  std::lock_guard guard(lock_);
  auto [it, inserted] = map_.try_emplace(key, std::move(value));
  if (!inserted) return {it->second, true};
  try {
    return {it->second, false};
  } catch (...) {  // copying the result failed: take the value back out, as if never stored
    map_.erase(it);
    throw;
  }
}

template <class K, class V, class H, class E>
std::optional<V> SyncMap<K, V, H, E>::load_and_delete(const K& key) {
  detail::note_goro_use();
  // `out` is every path's return value, so it is constructed in place
  // (NRVO) and no V is moved after the entry is erased.
  std::optional<V> out;
  {
    ReadGuard guard(lock_);
    if (map_.find(key) == map_.end()) return out;
  }
  std::lock_guard guard(lock_);
  auto it = map_.find(key);
  if (it == map_.end()) return out;
  out.emplace(std::move(it->second));  // if this throws, the entry is intact
  map_.erase(it);
  return out;
}

template <class K, class V, class H, class E>
void SyncMap<K, V, H, E>::erase(const K& key) {
  detail::note_goro_use();
  {
    ReadGuard guard(lock_);
    if (map_.find(key) == map_.end()) return;
  }
  std::lock_guard guard(lock_);
  map_.erase(key);
}

template <class K, class V, class H, class E>
std::optional<V> SyncMap<K, V, H, E>::swap(const K& key, V value) {
  detail::note_goro_use();
  // `previous` is every path's return value (NRVO): no V is moved after
  // the map has changed.
  std::optional<V> previous;
  std::lock_guard guard(lock_);
  auto [it, inserted] = map_.try_emplace(key, std::move(value));
  if (!inserted) replace(it, std::move(value), &previous);  // try_emplace left `value` alone: the key existed
  return previous;
}

template <class K, class V, class H, class E>
template <class Apply>
bool SyncMap<K, V, H, E>::if_value_equals(const K& key, const V& expected, Apply&& apply) {
  detail::note_goro_use();
  {
    ReadGuard guard(lock_);
    auto it = map_.find(key);
    if (it == map_.end() || !(it->second == expected)) return false;
  }
  std::lock_guard guard(lock_);
  auto it = map_.find(key);
  if (it == map_.end() || !(it->second == expected)) return false;
  apply(it);
  return true;
}

template <class K, class V, class H, class E>
bool SyncMap<K, V, H, E>::compare_and_swap(const K& key, const V& expected, V desired)
  requires std::equality_comparable<V>
{
  return if_value_equals(key, expected, [&](auto it) { replace(it, std::move(desired)); });
}

template <class K, class V, class H, class E>
bool SyncMap<K, V, H, E>::compare_and_delete(const K& key, const V& expected)
  requires std::equality_comparable<V>
{
  return if_value_equals(key, expected, [&](auto it) { map_.erase(it); });
}

template <class K, class V, class H, class E>
template <class F>
void SyncMap<K, V, H, E>::range(F&& f) const {
  detail::note_goro_use();
  std::vector<std::pair<K, V>> snapshot;
  {
    ReadGuard guard(lock_);
    snapshot.reserve(map_.size());
    for (const auto& [k, v] : map_) snapshot.emplace_back(k, v);
  }
  for (const auto& [k, v] : snapshot) {
    if (!std::invoke(f, k, v)) return;
  }
}

template <class K, class V, class H, class E>
void SyncMap<K, V, H, E>::clear() {
  detail::note_goro_use();
  Map old;
  {
    std::lock_guard guard(lock_);
    old.swap(map_);
  }
  // old's entries are destroyed here, outside the lock
}

}  // namespace goro
