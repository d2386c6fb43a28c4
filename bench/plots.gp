# SPDX-License-Identifier: GPL-2.0
#
# The bench's plots.  bench/run.sh calls
#   gnuplot -e "dir='DATA'; out='RESULTS'" bench/plots.gp
# with these files in DATA (written by run.sh from the bench output):
#   prog-SERIES.dat  x label median min max warm_median     (one per series)
#   prog-empty.dat   median
#   drop.dat         label ipblock lo hi nft lo hi ipt lo hi  ("-": missing)
#   pass.dat         the same, for frames that match no rule
#   floors.dat       drop_floor pass_nofilter pass_xdp

set terminal pngcairo size 1100,560 font "sans,10" noenhanced
set datafile missing "-"
set grid ytics lc rgb "#dddddd"
set key outside right top vertical Left reverse box

# --- ns per packet against rule count ---------------------------------------
set output out."/prog_cost.png"
set title "ipblock XDP program: cost per packet (BPF_PROG_RUN, median, min–max bars)"
set xlabel "rules per family"
set ylabel "ns per packet (log scale)"
set logscale y
set xrange [-0.3:3.3]
set xtics ("0" 0, "1k" 1, "100k" 2, "1M" 3)
empty = real(system("cat ".dir."/prog-empty.dat"))
plot \
	dir."/prog-v4-hit.dat"  using 1:3:4:5 with yerrorlines lw 2 pt 7 title "IPv4 hit, 65,536 sources", \
	dir."/prog-v4-miss.dat" using 1:3:4:5 with yerrorlines lw 2 pt 5 title "IPv4 miss, 65,536 sources", \
	dir."/prog-v6-hit.dat"  using 1:3:4:5 with yerrorlines lw 2 pt 9 title "IPv6 hit, 65,536 sources", \
	dir."/prog-v6-miss.dat" using 1:3:4:5 with yerrorlines lw 2 pt 11 title "IPv6 miss, 65,536 sources", \
	dir."/prog-v4-hit.dat"  using 1:6 with linespoints dt 2 lw 1 pt 6 title "IPv4 hit, 256 sources (warm cache)", \
	dir."/prog-v4-miss.dat" using 1:6 with linespoints dt 2 lw 1 pt 4 title "IPv4 miss, 256 sources (warm cache)", \
	empty with lines lc rgb "black" lw 2 title sprintf("empty XDP program (baseline) %.0f ns", empty), \
	empty + 20 with lines lc rgb "red" dt 3 lw 2 title "target at 1M: empty + 20 ns"
unset logscale y
unset xrange

# --- Mpps per system ------------------------------------------------------------
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.75 border -1
set boxwidth 0.9
set yrange [0:*]
set xtics auto
set xlabel "rules in the list"
set ylabel "Mpps at the receiver (median, min–max bars)"
floor = real(system("awk '{ print $1 }' ".dir."/floors.dat"))
nofilter = real(system("awk '{ print $2 }' ".dir."/floors.dat"))
xdppass = real(system("awk '{ print $3 }' ".dir."/floors.dat"))

set output out."/droprate.png"
set title "Drop rate over veth, source denied"
plot \
	dir."/drop.dat" using 2:3:4:xtic(1) title "ipblock (native XDP)" lc rgb "#2a7ab0", \
	'' using 5:6:7 title "nftables netdev ingress, interval set" lc rgb "#e08a1e", \
	'' using 8:9:10 title "iptables raw + ipset hash:net" lc rgb "#6aa84f", \
	floor with lines lc rgb "black" lw 2 title sprintf("XDP drop-everything (the path's limit) %.2f", floor)

set output out."/passrate.png"
set title "Pass rate over veth, source matching no rule"
plot \
	dir."/pass.dat" using 2:3:4:xtic(1) title "ipblock (native XDP)" lc rgb "#2a7ab0", \
	'' using 5:6:7 title "nftables netdev ingress, interval set" lc rgb "#e08a1e", \
	'' using 8:9:10 title "iptables raw + ipset hash:net" lc rgb "#6aa84f", \
	nofilter with lines lc rgb "black" lw 2 title sprintf("no filter (baseline) %.2f", nofilter), \
	xdppass with lines lc rgb "gray40" dt 2 lw 2 title sprintf("XDP pass-everything %.2f", xdppass)
