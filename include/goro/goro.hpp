// goro: Go's concurrency model for C++20. Include this one header.
//
//   runtime.hpp     run, go, this_fiber, Options
//   channel.hpp     Channel, SendChannel, RecvChannel
//   select.hpp      select, recv, send, timeout, default_case
//   time.hpp        after, Timer, Ticker
//   context.hpp     Context, background, with_cancel/timeout/deadline/value
//   sync.hpp        WaitGroup, Mutex, RWMutex, Once, Cond, Semaphore,
//                   SyncMap, AtomicValue, ErrGroup
#pragma once

#include "channel.hpp"
#include "context.hpp"
#include "errors.hpp"
#include "runtime.hpp"
#include "select.hpp"
#include "sync.hpp"
#include "time.hpp"
#include "unit.hpp"
#include "version.hpp"
#include "wait_group.hpp"
