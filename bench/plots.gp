# SPDX-License-Identifier: GPL-2.0
#
# The bench's plots.  bench/run.sh calls
#   gnuplot -e "dir='DATA'; out='RESULTS'; mem=0|1" bench/plots.gp
# with these files in DATA (written by run.sh from the bench output):
#   prog-vF-KIND-PROG.dat  x rules median min max warm_median
#                          (F 4|6, KIND hit|miss, PROG trie|ipblock)
#   prog-empty.dat   median
#   prog-src-vF.dat  median of the drop-by-source program
#   drop.dat         label ipblock lo hi trie lo hi nft lo hi ipt lo hi  (Mpps per
#                    receiver CPU-second; "-": missing)
#   pass.dat         the same, for frames that match no rule
#   floors.dat       drop_floor src_floor pass_nofilter pass_xdp (the same unit)
#   memory.dat       index label ipblock trie ipset nft nft_lo nft_hi goal
#                    ipblock_delta trie_delta (MiB; only when mem is 1)

set terminal pngcairo size 1100,560 font "sans,10" noenhanced
set datafile missing "-"
set grid ytics lc rgb "#dddddd"
set key outside right top vertical Left reverse box

# --- ns per packet against rule count: ipblock and the LPM-trie filter ------------
set output out."/prog_cost.png"
set terminal pngcairo size 1400,620 font "sans,10" noenhanced
empty = real(system("cat ".dir."/prog-empty.dat"))
set multiplot layout 1,2 title "Cost per packet, 65,536 random sources unless marked warm (BPF_PROG_RUN, median, min–max bars)"
set xlabel "rules per family"
set ylabel "ns per packet (log scale)"
set logscale y
set xrange [-0.3:3.3]
set xtics ("0" 0, "1k" 1, "100k" 2, "1M" 3)
set key inside left top vertical Left reverse box opaque
do for [f in "4 6"] {
	lim = f eq "4" ? 20 : 40
	src = real(system("cat ".dir."/prog-src-v".f.".dat"))
	set title "IPv".f
	plot \
		dir."/prog-v".f."-hit-trie.dat"  using 1:3:4:5 with yerrorlines lw 2 dt 2 pt 7 lc rgb "#c0392b" title "LPM-trie filter, hit", \
		dir."/prog-v".f."-miss-trie.dat" using 1:3:4:5 with yerrorlines lw 2 dt 2 pt 5 lc rgb "#e59866" title "LPM-trie filter, miss", \
		dir."/prog-v".f."-hit-ipblock.dat"  using 1:3:4:5 with yerrorlines lw 2 pt 7 lc rgb "#1f5f9e" title "ipblock, hit", \
		dir."/prog-v".f."-miss-ipblock.dat" using 1:3:4:5 with yerrorlines lw 2 pt 5 lc rgb "#5dade2" title "ipblock, miss", \
		dir."/prog-v".f."-hit-ipblock.dat"  using 1:6 with linespoints dt 3 lw 1 pt 6 lc rgb "#1f5f9e" title "ipblock, hit, 256 sources (warm cache)", \
		dir."/prog-v".f."-miss-ipblock.dat" using 1:6 with linespoints dt 3 lw 1 pt 4 lc rgb "#5dade2" title "ipblock, miss, 256 sources (warm cache)", \
		empty with lines lc rgb "black" lw 2 title sprintf("empty XDP program (baseline) %.0f ns", empty), \
		src with lines lc rgb "gray40" dt 2 lw 1 title sprintf("reads the headers, drops by source %.0f ns", src), \
		empty + lim with lines lc rgb "#27ae60" dt 3 lw 2 title sprintf("target, path cached: empty + %d ns", lim)
}
unset multiplot
unset title
set key outside right top vertical Left reverse box noopaque

