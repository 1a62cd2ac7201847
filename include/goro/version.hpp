// goro's version, following semantic versioning (https://semver.org).
//
//   #include <goro/version.hpp>
//   std::printf("goro %s\n", GORO_VERSION_STRING);
//   #if GORO_VERSION >= 100   // 0.1.0 or later
//
// This header is checked in and is the same file whichever way goro is
// consumed (installed, add_subdirectory, FetchContent, vcpkg, pkg-config).
// It must agree with `project(goro VERSION ...)` in CMakeLists.txt: configuring
// goro fails with a message if the two differ, so bump both together.
#pragma once

// GORO_VERSION_MAJOR: incremented for incompatible API changes.
#define GORO_VERSION_MAJOR 0
// GORO_VERSION_MINOR: incremented for backward compatible additions (while
// the major version is 0, a minor bump may also break the API).
#define GORO_VERSION_MINOR 1
// GORO_VERSION_PATCH: incremented for backward compatible fixes.
#define GORO_VERSION_PATCH 0

// GORO_VERSION_STRING: "MAJOR.MINOR.PATCH".
#define GORO_VERSION_STRING "0.1.0"

// GORO_VERSION: MAJOR * 10000 + MINOR * 100 + PATCH, for `#if` comparisons.
#define GORO_VERSION (GORO_VERSION_MAJOR * 10000 + GORO_VERSION_MINOR * 100 + GORO_VERSION_PATCH)
