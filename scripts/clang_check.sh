#!/usr/bin/env bash
# Compiles every test, example and compile-fail control with clang
# (Debian 12's clang 14), syntax only: goro is header-only, so its users'
# compiler is whatever they build with, and the suite itself builds with g++.
# Usage: scripts/clang_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh clang
files=(tests/*.cpp examples/*.cpp tests/compile_fail/*.cpp)  # compile-fail files: their control variant 0
echo "clang_check: $(clang++ --version | head -1); ${#files[@]} files"
printf '%s\n' "${files[@]}" | xargs -P "$(nproc)" -I{} \
  clang++ -std=c++20 -fsyntax-only -Iinclude -Itests {}
echo "clang_check: all compile"
