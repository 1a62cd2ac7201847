// goro: Go's concurrency model for C++20. Include this one header.
#pragma once

#include "errors.hpp"
#include "runtime.hpp"
#include "wait_group.hpp"
