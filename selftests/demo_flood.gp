# SPDX-License-Identifier: GPL-2.0
#
# The flood demo's plot.  selftests/demo_flood.sh calls
#   gnuplot -e "dir='DATA'; out='PNG'; rate=R; sample=S; ncpu=N" selftests/demo_flood.gp
# with, in DATA:
#   flood.dat    t dropped/s events/s lost/s src1/s src2/s ...  (one row a second;
#                dropped/s from the live view's counters, "-" where it has no line;
#                the rest from the drop log's JSON Lines reports)
#   sources.dat  source rule events  (the top sources, in flood.dat's column order)

set terminal pngcairo size 1100,720 font "sans,10" noenhanced
set output out
set datafile missing "-"
set grid ytics lc rgb "#dddddd"
set key outside right top vertical Left reverse box
set xrange [0:*]
set lmargin 10
set rmargin 52

nsrc = int(system("wc -l < ".dir."/sources.dat"))
src(i) = system(sprintf("sed -n %dp %s/sources.dat | cut -d' ' -f1", i, dir))
rul(i) = system(sprintf("sed -n %dp %s/sources.dat | cut -d' ' -f2", i, dir))
array colour[4] = ["#1f5f9e", "#c0392b", "#27ae60", "#8e44ad"]

# At most rate events a second per CPU, then 1 drop in sample: the events a second drops allow.
cap(d) = d > rate * ncpu ? rate * ncpu + (d - rate * ncpu) / sample : d

set multiplot layout 2,1 title sprintf("A simulated flood (make demo DEMO=flood): the drop log at rate = %d events a second per CPU (%d CPUs), then 1 in %d", rate, ncpu, sample)

set title "What was dropped, and what the drop log logged, each second"
set ylabel "a second"
set format x ""
plot \
	dir."/flood.dat" using 1:2 with linespoints lw 2 pt 7 ps 0.6 lc rgb "black" title "packets dropped (counters, -s --watch)", \
	dir."/flood.dat" using 1:3 with linespoints lw 2 pt 5 ps 0.6 lc rgb "#e67e22" title "drop-log events logged (JSON Lines)", \
	dir."/flood.dat" using 1:(cap($2)) with lines lw 1.5 dt 2 lc rgb "#a04000" title "the sampling's bound for those drops", \
	dir."/flood.dat" using 1:4 with lines lw 1 dt 2 lc rgb "#7f8c8d" title "events lost (queue or ring full)"

set title "The drop log's top sources: events logged a second"
set xlabel "seconds (senders: 198.18.0.200 from 2 to 20, 198.18.1.7 from 6 to 16, 2001:db8:bad::66 from 10 to 22)"
set format x "%g"
plot for [i=1:nsrc] dir."/flood.dat" using 1:(column(4 + i)) with linespoints lw 2 pt 7 ps 0.5 \
	lc rgb colour[i] title sprintf("%s (rule %s)", src(i), rul(i))
unset multiplot
