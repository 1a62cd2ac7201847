#!/usr/bin/env bash
# Compiles every test, example and compile-fail control with clang
# (Debian 12's clang 14), syntax only: goro is header-only, so its users'
# compiler is whatever they build with, and the suite itself builds with g++.
# Then each public header's check (tests/header_check/) with strict warnings.
# Usage: scripts/clang_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh clang
files=(tests/*.cpp examples/*.cpp tests/compile_fail/*.cpp)  # compile-fail files: their control variant 0
echo "clang_check: $(clang++ --version | head -1); ${#files[@]} files"
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -I{} \
  clang++ -std=c++20 -fsyntax-only -Iinclude -Itests {}
# Each public header alone in user code (tests/header_check/, as g++ builds
# them in the test suite): with strict warnings as errors, goro's include
# directory as -I, at C++20 and C++23.
checks=(tests/header_check/*.cpp)
# The set the test build uses: both compilers' flags, then clang's own.
mapfile -t strict < <(cat tests/header_check/strict_warnings.txt tests/header_check/strict_warnings_clang.txt)
for std in c++20 c++2b; do
  echo "clang_check: ${#checks[@]} header checks, -std=$std, warnings as errors"
  printf '%s\n' "${checks[@]}" | xargs -P "$(nproc)" -I{} \
    clang++ -std=$std -fsyntax-only "${strict[@]}" -Iinclude {}
done
echo "clang_check: all compile"
