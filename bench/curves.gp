# One growth curve: a line per program against x on a log2 axis.
# bench/curves.sh calls it once per curve as:
#   gnuplot -e "datafile='build-bench/results/curve_spawn.dat'; outbase='build-bench/results/curve_spawn'; \
#               kind='cost'; mytitle='...'; subtitle='...'; xlab='...'; ylab='...'" bench/curves.gp
# The data file has one row per x: x, goro, Go, Boost.Fiber ('?' = missing),
# and the tic label of x (1K, 1M, ...).
# kind='cost': y is ns per operation on a log scale (a flat line means the
# cost per operation does not grow with x). kind='speedup': y is linear and a
# dashed line marks the ideal speedup y = x.

if (!exists("datafile")) datafile = 'build-bench/results/curve_spawn.dat'
if (!exists("outbase")) outbase = 'build-bench/results/curve_spawn'
if (!exists("kind")) kind = 'cost'
if (!exists("mytitle")) mytitle = ''
if (!exists("subtitle")) subtitle = ''
if (!exists("xlab")) xlab = 'x'
if (!exists("ylab")) ylab = ''
if (!exists("fibername")) fibername = 'Boost.Fiber'

set datafile missing '?'
stats datafile using 1 nooutput
xmin = STATS_min
xmax = STATS_max

set title mytitle . (subtitle eq '' ? '' : "\n{/*0.8 " . subtitle . "}")
set xlabel xlab noenhanced
set ylabel ylab noenhanced
set logscale x 2
set xrange [xmin / 1.4 : xmax * 1.4]
set xtics nomirror
set format x "%g"
set ytics nomirror
set grid xtics ytics
set key top left Left reverse box opaque
set pointsize 1.3
if (kind eq 'speedup') {
  set yrange [0 : *]
  set format y "%.1f"
} else {
  set logscale y 10
  set format y "%.0f"
  set autoscale yfix
  # ticks at 1-2-5 steps, so a range shorter than a decade is still labelled
  set ytics ("1" 1, "2" 2, "5" 5)
  do for [e=1:8] {
    set ytics add (sprintf("%d", 10**e) 10**e, sprintf("%d", 2 * 10**e) 2 * 10**e, sprintf("%d", 5 * 10**e) 5 * 10**e)
  }
  set offsets 0, 0, graph 0.12, graph 0.08
}

do for [term in "pngcairo svg"] {
  if (term eq "pngcairo") {
    set terminal pngcairo size 900,560 font ",10"
    set output outbase . ".png"
  } else {
    set terminal svg size 900,560 dynamic font ",10"
    set output outbase . ".svg"
  }
  if (kind eq 'speedup') {
    plot datafile using 1:2:xtic(5) with linespoints linewidth 2 pointtype 7 linecolor rgb "#b03a2e" title "goro", \
         '' using 1:3 with linespoints linewidth 2 pointtype 5 linecolor rgb "#00add8" title "Go", \
         '' using 1:4 with linespoints linewidth 2 pointtype 9 linecolor rgb "#d9822b" title fibername, \
         '' using 1:1 with lines dashtype 2 linewidth 1.5 linecolor rgb "black" title "ideal (y = x)"
  } else {
    plot datafile using 1:2:xtic(5) with linespoints linewidth 2 pointtype 7 linecolor rgb "#b03a2e" title "goro", \
         '' using 1:3 with linespoints linewidth 2 pointtype 5 linecolor rgb "#00add8" title "Go", \
         '' using 1:4 with linespoints linewidth 2 pointtype 9 linecolor rgb "#d9822b" title fibername
  }
  unset output
}
