# Bar chart of goro's median ratios against Go and Boost.Fiber, per workload.
# bench/compare.sh calls it as:
#   gnuplot -e "datafile='build-bench/results/ratios.dat'; outbase='build-bench/results/ratios'; subtitle='...'" bench/plot.gp
# ratios.dat has one row per workload: name, goro/Go, goro/Fiber ('?' = missing).
# Bars start at 1 on a log scale: a bar going up means goro is slower (or
# uses more memory), a bar going down means goro is faster (or smaller).

if (!exists("datafile")) datafile = 'build-bench/results/ratios.dat'
if (!exists("outbase")) outbase = 'build-bench/results/ratios'
if (!exists("subtitle")) subtitle = ''

set datafile missing '?'
stats datafile using 0 nooutput
n = STATS_records

lo(r) = r < 1 ? r : 1
hi(r) = r > 1 ? r : 1
lab(r) = r >= 1 ? r * 1.15 : r / 1.15   # value label just beyond the bar's end
w = 0.36   # bar width; the two bars of a workload sit side by side

set title "goro / peer, median per workload" . (subtitle eq '' ? '' : "\n{/*0.8 " . subtitle . "}")
set ylabel "ratio (log scale; < 1: goro faster or smaller)"
set logscale y
set autoscale yfix
set format y "%g"
set xrange [-0.6:n - 0.4]
set xtics rotate by -35 nomirror noenhanced
set ytics nomirror
set ytics add ("0.2" 0.2, "0.5" 0.5, "2" 2, "5" 5, "20" 20, "50" 50)
set grid ytics
set key outside top center horizontal
set style fill solid 0.85 border -1
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 linewidth 1.5 linecolor rgb "black" front
set offsets 0, 0, graph 0.08, graph 0.08

do for [term in "pngcairo svg"] {
  if (term eq "pngcairo") {
    set terminal pngcairo size 1100,600 font ",10"
    set output outbase . ".png"
  } else {
    set terminal svg size 1100,600 dynamic font ",10"
    set output outbase . ".svg"
  }
  plot datafile using ($0 - w/2):2:($0 - w):($0):(lo($2)):(hi($2)) with boxxyerror \
         linecolor rgb "#00add8" title "goro / Go", \
       '' using ($0 + w/2):3:($0):($0 + w):(lo($3)):(hi($3)) with boxxyerror \
         linecolor rgb "#d9822b" title "goro / Boost.Fiber", \
       '' using ($0 - w/2):(lab($2)):(sprintf("%.3g", $2)) with labels font ",8" notitle, \
       '' using ($0 + w/2):(lab($3)):(sprintf("%.3g", $3)) with labels font ",8" notitle, \
       '' using 0:(1/0):xtic(1) notitle
  unset output
}
