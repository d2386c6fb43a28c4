# SPDX-License-Identifier: GPL-2.0
#
# The bench's plots.  bench/run.sh calls
#   gnuplot -e "dir='DATA'; out='RESULTS'" bench/plots.gp
# with these files in DATA (written by run.sh from the bench output):
#   prog-vF-KIND-LOOKUP.dat  x rules median min max warm_median
#                            (F 4|6, KIND hit|miss, LOOKUP trie|flat)
#   prog-empty.dat   median
#   drop.dat         label ipblock lo hi ipbtrie lo hi nft lo hi ipt lo hi  ("-": missing)
#   pass.dat         the same, for frames that match no rule
#   floors.dat       drop_floor pass_nofilter pass_xdp

set terminal pngcairo size 1100,560 font "sans,10" noenhanced
set datafile missing "-"
set grid ytics lc rgb "#dddddd"
set key outside right top vertical Left reverse box

# --- ns per packet against rule count, trie (before) and flat (after) ----------
set output out."/prog_cost.png"
set terminal pngcairo size 1400,620 font "sans,10" noenhanced
empty = real(system("cat ".dir."/prog-empty.dat"))
set multiplot layout 1,2 title "ipblock XDP program: cost per packet, 65,536 random sources unless marked warm (BPF_PROG_RUN, median, min–max bars)"
set xlabel "rules per family"
set ylabel "ns per packet (log scale)"
set logscale y
set xrange [-0.3:3.3]
set xtics ("0" 0, "1k" 1, "100k" 2, "1M" 3)
set key inside left top vertical Left reverse box opaque
do for [f in "4 6"] {
	lim = f eq "4" ? 20 : 40
	set title "IPv".f
	plot \
		dir."/prog-v".f."-hit-trie.dat"  using 1:3:4:5 with yerrorlines lw 2 dt 2 pt 7 lc rgb "#c0392b" title "trie (before), hit", \
		dir."/prog-v".f."-miss-trie.dat" using 1:3:4:5 with yerrorlines lw 2 dt 2 pt 5 lc rgb "#e59866" title "trie (before), miss", \
		dir."/prog-v".f."-hit-flat.dat"  using 1:3:4:5 with yerrorlines lw 2 pt 7 lc rgb "#1f5f9e" title "flat (after), hit", \
		dir."/prog-v".f."-miss-flat.dat" using 1:3:4:5 with yerrorlines lw 2 pt 5 lc rgb "#5dade2" title "flat (after), miss", \
		dir."/prog-v".f."-hit-flat.dat"  using 1:6 with linespoints dt 3 lw 1 pt 6 lc rgb "#1f5f9e" title "flat, hit, 256 sources (warm cache)", \
		dir."/prog-v".f."-miss-flat.dat" using 1:6 with linespoints dt 3 lw 1 pt 4 lc rgb "#5dade2" title "flat, miss, 256 sources (warm cache)", \
		empty with lines lc rgb "black" lw 2 title sprintf("empty XDP program (baseline) %.0f ns", empty), \
		empty + lim with lines lc rgb "#27ae60" dt 3 lw 2 title sprintf("target for flat: empty + %d ns", lim)
}
unset multiplot
unset logscale y
unset xrange
unset title
set key outside right top vertical Left reverse box noopaque
set terminal pngcairo size 1100,560 font "sans,10" noenhanced

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
	dir."/drop.dat" using 2:3:4:xtic(1) title "ipblock, flat lookup (native XDP)" lc rgb "#2a7ab0", \
	'' using 5:6:7 title "ipblock, trie lookup (before)" lc rgb "#9ecae1", \
	'' using 8:9:10 title "nftables netdev ingress, interval set" lc rgb "#e08a1e", \
	'' using 11:12:13 title "iptables raw + ipset hash:net" lc rgb "#6aa84f", \
	floor with lines lc rgb "black" lw 2 title sprintf("XDP drop-everything (the path's limit) %.2f", floor)

set output out."/passrate.png"
set title "Pass rate over veth, source matching no rule"
plot \
	dir."/pass.dat" using 2:3:4:xtic(1) title "ipblock, flat lookup (native XDP)" lc rgb "#2a7ab0", \
	'' using 5:6:7 title "ipblock, trie lookup (before)" lc rgb "#9ecae1", \
	'' using 8:9:10 title "nftables netdev ingress, interval set" lc rgb "#e08a1e", \
	'' using 11:12:13 title "iptables raw + ipset hash:net" lc rgb "#6aa84f", \
	nofilter with lines lc rgb "black" lw 2 title sprintf("no filter (baseline) %.2f", nofilter), \
	xdppass with lines lc rgb "gray40" dt 2 lw 2 title sprintf("XDP pass-everything %.2f", xdppass)
