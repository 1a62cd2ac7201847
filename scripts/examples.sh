#!/usr/bin/env bash
# Builds goro's examples and runs each one: the library's main job, on show.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh core
cmake -S . -B build-examples -DCMAKE_BUILD_TYPE=Release \
      -DGORO_BUILD_TESTS=OFF -DGORO_BUILD_EXAMPLES=ON -DGORO_BUILD_BENCHMARKS=OFF >/dev/null
cmake --build build-examples -j "$(nproc)"
for exe in $(find build-examples/examples -maxdepth 1 -type f -executable -name 'example_*' | sort); do
  echo "=== ${exe##*/example_}"
  "$exe"
done
