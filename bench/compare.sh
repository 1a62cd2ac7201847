#!/usr/bin/env bash
# Side-by-side benchmark: goro against Go and Boost.Fiber on identical workloads.
#
# Usage: bench/compare.sh [workload ...]        (default: every workload)
#
# Environment:
#   BENCH_REPS=5          runs per program and workload (interleaved goro, Go, Boost.Fiber, ...)
#   BENCH_WORKERS=nproc   worker threads / GOMAXPROCS for every program
#   BENCH_TIMEOUT=120     seconds before a run is killed and recorded as NA
#   BENCH_PROGRAMS="goro go fiber"   which programs to build and run
#   BENCH_NO_BUILD=1      reuse the binaries already in build-bench/
#   BENCH_SIZE_<workload>=N  pass N as the size argument to all three programs
#                         (e.g. BENCH_SIZE_skynet=100000; see bench/README.md)
#   CXX=g++  BENCH_CXXFLAGS=-O2
#
# Output (build-bench/results/): samples.csv (every run), summary.csv,
# summary.json, ratios.dat, and ratios.png / ratios.svg when gnuplot exists.
# A program that fails to build is skipped; a run that fails, times out or
# prints something unexpected is recorded as NA. Neither stops the script.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup compare.sh   # cds to the repository root; reps, logs, exe, label, ...
die() { bench_die "$@"; }

all_workloads=(spawn_join pingpong buffered_1p1c buffered_4p4c select4 mutex
               worker_pool waitgroup ctx_cancel parked_memory skynet)
workers=${BENCH_WORKERS:-$(nproc)}
[[ $workers =~ ^[1-9][0-9]*$ ]] || die "BENCH_WORKERS must be a positive integer"

if [ $# -gt 0 ]; then
  workloads=("$@")
  for w in "${workloads[@]}"; do
    [[ " ${all_workloads[*]} " == *" $w "* ]] || die "unknown workload '$w' (known: ${all_workloads[*]})"
  done
else
  workloads=("${all_workloads[@]}")
fi

# Only this script's outputs: bench/curves.sh writes next to them.
mkdir -p "$logs"
rm -f "$results"/{samples.csv,summary.csv,summary.json,ratios.dat,ratios.png,ratios.svg} "$logs"/*.log

bench_build   # sets ready=(programs that built)

samples=$results/samples.csv
echo "program,workload,workers,rep,value,unit" >"$samples"
bench_warn_load "$workers"
echo "compare.sh: ${#workloads[@]} workload(s) x $reps rep(s), workers=$workers, timeout=${run_timeout}s, programs: ${ready[*]}" >&2

for w in "${workloads[@]}"; do
  size_var=BENCH_SIZE_$w
  size_arg=()
  [ -n "${!size_var:-}" ] && size_arg=("${!size_var}")
  for ((rep = 1; rep <= reps; rep++)); do
    for prog in "${ready[@]}"; do
      bench_run "$prog" "$w" "$rep" "$logs/$prog-$w-$rep.log" "$w" "$workers" "${size_arg[@]}"
      value=$run_value unit=$run_unit
      echo "$prog,$w,$workers,$rep,$value,$unit" >>"$samples"
    done
  done
done

# Medians, ratios, table, summary.csv / summary.json / ratios.dat.
if ! python3 - "$results" "$workers" "$reps" "${workloads[@]}" <<'PY'
import csv, json, os, platform, statistics, sys, time

results, workers, reps, workloads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
progs = ["goro", "go", "fiber"]
values = {(w, p): [] for w in workloads for p in progs}
attempts = {(w, p): 0 for w in workloads for p in progs}
units = {}
with open(os.path.join(results, "samples.csv")) as f:
    for row in csv.DictReader(f):
        key = (row["workload"], row["program"])
        attempts[key] += 1
        if row["value"] != "NA":
            values[key].append(float(row["value"]))
            units.setdefault(row["workload"], row["unit"])

def median(w, p):
    v = values[(w, p)]
    return statistics.median(v) if v else None

def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None

rows = []
for w in workloads:
    m = {p: median(w, p) for p in progs}
    rows.append({
        "workload": w,
        "unit": units.get(w, "NA"),
        "median": m,
        "samples_ok": {p: len(values[(w, p)]) for p in progs},
        "runs": {p: attempts[(w, p)] for p in progs},
        "goro_over_go": ratio(m["goro"], m["go"]),
        "goro_over_fiber": ratio(m["goro"], m["fiber"]),
    })

def fmt(x, nd=1):
    return "NA" if x is None else f"{x:.{nd}f}"

header = ["workload", "unit", "goro", "Go", "Boost.Fiber", "goro/Go", "goro/Fiber"]
table = [[r["workload"], r["unit"], fmt(r["median"]["goro"]), fmt(r["median"]["go"]),
          fmt(r["median"]["fiber"]), fmt(r["goro_over_go"], 2), fmt(r["goro_over_fiber"], 2)] for r in rows]
widths = [max(len(str(c)) for c in col) for col in zip(header, *table)]
line = lambda cells: "| " + " | ".join(
    str(c).ljust(wd) if i < 2 else str(c).rjust(wd) for i, (c, wd) in enumerate(zip(cells, widths))) + " |"
print(f"\nmedians of {reps} run(s), workers={workers}; ratio < 1: goro is faster (or smaller)")
print(line(header))
print("|" + "|".join("-" * (wd + 2) for wd in widths) + "|")
for t in table:
    print(line(t))
for r in rows:
    short = [p for p in progs if 0 < r["runs"][p] and r["samples_ok"][p] < r["runs"][p]]
    if short:
        print(f"note: {r['workload']}: " + ", ".join(
            f"{p} {r['samples_ok'][p]}/{r['runs'][p]} runs ok" for p in short))

with open(os.path.join(results, "summary.csv"), "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["workload", "unit", "goro", "go", "fiber", "goro_over_go", "goro_over_fiber"])
    na = lambda x: "NA" if x is None else f"{x:.6g}"
    for r in rows:
        out.writerow([r["workload"], r["unit"], na(r["median"]["goro"]), na(r["median"]["go"]),
                      na(r["median"]["fiber"]), na(r["goro_over_go"]), na(r["goro_over_fiber"])])

with open(os.path.join(results, "summary.json"), "w") as f:
    json.dump({
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workers": workers,
        "reps": reps,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "kernel": platform.release()},
        "programs": {"goro": "goro", "go": "Go", "fiber": "Boost.Fiber"},
        "workloads": rows,
    }, f, indent=2)
    f.write("\n")

# gnuplot input: one row per workload, '?' where a ratio is missing.
with open(os.path.join(results, "ratios.dat"), "w") as f:
    f.write("# workload goro/Go goro/Fiber\n")
    q = lambda x: "?" if x is None else f"{x:.6g}"
    for r in rows:
        f.write(f"{r['workload']} {q(r['goro_over_go'])} {q(r['goro_over_fiber'])}\n")
PY
then
  echo "compare.sh: summary failed" >&2
  exit 1
fi

if awk '!/^#/ && ($2 != "?" || $3 != "?") { found = 1 } END { exit !found }' "$results/ratios.dat"; then
  if bench_draw bench/plot.gp "$logs/gnuplot.log" \
    "datafile='$results/ratios.dat'; outbase='$results/ratios'; subtitle='workers=$workers, median of $reps'"; then
    echo "compare.sh: wrote $results/ratios.png and $results/ratios.svg" >&2
  fi
else
  echo "compare.sh: no ratio to plot (goro and a peer are both needed)" >&2
fi
echo "compare.sh: samples in $samples; summary in $results/summary.csv and summary.json" >&2
