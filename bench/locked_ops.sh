#!/usr/bin/env bash
# Counts what one operation of a workload executes, in goro and in
# Boost.Fiber: instructions, and locked instructions (lock-prefixed, or xchg
# with memory), under valgrind's callgrind, so the figures are exact and
# repeatable where timings on a shared VM are not.
#
# Usage: bench/locked_ops.sh WORKLOAD N [OPS_PER_N] [SITES]
#   Runs each program at sizes N and 2N on one worker and divides the
#   difference by N * OPS_PER_N (default 1; ctx_cancel runs 10 rounds of N
#   children, so 10 gives figures per child). SITES > 0 lists that many of
#   the busiest locked instructions with their inlined call chains.
#
# Needs valgrind, binutils, python3 and libboost-fiber-dev (scripts/deps.sh
# bench installs them). The two programs are built without PIE and with
# Boost linked statically, so every counted instruction maps to its source.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,/^set /{/^#/p}' "$0"; exit 2; }
scripts/deps.sh bench
workload=$1 n=$2 per=${3:-1} sites=${4:-0}
[[ $n =~ ^[1-9][0-9]*$ ]] || { echo "locked_ops.sh: N must be a positive integer" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "locked_ops.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
out=build-bench/locked
mkdir -p "$out"
flags=(-O2 -g -std=c++20 -no-pie -fno-pie)
g++ "${flags[@]}" -Iinclude bench/peer/goro_peer.cpp -o "$out/goro" -lboost_context -pthread
g++ "${flags[@]}" bench/fiber/main.cpp -o "$out/fiber" \
  -Wl,-Bstatic -lboost_fiber -lboost_context -Wl,-Bdynamic -pthread
for prog in goro fiber; do
  for size in "$n" $((2 * n)); do
    valgrind --tool=callgrind --dump-instr=yes --compress-pos=no --compress-strings=no \
      --callgrind-out-file="$out/$prog-$workload-$size.cg" "$out/$prog" "$workload" 1 "$size" \
      > "$out/$prog-$workload-$size.log" 2>&1 ||
      { echo "locked_ops.sh: $prog $workload $size failed (see $out/$prog-$workload-$size.log)" >&2; exit 1; }
  done
  python3 bench/locked_ops.py "$out/$prog" "$out/$prog-$workload-$n.cg" "$out/$prog-$workload-$((2 * n)).cg" \
    "$((n * per))" "$sites"
done
