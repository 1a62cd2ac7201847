# shellcheck shell=bash
# Shell functions shared by bench/compare.sh and bench/curves.sh. Sourced by
# them, not run on its own.
#
#   bench_setup NAME        reads the common environment, cds to the
#                           repository root and sets the globals below
#   bench_build             builds the programs named in BENCH_PROGRAMS (or
#                           checks them with BENCH_NO_BUILD=1); sets ready=()
#   bench_warn_load WORKERS warns when the machine is busy or oversubscribed
#   bench_run PROG TAG REP LOG ARG...
#                           runs one program once and checks its output line;
#                           sets run_value and run_unit ("NA" on any failure)
#
# Environment read by bench_setup: BENCH_REPS (5), BENCH_TIMEOUT (120),
# BENCH_PROGRAMS ("goro go fiber"), BENCH_NO_BUILD (0), CXX (g++),
# BENCH_CXXFLAGS (-O2), BENCH_GORO_INCLUDE (include: the goro headers to
# build against, e.g. a `git archive` export of one commit's include/).
# The callers use `set -euo pipefail`.

bench_die() {
  echo "${bench_name:-bench}: $*" >&2
  exit 2
}

bench_setup() {
  bench_name=$1
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  cd "$root" || exit 2
  reps=${BENCH_REPS:-5}
  run_timeout=${BENCH_TIMEOUT:-120}
  read -r -a programs <<<"${BENCH_PROGRAMS:-goro go fiber}"
  cxx=${CXX:-g++}
  read -r -a cxxflags <<<"${BENCH_CXXFLAGS:--O2}"
  goro_include=${BENCH_GORO_INCLUDE:-include}
  [ -f "$goro_include/goro/goro.hpp" ] || bench_die "no goro/goro.hpp under BENCH_GORO_INCLUDE=$goro_include"
  build="build-bench"
  results=$build/results
  logs=$results/logs
  [[ $reps =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_REPS must be a positive integer"
  [[ $run_timeout =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_TIMEOUT must be a positive integer"
  command -v python3 >/dev/null || bench_die "python3 is needed for the summary"
  declare -gA exe=([goro]=$build/gorobench_goro [go]=$build/gorobench_go [fiber]=$build/gorobench_fiber)
  declare -gA label=([goro]=goro [go]=Go [fiber]=Boost.Fiber)
  local prog
  for prog in "${programs[@]}"; do
    [ -n "${exe[$prog]:-}" ] || bench_die "unknown program '$prog' in BENCH_PROGRAMS (known: goro go fiber)"
  done
}

# bench_build_one PROGRAM: builds one binary; its output goes to logs/build-PROGRAM.log.
bench_build_one() {
  local prog=$1 log=$logs/build-$1.log
  case $prog in
    goro)
      "$cxx" "${cxxflags[@]}" -std=c++20 -I"$goro_include" bench/peer/goro_peer.cpp \
        -o "${exe[goro]}" -lboost_context -pthread ;;
    go)
      command -v go >/dev/null || { echo "go not found (Debian: golang-go)"; return 1; }
      (cd bench/go && GOPROXY=off GOFLAGS="" GOTOOLCHAIN=local \
        GOCACHE=${GOCACHE:-$root/$build/go-cache} go build -o "$root/${exe[go]}" .) ;;
    fiber)
      "$cxx" "${cxxflags[@]}" -std=c++20 bench/fiber/main.cpp \
        -o "${exe[fiber]}" -lboost_fiber -lboost_context -pthread ;;
    *) echo "unknown program '$prog'"; return 1 ;;
  esac >"$log" 2>&1
}

