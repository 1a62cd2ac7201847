// goro's sync toolbox in one include: Go's sync package (Mutex, RWMutex,
// Once, Cond, WaitGroup, Map as SyncMap, atomic.Value as AtomicValue) and
// golang.org/x/sync (semaphore.Weighted as Semaphore, errgroup.Group as
// ErrGroup). See docs/sync.md.
#pragma once

#include "atomic_value.hpp"
#include "cond.hpp"
#include "err_group.hpp"
#include "mutex.hpp"
#include "once.hpp"
#include "rw_mutex.hpp"
#include "semaphore.hpp"
#include "sync_map.hpp"
#include "wait_group.hpp"
