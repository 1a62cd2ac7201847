// goro: Go's concurrency model for C++20. Include this one header.
#pragma once

#include "channel.hpp"
#include "errors.hpp"
#include "runtime.hpp"
#include "select.hpp"
#include "time.hpp"
#include "unit.hpp"
#include "wait_group.hpp"