bench_build() {
  local prog
  mkdir -p "$logs"
  ready=()
  for prog in "${programs[@]}"; do
    if [ "${BENCH_NO_BUILD:-0}" = 1 ]; then
      if [ -x "${exe[$prog]}" ]; then ready+=("$prog"); else
        echo "$bench_name: SKIP ${label[$prog]}: ${exe[$prog]} missing and BENCH_NO_BUILD=1" >&2
      fi
      continue
    fi
    echo "$bench_name: building ${label[$prog]} -> ${exe[$prog]}" >&2
    if bench_build_one "$prog"; then
      ready+=("$prog")
    else
      rm -f "${exe[$prog]}"
      echo "$bench_name: SKIP ${label[$prog]}: build failed (see $logs/build-$prog.log):" >&2
      { grep -m 10 -iE 'error|not found' "$logs/build-$prog.log" || tail -n 10 "$logs/build-$prog.log"; } |
        sed 's/^/    /' >&2
    fi
  done
  [ ${#ready[@]} -gt 0 ] || bench_die "nothing built"
}

bench_warn_load() {
  local workers=$1 load1 rest
  read -r load1 rest </proc/loadavg 2>/dev/null || load1=0
  if awk -v l="$load1" -v n="$(nproc)" 'BEGIN { exit !(l > 0.5 * n) }'; then
    echo "$bench_name: WARNING: load average $load1 on $(nproc) CPUs; other work will skew the figures" >&2
  fi
  if [ "$workers" -gt "$(nproc)" ]; then
    echo "$bench_name: WARNING: $workers workers on $(nproc) CPUs; Boost.Fiber's work_stealing threads spin when idle and suffer badly" >&2
  fi
}

# bench_run PROG TAG REP LOG ARG...: runs a fresh copy of "${exe[PROG]}"
# ARG... under the timeout. The run counts only if it exits 0 and prints
# exactly one line "ARG[0] <number> <unit>"; otherwise run_value=run_unit=NA
# and the reason is appended to LOG (which keeps the program's stderr). A good
# run's LOG is removed.
#
# Why a copy: on some hosts a program's speed depends on where its file's
# pages sit in memory (docs/performance.md, twelfth round: goro's ping-pong
# took 64-72 ns a round trip from one copy of a binary and 101-139 ns from a
# byte-identical other). Each run copies the binary anew, so the reps sample
# that placement instead of all inheriting the first one; every program is
# treated alike.
bench_run() {
  local prog=$1 tag=$2 rep=$3 log=$4
  shift 4
  local want=$1 out rc=0 got_w got_v got_u extra why
  local copy=$build/run-$prog
  rm -f "$copy"
  cp "${exe[$prog]}" "$copy"
  out=$(timeout --kill-after=10 "$run_timeout" "$copy" "$@" 2>"$log") || rc=$?
  run_value=NA run_unit=NA
  read -r got_w got_v got_u extra <<<"$out" || true
  if [ $rc -eq 0 ] && [[ $out != *$'\n'* ]] && [ "${got_w:-}" = "$want" ] && [ -z "${extra:-}" ] &&
     [[ ${got_v:-} =~ ^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]] && [ -n "${got_u:-}" ]; then
    run_value=$got_v run_unit=$got_u
    rm -f "$log"
    printf '  %-22s rep %d/%d  %-11s %12s %s\n' "$tag" "$rep" "$reps" "${label[$prog]}" "$run_value" "$run_unit" >&2
  else
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then why="timed out after ${run_timeout}s"
    elif [ $rc -ne 0 ]; then why="exit status $rc"
    else why="unexpected output '$out'"; fi
    echo "$why" >>"$log"
    printf '  %-22s rep %d/%d  %-11s %12s (%s; %s)\n' "$tag" "$rep" "$reps" "${label[$prog]}" NA "$why" "$log" >&2
  fi
}

# bench_draw GNUPLOT_SCRIPT LOG ASSIGNMENTS: runs gnuplot -e ASSIGNMENTS
# SCRIPT; returns 1 (with a message) when gnuplot is missing or fails.
bench_draw() {
  local script=$1 log=$2 assignments=$3
  if ! command -v gnuplot >/dev/null; then
    echo "$bench_name: gnuplot not found, no chart (Debian: gnuplot-nox)" >&2
    return 1
  fi
  if ! gnuplot -e "$assignments" "$script" 2>"$log"; then
    echo "$bench_name: gnuplot failed (see $log)" >&2
    return 1
  fi
}
