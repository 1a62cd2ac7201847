#!/usr/bin/env bash
# Builds the channel fuzzer with clang's libFuzzer and runs it.
# Usage: fuzz/run.sh                    (60 s)
#        FUZZ_SECONDS=600 fuzz/run.sh   (any duration)
# Env:   FUZZ_SANITIZE   sanitizers besides fuzzer (default address,undefined)
#        FUZZ_BUILD_DIR  build and work directory (default build-fuzz)
#        FUZZ_JOBS       parallel fuzzing processes (default 1)
# The seed corpus fuzz/corpus/ is read, never written: new inputs go to
# $FUZZ_BUILD_DIR/corpus. A mismatch with the model or a sanitizer report
# stops the run with a non-zero exit and leaves crash-* in $FUZZ_BUILD_DIR;
# replay one with: FUZZ_VERBOSE=1 $FUZZ_BUILD_DIR/channel_fuzz crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
seconds=${FUZZ_SECONDS:-60}
sanitize=${FUZZ_SANITIZE:-address,undefined}
dir=${FUZZ_BUILD_DIR:-build-fuzz}
jobs=${FUZZ_JOBS:-1}

scripts/deps.sh clang  # clang, Boost.Context

mkdir -p "$dir/corpus"
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer "-fsanitize=fuzzer${sanitize:+,$sanitize}")
[[ "$sanitize" == *undefined* ]] && flags+=(-fno-sanitize-recover=undefined)
clang++ "${flags[@]}" -Iinclude fuzz/channel_fuzz.cpp -o "$dir/channel_fuzz" -lboost_context -pthread

cd "$dir"
log=fuzz.log
status=0
parallel=()
[ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
./channel_fuzz -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
  "${parallel[@]}" corpus "$root/fuzz/corpus" >"$log" 2>&1 || status=$?
if [ "$jobs" -gt 1 ]; then cat fuzz-*.log >>"$log" 2>/dev/null || true; fi
runs=$( (grep -h '^stat::number_of_executed_units:' "$log" || true) | awk '{s += $2} END {print s + 0}')
if [ "$status" -ne 0 ]; then
  grep -h -E 'MISMATCH|ERROR: |SUMMARY: ' "$log" | head -20 || true
  echo "fuzz: FAILED after $runs executions (exit $status); see $dir/$log and $dir/crash-*"
  exit 1
fi
echo "fuzz: $runs executions in ${seconds} s, 0 mismatches, 0 sanitizer reports (corpus: $(ls corpus | wc -l) inputs)"