# --- kernel memory against rule-set size ---------------------------------------------
if (mem) {
	set output out."/memory.png"
	set terminal pngcairo size 1100,620 font "sans,10" noenhanced
	set title "Kernel memory per rule-set size (log scale; 0 MiB not drawn)"
	set xlabel "rules (100k and 1M: half IPv4, half IPv6)"
	set ylabel "MiB (log scale)"
	set logscale y
	set xrange [-0.3:3.3]
	set xtics auto
	set key inside left top vertical Left reverse box opaque
	pos(v) = v > 0 ? v : NaN
	plot \
		dir."/memory.dat" using 1:(pos($3)):xtic(2) with linespoints lw 2 pt 7 lc rgb "#1f5f9e" title "ipblock: memlock of every map", \
		'' using 1:(pos($10)) with linespoints lw 1 dt 2 pt 6 lc rgb "#1f5f9e" title "ipblock: kernel delta", \
		'' using 1:(pos($4)) with linespoints lw 2 pt 5 lc rgb "#c0392b" title "LPM tries alone: memlock", \
		'' using 1:(pos($11)) with linespoints lw 1 dt 2 pt 4 lc rgb "#c0392b" title "LPM tries alone: kernel delta", \
		'' using 1:(pos($5)) with linespoints lw 2 pt 9 lc rgb "#6aa84f" title "ipset hash:net: Size in memory", \
		'' using 1:(pos($6)):(pos($7)):(pos($8)) with yerrorlines lw 2 pt 11 lc rgb "#e08a1e" title "nftables interval set: kernel delta", \
		'' using 1:9 with points pt 3 ps 2 lw 2 lc rgb "black" title "issue 14 goal for ipblock"
	unset logscale y
	unset title
	set key outside right top vertical Left reverse box noopaque
}
set terminal pngcairo size 1100,560 font "sans,10" noenhanced
unset xrange

# --- Mpps per system ------------------------------------------------------------
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.75 border -1
set boxwidth 0.9
set yrange [0:*]
set xtics auto
set xlabel "rules in the list"
set ylabel "Mpps per receiver CPU-second (median, min–max bars)"
floor = real(system("awk '{ print $1 }' ".dir."/floors.dat"))
srcfloor = real(system("awk '{ print $2 }' ".dir."/floors.dat"))
nofilter = real(system("awk '{ print $3 }' ".dir."/floors.dat"))
xdppass = real(system("awk '{ print $4 }' ".dir."/floors.dat"))

set output out."/droprate.png"
set title "Drop rate over veth, source denied (frames per CPU-second of the receiver)"
plot \
	dir."/drop.dat" using 2:3:4:xtic(1) title "ipblock (native XDP)" lc rgb "#2a7ab0", \
	'' using 5:6:7 title "LPM-trie XDP filter" lc rgb "#c0392b", \
	'' using 8:9:10 title "nftables netdev ingress, interval set" lc rgb "#e08a1e", \
	'' using 11:12:13 title "iptables raw + ipset hash:net" lc rgb "#6aa84f", \
	floor with lines lc rgb "black" lw 2 title sprintf("XDP drop-everything (the path's limit) %.2f", floor), \
	srcfloor with lines lc rgb "gray40" dt 2 lw 2 title sprintf("XDP drop-by-source (reads the headers) %.2f", srcfloor)

set output out."/passrate.png"
set title "Pass rate over veth, source matching no rule (frames per CPU-second of the receiver)"
plot \
	dir."/pass.dat" using 2:3:4:xtic(1) title "ipblock (native XDP)" lc rgb "#2a7ab0", \
	'' using 5:6:7 title "LPM-trie XDP filter" lc rgb "#c0392b", \
	'' using 8:9:10 title "nftables netdev ingress, interval set" lc rgb "#e08a1e", \
	'' using 11:12:13 title "iptables raw + ipset hash:net" lc rgb "#6aa84f", \
	nofilter with lines lc rgb "black" lw 2 title sprintf("no filter (baseline) %.2f", nofilter), \
	xdppass with lines lc rgb "gray40" dt 2 lw 2 title sprintf("XDP pass-everything %.2f", xdppass)
