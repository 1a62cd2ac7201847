#!/usr/bin/env bash
# Builds goro's test suite and runs it.
# Usage: scripts/test.sh                      (plain build in build/)
#        GORO_SANITIZE=thread scripts/test.sh (sanitizer build in build-thread/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh core
san=${GORO_SANITIZE:-}
dir=build${san:+-${san//,/-}}
type=Release
[ -n "$san" ] && type=RelWithDebInfo
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=$type -DGORO_SANITIZE="$san" \
      -DGORO_BUILD_TESTS=ON -DGORO_BUILD_EXAMPLES=OFF -DGORO_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build "$dir" -j "$(nproc)"
cd "$dir"
ctest --output-on-failure --timeout 600 -j 1
