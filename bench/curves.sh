#!/usr/bin/env bash
# Growth curves: how goro's, Go's and Boost.Fiber's cost per operation moves
# as the work grows (bench/README.md defines each curve).
#
# Usage: bench/curves.sh [curve ...]     curves: spawn select chan fanout (default: all)
#
#   spawn   ns per fiber spawned until all are parked on one gate; x = live fibers
#   select  ns per select over x ready buffered channels; x = cases
#   chan    ns per item through one capacity-1024 channel; x = producers = consumers
#   fanout  speedup of fixed CPU work split over 1024 fibers; x = workers
#
# Environment (besides those of bench/lib.sh: BENCH_REPS=5, BENCH_TIMEOUT=120,
# BENCH_PROGRAMS, BENCH_NO_BUILD, CXX, BENCH_CXXFLAGS):
#   BENCH_WORKERS=nproc        worker threads for spawn, select and chan
#   BENCH_MAX_WORKERS=nproc    largest worker count of the fanout curve
#   BENCH_CURVE_<curve>="x ..." the points of one curve (e.g. BENCH_CURVE_spawn="1000 10000")
#   BENCH_OPS_<curve>=N        the fixed amount of work per point: selects (select, 100000),
#                              items (chan, 1048576), LCG steps per fiber (fanout, 262144)
#
# Output (build-bench/results/): curves.csv (every run), curves_summary.csv,
# curves_summary.json, curve_<curve>.dat and, when gnuplot exists,
# curve_<curve>.png / .svg. A failed, wrong or timed-out run is recorded as NA.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup curves.sh   # cds to the repository root; reps, logs, exe, label, ...

all_curves=(spawn select chan fanout)
workers=${BENCH_WORKERS:-$(nproc)}
max_workers=${BENCH_MAX_WORKERS:-$(nproc)}
[[ $workers =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_WORKERS must be a positive integer"
[[ $max_workers =~ ^[1-9][0-9]*$ ]] || bench_die "BENCH_MAX_WORKERS must be a positive integer"

if [ $# -gt 0 ]; then
  curves=("$@")
  for c in "${curves[@]}"; do
    [[ " ${all_curves[*]} " == *" $c "* ]] || bench_die "unknown curve '$c' (known: ${all_curves[*]})"
  done
else
  curves=("${all_curves[@]}")
fi

# default_points CURVE: the x values of a curve unless BENCH_CURVE_<curve> is set.
default_points() {
  case $1 in
    spawn) echo 1000 10000 100000 1000000 ;;
    select) echo 1 2 4 8 16 32 64 ;;
    chan) echo 1 2 4 8 16 32 64 ;;
    fanout)  # powers of two below the maximum, then the maximum itself
      local k=1 xs=()
      while [ "$k" -lt "$max_workers" ]; do xs+=("$k"); k=$((k * 2)); done
      xs+=("$max_workers")
      echo "${xs[@]}" ;;
  esac
}

declare -A points ops
for c in "${curves[@]}"; do
  var=BENCH_CURVE_$c
  points[$c]=${!var:-$(default_points "$c")}
  for x in ${points[$c]}; do
    [[ $x =~ ^[1-9][0-9]*$ ]] || bench_die "$var: '$x' is not a positive integer"
  done
  var=BENCH_OPS_$c
  ops[$c]=${!var:-}
  [[ -z ${ops[$c]} || ${ops[$c]} =~ ^[1-9][0-9]*$ ]] || bench_die "$var must be a positive integer"
done
[ -z "${ops[spawn]:-}" ] || bench_die "the spawn curve has no BENCH_OPS (x is the amount of work)"

# args_for CURVE X: the command line of one run (workload, workers, sizes).
fanout_chunks=1024   # the programs' default; passed explicitly only with BENCH_OPS_fanout
args_for() {
  local c=$1 x=$2
  case $c in
    fanout) echo "curve_fanout $x${ops[fanout]:+ $fanout_chunks ${ops[fanout]}}" ;;
    *) echo "curve_$c $workers $x${ops[$c]:+ ${ops[$c]}}" ;;
  esac
}

# Only this script's outputs: bench/compare.sh writes next to them.
mkdir -p "$logs/curves"
rm -f "$results"/curves.csv "$results"/curves_summary.{csv,json} "$results"/curve_*.{dat,png,svg} \
  "$logs"/curves/*.log

bench_build   # sets ready=(programs that built)

samples=$results/curves.csv
loadlog=$results/curves_load.txt
echo "program,curve,x,rep,value,unit" >"$samples"
note_load() { echo "$1 $(date +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$loadlog"; }
: >"$loadlog"
bench_warn_load "$workers"
[ "$max_workers" -le "$(nproc)" ] || bench_warn_load "$max_workers"
echo "curves.sh: curves ${curves[*]} x $reps rep(s), workers=$workers (fanout: up to $max_workers)," \
  "timeout=${run_timeout}s, programs: ${ready[*]}" >&2
echo "curves.sh: start: $(uptime)" >&2
note_load start

for c in "${curves[@]}"; do
  note_load "$c"
  for x in ${points[$c]}; do
    read -r -a args <<<"$(args_for "$c" "$x")"
    for ((rep = 1; rep <= reps; rep++)); do
      for prog in "${ready[@]}"; do
        bench_run "$prog" "$c x=$x" "$rep" "$logs/curves/$prog-$c-$x-$rep.log" "${args[@]}"
        echo "$prog,$c,$x,$rep,$run_value,$run_unit" >>"$samples"
      done
    done
  done
done
note_load end
echo "curves.sh: end: $(uptime)" >&2

# Medians, ratios, speedups; tables, curves_summary.csv/.json, curve_<c>.dat.
if ! python3 - "$results" "$workers" "$max_workers" "$reps" "${curves[@]}" <<'PY'
import csv, json, os, platform, statistics, sys, time

results, workers, max_workers, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
curves = sys.argv[5:]
progs = ["goro", "go", "fiber"]
names = {"goro": "goro", "go": "Go", "fiber": "Boost.Fiber"}

values, attempts, xs, units = {}, {}, {c: [] for c in curves}, {}
with open(os.path.join(results, "curves.csv")) as f:
    for row in csv.DictReader(f):
        c, x, p = row["curve"], int(row["x"]), row["program"]
        if x not in xs[c]:
            xs[c].append(x)
        attempts[(c, x, p)] = attempts.get((c, x, p), 0) + 1
        values.setdefault((c, x, p), [])
        if row["value"] != "NA":
            values[(c, x, p)].append(float(row["value"]))
            units.setdefault(c, row["unit"])

def median(c, x, p):
    v = values.get((c, x, p), [])
    return statistics.median(v) if v else None

def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None

# One row per curve and x. For fanout the figure is the speedup
# median(time at the smallest x) / median(time at x); the time per chunk is
# kept in "time".
rows = []
for c in curves:
    base = min(xs[c]) if xs[c] else None
    for x in xs[c]:
        m = {p: median(c, x, p) for p in progs}
        row = {"curve": c, "x": x, "unit": units.get(c, "NA"), "median": m,
               "samples_ok": {p: len(values.get((c, x, p), [])) for p in progs},
               "runs": {p: attempts.get((c, x, p), 0) for p in progs}}
        if c == "fanout":
            row["time"] = m
            row["unit"] = "speedup"
            row["median"] = {p: ratio(median(c, base, p), m[p]) for p in progs}
            row["speedup_base_workers"] = base
        row["goro_over_go"] = ratio(row["median"]["goro"], row["median"]["go"])
        row["goro_over_fiber"] = ratio(row["median"]["goro"], row["median"]["fiber"])
        rows.append(row)

def fmt(v, nd=1):
    return "NA" if v is None else f"{v:,.{nd}f}"

def table(title, header, body):
    widths = [max(len(str(cell)) for cell in col) for col in zip(header, *body)]
    line = lambda cells: "| " + " | ".join(
        str(cell).ljust(wd) if i == 0 else str(cell).rjust(wd) for i, (cell, wd) in enumerate(zip(cells, widths))) + " |"
    print(f"\n{title}")
    print(line(header))
    print("|" + "|".join("-" * (wd + 2) for wd in widths) + "|")
    for b in body:
        print(line(b))

titles = {"spawn": "spawn until parked, ns per fiber; x = live fibers",
          "select": "select over x ready channels, ns per select (Boost.Fiber: polling emulation)",
          "chan": "x producers + x consumers on one cap-1024 channel, ns per item",
          "fanout": "CPU-bound fan-out over 1024 fibers; x = workers"}
print(f"\nmedians of {reps} run(s); workers={workers} for spawn, select and chan")
for c in curves:
    rs = [r for r in rows if r["curve"] == c]
    if c == "fanout":
        table(titles[c] + ": ns per chunk, and speedup over the smallest x (higher is better)",
              ["workers", "goro ns", "Go ns", "Fiber ns", "goro x", "Go x", "Fiber x"],
              [[r["x"]] + [fmt(r["time"][p], 0) for p in progs] + [fmt(r["median"][p], 2) for p in progs]
               for r in rs])
    else:
        table(titles[c] + "; ratio < 1: goro is faster",
              ["x", "goro", "Go", "Boost.Fiber", "goro/Go", "goro/Fiber"],
              [[r["x"]] + [fmt(r["median"][p]) for p in progs] +
               [fmt(r["goro_over_go"], 2), fmt(r["goro_over_fiber"], 2)] for r in rs])
    for r in rs:
        short = [p for p in progs if 0 < r["runs"][p] and r["samples_ok"][p] < r["runs"][p]]
        if short:
            print(f"note: {c} x={r['x']}: " + ", ".join(
                f"{names[p]} {r['samples_ok'][p]}/{r['runs'][p]} runs ok" for p in short))

na = lambda v: "NA" if v is None else f"{v:.6g}"
with open(os.path.join(results, "curves_summary.csv"), "w", newline="") as f:
    out = csv.writer(f)
    out.writerow(["curve", "x", "unit", "goro", "go", "fiber", "goro_over_go", "goro_over_fiber"])
    for r in rows:
        if "time" in r:
            out.writerow([r["curve"], r["x"], units.get(r["curve"], "NA")] +
                         [na(r["time"][p]) for p in progs] +
                         [na(ratio(r["time"]["goro"], r["time"]["go"])),
                          na(ratio(r["time"]["goro"], r["time"]["fiber"]))])
        out.writerow([r["curve"] + ("_speedup" if "time" in r else ""), r["x"], r["unit"]] +
                     [na(r["median"][p]) for p in progs] + [na(r["goro_over_go"]), na(r["goro_over_fiber"])])

load = []
with open(os.path.join(results, "curves_load.txt")) as f:
    for line in f:
        what, when, l1, l5, l15 = line.split()
        load.append({"at": what, "time": when, "loadavg": [float(l1), float(l5), float(l15)]})

with open(os.path.join(results, "curves_summary.json"), "w") as f:
    json.dump({
        "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workers": workers,
        "max_workers": max_workers,
        "reps": reps,
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "kernel": platform.release()},
        "load": load,
        "programs": names,
        "rows": rows,
    }, f, indent=2)
    f.write("\n")

# gnuplot input, one file per curve: x goro go fiber label ('?' where
# missing; label is x as the tic shows it: 1K, 1M).
q = lambda v: "?" if v is None else f"{v:.6g}"
tic = lambda x: (f"{x // 10**6}M" if x >= 10**6 and x % 10**6 == 0 else
                 f"{x // 1000}K" if x >= 1000 and x % 1000 == 0 else str(x))
for c in curves:
    with open(os.path.join(results, f"curve_{c}.dat"), "w") as f:
        f.write(f"# {c}: x goro go fiber label ({'speedup' if c == 'fanout' else units.get(c, 'NA')})\n")
        for r in (r for r in rows if r["curve"] == c):
            f.write(f"{r['x']} " + " ".join(q(r["median"][p]) for p in progs) + f" {tic(r['x'])}\n")
PY
then
  echo "curves.sh: summary failed" >&2
  exit 1
fi

# One chart per curve.
declare -A xlabel=([spawn]="live fibers (parked on one gate)" [select]="cases (ready buffered channels)"
                   [chan]="producers = consumers" [fanout]="workers")
declare -A ylabel=([spawn]="ns per fiber spawned until parked" [select]="ns per select"
                   [chan]="ns per item" [fanout]="speedup over 1 worker")
declare -A title=([spawn]="Spawn cost as live fibers grow" [select]="Select cost as cases grow"
                  [chan]="Channel cost as producers and consumers grow"
                  [fanout]="CPU-bound fan-out: speedup as workers grow")
for c in "${curves[@]}"; do
  dat=$results/curve_$c.dat
  if ! awk '!/^#/ && ($2 != "?" || $3 != "?" || $4 != "?") { found = 1 } END { exit !found }' "$dat"; then
    echo "curves.sh: nothing to plot for $c" >&2
    continue
  fi
  subtitle="median of $reps, workers=$workers"
  [ "$c" != fanout ] || subtitle="median of $reps, 1024 fibers"
  fibername=Boost.Fiber
  if [ "$c" = select ]; then
    subtitle="$subtitle; Boost.Fiber has no select: a polling emulation"
    fibername="Boost.Fiber (polling)"
  fi
  kind=cost
  [ "$c" != fanout ] || kind=speedup
  if bench_draw bench/curves.gp "$logs/curves/gnuplot-$c.log" \
    "datafile='$dat'; outbase='$results/curve_$c'; kind='$kind'; mytitle='${title[$c]}'; \
subtitle='$subtitle'; xlab='${xlabel[$c]}'; ylab='${ylabel[$c]}'; fibername='$fibername'"; then
    echo "curves.sh: wrote $results/curve_$c.png and .svg" >&2
  fi
done
echo "curves.sh: samples in $samples; summary in $results/curves_summary.csv and curves_summary.json" >&2
