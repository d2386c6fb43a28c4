#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: ipblock's figures against baselines measured in the same run.
#
#   1. drop and pass rates over veth: ipblock (flat lookup, and the LPM
#      tries alone as "before"), nftables, iptables + ipset, and XDP
#      programs that drop or pass everything (bench_droprate.sh)
#   2. cost per packet of the XDP program against an empty one, both
#      lookups (bench_prog)
#   3. rule loading: one rule by each CLI, whole lists imported, the cost of
#      one change in a 1M-rule table (bench_update), bulk operations of
#      ipblock-rule with both lookups (bench_import.sh)
#   4. the common library's micro-benchmarks, when built
#
# Prints the report (markdown) and writes it to bench/results/latest.md with
# PNG plots beside it.  The machine is shared: every figure is the median of
# interleaved rounds, shown with its min-max.  Environment: BUILD (as for
# make), BENCH_ROUNDS (default 5; BENCH_PROG_ROUNDS, default 9, for
# bench_prog), BENCH_SIZES (default "1 3000 100000
# 1000000"), BENCH_PROG_SIZES (default 0,1000,100000,1000000),
# BENCH_UPDATE=0 to skip bench_update, BENCH_IMPORT=0 to skip
# bench/bench_import.sh.
set -u

MAKE_BUILD=${BUILD:-build}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=${BENCH_ROUNDS:-5}
# bench_prog's rounds are cheap (half a minute for 5) and its figures are a
# few ns apart: more rounds steady their medians.
PROG_ROUNDS=${BENCH_PROG_ROUNDS:-9}
SIZES=${BENCH_SIZES:-1 3000 100000 1000000}
PROG_SIZES=${BENCH_PROG_SIZES:-0,1000,100000,1000000}
export BUILD
RESULTS=$BL_REPO/bench/results
START=$(now_us)

bl_init nft ipset iptables bpftool gnuplot timeout "$GNU_TIME"
mkdir -p "$RESULTS"
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
# libxdp's dispatcher pins, to see that the bench left none of its own.
xdp_pins() {
	find /sys/fs/bpf/xdp -mindepth 1 -maxdepth 1 2>/dev/null | sort
}
XDP_PINS_BEFORE=$(xdp_pins)
# What is about to be built: others may commit while the bench runs.
COMMIT=$(git -C "$BL_REPO" rev-parse --short HEAD 2>/dev/null)
git -C "$BL_REPO" diff --quiet HEAD -- bpf common loader rule 2>/dev/null || COMMIT+=" (+ uncommitted changes)"

# --- build -------------------------------------------------------------------

log "building the bench programs"
make --no-print-directory -C "$BL_REPO" BUILD="$MAKE_BUILD" \
	"$MAKE_BUILD/bench/trafficgen" "$MAKE_BUILD/bench/bench_prog" \
	"$MAKE_BUILD/bench/bench_update" >&2 ||
	die "cannot build the bench programs"
# The library's micro-benchmarks belong to others and may be mid-edit.
LIB_BENCHES=()
for b in bench_lfqueue bench_rwlock; do
	[[ -f $BL_REPO/bench/$b.c ]] || continue
	if make --no-print-directory -C "$BL_REPO" BUILD="$MAKE_BUILD" "$MAKE_BUILD/bench/$b" >&2; then
		LIB_BENCHES+=("$b")
	else
		log "$b does not build now; left out"
	fi
done

# run_child CMD...: a child in the background, so that an interrupt reaches
# the clean-up here, which stops it and waits for its own clean-up.
run_child() {
	bl_bg "$@"
	bl_wait "$BL_BG"
}

# --- 2. cost per packet --------------------------------------------------------

log "section 2: cost per packet, trie and flat lookups (bench_prog)"
run_child "$BUILD/bench/bench_prog" -n "$PROG_ROUNDS" -r 300000 -c 0 -o "$BL_TMP/prog.dat" \
	-s "$PROG_SIZES" -l trie,flat >"$BL_TMP/prog.md" ||
	die "bench_prog failed"

UPDATE_MD=
if [[ ${BENCH_UPDATE:-1} != 0 ]]; then
	log "section 3: one rule change in a 1M-rule table (bench_update)"
	if run_child "$BUILD/bench/bench_update" -c 0 >"$BL_TMP/update.md" 2>"$BL_TMP/update.err"; then
		UPDATE_MD=$BL_TMP/update.md
	else
		log "bench_update failed: $(tail -n 3 "$BL_TMP/update.err")"
	fi
fi

# --- 1. drop and pass rates, 3. loading (same namespaces) ----------------------

log "sections 1 and 3: drop rates and rule loading (bench_droprate.sh)"
run_child "$BL_DIR/bench_droprate.sh" -o "$BL_TMP/dr" -r "$ROUNDS" -s "$SIZES" ||
	die "bench_droprate.sh failed"

IMPORT_MD=
if [[ ${BENCH_IMPORT:-1} != 0 && -x $BL_DIR/bench_import.sh ]]; then
	log "section 3: ipblock-rule bulk figures (bench_import.sh)"
	if run_child timeout 400 "$BL_DIR/bench_import.sh" -o "$BL_TMP/import.dat" \
		>"$BL_TMP/import.md" 2>"$BL_TMP/import.err"; then
		IMPORT_MD=$BL_TMP/import.md
	else
		log "bench_import.sh failed: $(tail -n 3 "$BL_TMP/import.err")"
	fi
fi

# --- 4. library ------------------------------------------------------------------

for b in "${LIB_BENCHES[@]}"; do
	log "section 4: $b"
	if ! run_child timeout 120 "$BUILD/bench/$b" >"$BL_TMP/$b.md" 2>"$BL_TMP/$b.err"; then
		log "$b failed: $(tail -n 3 "$BL_TMP/$b.err")"
		echo "($b failed: $(tail -n 1 "$BL_TMP/$b.err"))" >"$BL_TMP/$b.md"
	fi
done

# --- plots -------------------------------------------------------------------------

log "plots"
PD=$BL_TMP/plot
mkdir -p "$PD"
# prog.dat: prog rules family kind lookup median min max delta warm_median
# warm_min warm_max warm_delta.
awk '$1 == "empty" { print $6 }' "$BL_TMP/prog.dat" >"$PD/prog-empty.dat"
for f in 4 6; do
	for k in hit miss; do
		for l in trie flat; do
			awk -v f=$f -v k=$k -v l=$l '$1 == "ipblock" && $3 == f && $4 == k && $5 == l {
				x = $2 == 0 ? 0 : $2 <= 1000 ? 1 : $2 <= 100000 ? 2 : 3
				print x, $2, $6, $7, $8, $10 }' "$BL_TMP/prog.dat" >"$PD/prog-v$f-$k-$l.dat"
		done
	done
done
# pivot MODE: "label ipblock lo hi ipbtrie lo hi nft lo hi ipt lo hi" per list size.
pivot() {
	awk -v sizes="$SIZES" '
		{ v[$1, $2] = $3 " " $4 " " $5 }
		END {
			n = split(sizes, s, " ")
			for (i = 1; i <= n; i++) {
				l = s[i] == 1000000 ? "1M" : s[i] == 100000 ? "100k" : s[i] == 3000 ? "3,000" : s[i]
				line = l
				split("ipblock ipbtrie nft ipt", sys, " ")
				for (j = 1; j <= 4; j++)
					line = line " " ((sys[j], s[i]) in v ? v[sys[j], s[i]] : "- - -")
				print line
			}
		}' "$BL_TMP/dr/$1.dat"
}
pivot drop >"$PD/drop.dat"
pivot pass >"$PD/pass.dat"
{
	awk '$1 == "floor" { printf "%s ", $3 }' "$BL_TMP/dr/drop.dat"
	awk '$1 == "nofilter" { printf "%s ", $3 }' "$BL_TMP/dr/pass.dat"
	awk '$1 == "xdppass" { print $3 }' "$BL_TMP/dr/pass.dat"
} >"$PD/floors.dat"
gnuplot -e "dir='$PD'; out='$RESULTS'" "$BL_DIR/plots.gp" 2>"$BL_TMP/gnuplot.err" ||
	log "gnuplot failed: $(tail -n 3 "$BL_TMP/gnuplot.err")"

# --- clean-up check --------------------------------------------------------------

leftovers() {
	ip netns list 2>/dev/null | grep -E '^(ipblock-bench-|ipbbench-)'
	ls -d /sys/fs/bpf/ipblock-bench-* /sys/fs/bpf/ipbbench-* 2>/dev/null
	comm -13 <(echo "$XDP_PINS_BEFORE") <(xdp_pins)
	nft list tables 2>/dev/null | grep ipblock_bench
	ipset list -n 2>/dev/null | grep ipblock_bench
	iptables -t raw -S 2>/dev/null | grep ipblock_bench
}
LEFT=$(leftovers)

# --- report ----------------------------------------------------------------------

# prog_target FAMILY LIMIT KIND: a program-cost row of the targets table:
# the flat lookup's worst Δ over every rule count and source kind, each
# count's figures, and the trie's worst for comparison.  KIND warm: 256
# sources cycled, so the lookup's path stays cached (how the issue measured
# the trie); cold: 65,536 random sources, each step a likely cache and TLB
# miss.
prog_target() {
	awk -v f="$1" -v lim="$2" -v kind="$3" '
		function lbl(n) { return n >= 1000000 ? n / 1000000 "M" : n >= 1000 ? n / 1000 "k" : n }
		$1 == "ipblock" && $3 == f {
			v = kind == "warm" ? $13 : $9
			if ($5 == "flat") {
				if (!(($2) in seen)) { seen[$2] = 1; order[++n] = $2 }
				d[$2, $4] = v
				if (!have || v > worst) { worst = v; at = lbl($2) " " $4; have = 1 }
			} else if (!thave || v > tworst) {
				tworst = v; tat = lbl($2) " " $4; thave = 1
			}
		}
		END {
			name = "Flat IPv" f " cost ≤ empty program + " lim " ns at every rule count up to 1M, " \
				(kind == "warm" ? "path cached (256 sources)" : "cold (65,536 random sources)")
			if (!have) { print "| " name " | not measured | n/a |"; exit }
			per = ""
			for (i = 1; i <= n; i++) {
				c = order[i]
				per = per (i > 1 ? "; " : "") lbl(c) ": " \
					((c, "hit") in d ? sprintf("%+.0f", d[c, "hit"]) : "–") "/" sprintf("%+.0f", d[c, "miss"])
			}
			printf "| %s | after (flat): worst %+.0f ns (%s); hit/miss per count: %s.  Before (trie): worst %s | %s |\n",
				name, worst, at, per,
				thave ? sprintf("%+.0f ns (%s)", tworst, tat) : "not measured",
				worst <= lim ? "**met**" : "**MISSED**"
		}' "$BL_TMP/prog.dat"
}

# import_target: the bulk issue's 1M import row (bench_import.sh's data).
import_target() {
	local f=$BL_TMP/import.dat
	if [[ ! -s $f ]]; then
		echo "| Import of 1M IPv4 prefixes (\`ipblock-rule -i\`) ≤ 2 s | not measured | n/a |"
		return
	fi
	awk '$1 == "import1m" { m[$2] = $3; lo[$2] = $4; hi[$2] = $5 }
		END {
			fig = ("flat" in m) ? sprintf("after (flat): %.2f s (%.2f–%.2f)", m["flat"], lo["flat"], hi["flat"]) : "flat: not measured"
			if ("trie" in m)
				fig = fig sprintf("; before (trie): %.2f s (%.2f–%.2f)", m["trie"], lo["trie"], hi["trie"])
			printf "| Import of 1M IPv4 prefixes (`ipblock-rule -i`, attached, empty set) ≤ 2 s | %s | %s |\n",
				fig, !("flat" in m) ? "n/a" : m["flat"] <= 2 ? "**met**" : "**MISSED**"
		}' "$f"
}

# demote: a child's "## heading" becomes a "#### heading".
demote() {
	sed 's/^## /#### /'
}

ELAPSED=$((($(now_us) - START) / 1000000))
CPU=$(lscpu 2>/dev/null | awk -F: '/^Model name/ { gsub(/^ +/, "", $2); print $2; exit }')

{
	echo "# ipblock benchmarks"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "- kernel: $(uname -r) ($(uname -m))"
	echo "- CPU: ${CPU:-unknown} × $(nproc); memory $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "- commit: ${COMMIT:-unknown}; build dir: $MAKE_BUILD"
	echo "- load average at start: $LOAD_START, at end: $(cut -d' ' -f1-3 /proc/loadavg) (a shared machine: read the min–max)"
	echo "- run time: $((ELAPSED / 60)) min $((ELAPSED % 60)) s for bench/run.sh (its own build step included)"
	echo
	echo "## Targets"
	echo
	echo "Benchmarks, not tests: a missed target is reported here and changes no exit status."
	echo
	echo "| target | figure (this run) | met? |"
	echo "|---|---|---|"
	cat "$BL_TMP/dr/targets-drop.md"
	prog_target 4 20 warm
	prog_target 6 40 warm
	prog_target 4 20 cold
	prog_target 6 40 cold
	import_target
	echo
	echo "## 1. Drop rate over veth (Mpps at the receiver), source denied"
	echo
	echo "Each system on its own veth pair with the same generated list (FireHOL-level1-shaped:"
	echo "/32 hosts, cut /24 blocks, bogon-sized prefixes, random /8–/31 elsewhere; no overlaps)."
	echo "Baseline: an XDP program that drops everything, the limit of this path.  It never reads"
	echo "the frame; every filter does, and the frame was written by the sender on the other CPU."
	echo
	cat "$BL_TMP/dr/drop.md"
	echo
	cat "$BL_TMP/dr/notes.md"
	echo
	echo "![drop rate](droprate.png)"
	echo
	echo "### Pass path: source matching no rule"
	echo
	echo "The passed frames end in the receiver's routing step (not addressed to it, forwarding off)."
	echo "Baseline: the same receiver without any filter."
	echo
	cat "$BL_TMP/dr/pass.md"
	echo
	echo "![pass rate](passrate.png)"
	echo
	echo "## 2. Cost per packet of the XDP program (BPF_PROG_RUN)"
	echo
	echo "Baseline: an empty XDP program (returns XDP_PASS) behind the same source-rewriting"
	echo "wrapper; Δ is what ipblock adds.  Two lookups, each its own instance of the same program:"
	echo "*trie* (\`--lookup trie\`, the before: one kernel LPM-trie lookup per packet) and *flat*"
	echo "(the default, the after: the flat tables, one array load for a /24 region without longer"
	echo "rules, a few hash probes otherwise, a walk down a tree of nodes in a region crowded with"
	echo "more than 8 long lengths, the trie only for regions the table cannot hold)."
	echo "With 65,536 random sources a large table's path misses the caches; the warm columns"
	echo "(256 sources) show the same lookups with their path cached."
	echo
	cat "$BL_TMP/prog.md"
	echo
	echo "Reading the flat rows: with 65,536 random sources the cost is memory latency.  The top"
	echo "array alone has 2^24 entries per set, so a random source's entry is seldom in a cache and"
	echo "its page seldom in the TLB, even with no rules at all; a region holding longer rules adds"
	echo "a record and hash probes, each another likely miss.  The warm columns show the same"
	echo "lookups once their lines are cached.  In the generated IPv6 list the denied block"
	echo "2001:db8::/48 (/128 hosts, /64 blocks cut down to /72, the rest as prefixes of every"
	echo "length) lies in one /24 region with far more than 8 long lengths: that region is split"
	echo "into a tree of nodes (8 lengths each), so a /128 host there costs a few marker probes on"
	echo "the way down.  At 1k rules it holds most IPv6 rules and so most IPv6 hit sources."
	echo
	echo "![ns per packet](prog_cost.png)"
	echo
	echo "## 3. Rule loading"
	echo
	cat "$BL_TMP/dr/import.md"
	echo
	echo "### One rule change in a 1M-rule table (bench_update)"
	echo
	if [[ -n $UPDATE_MD ]]; then
		echo "\`maps_rule_set()\` and \`maps_rule_delete()\` (what \`ipblock-rule -a\` / \`-d\` call) in a"
		echo "private instance holding 1M IPv4 rules of the generated list, against the same change in"
		echo "an empty instance (the baseline), per lookup.  *warm*: in a process that has made a"
		echo "change before; *first*: the first change after \`maps_release()\`, as every CLI call makes."
		echo
		cat "$UPDATE_MD"
	else
		echo "bench_update: not run (disabled or failed)."
	fi
	echo
	if [[ -n $IMPORT_MD ]]; then
		echo "### ipblock-rule bulk operations (bench/bench_import.sh, its own random /16–/32 lists)"
		echo
		demote <"$IMPORT_MD"
	else
		echo "bench/bench_import.sh: not run (missing, disabled or failed)."
	fi
	echo
	echo "## 4. Common library"
	echo
	if ((${#LIB_BENCHES[@]} == 0)); then
		echo "No library benchmark is built yet."
	fi
	for b in "${LIB_BENCHES[@]}"; do
		echo "### $b"
		echo
		demote <"$BL_TMP/$b.md"
		echo
	done
	echo "## Method"
	echo
	echo "- Traffic: \`trafficgen send\` runs bench/trafficgen.bpf.c's tg_tx with BPF_PROG_RUN and"
	echo "  BPF_F_TEST_XDP_LIVE_FRAMES, ctx ingress_ifindex = the sending veth, so each XDP_TX leaves"
	echo "  through that veth into its peer.  tg_tx writes the next of 4,096 random sources (with"
	echo "  their checksums) into each frame.  Sources: 198.18.0.0/16 (denied by every list) or"
	echo "  198.19.0.0/17 (matched by none); destination 198.19.255.1."
	echo "- veth: frames sent by XDP into a veth are only accepted when the peer's NAPI runs, i.e."
	echo "  when the peer has an XDP program or GRO on; otherwise they vanish without a counter."
	echo "  Every receiver here has GRO on (XDP ones have their program too) and threaded NAPI"
	echo "  pinned to CPU 1; the sender is pinned to CPU 0; both at nice -10."
	echo "- Counting: the receiving veth's rx_packets over a timed window, cross-checked against"
	echo "  each system's own drop count (ipblock's stats map, the iptables rule's counter; for"
	echo "  nftables the frames that never reached IPv4 input, since listing any part of a table"
	echo "  with a 1M-element set takes nft minutes).  The nft rule has a counter all the same,"
	echo "  as iptables rules always do."
	echo "- Program cost: bench_prog runs tg_call, which rewrites the source from the pool and"
	echo "  tail-calls the program under test, repeat times per BPF_PROG_RUN; ipblock's counters"
	echo "  confirm every frame got the expected verdict.  Each instance's maps are sized by"
	echo "  pins_obj_size() for 1M rules per family (the loader's default) and filled by"
	echo "  maps_replace_rules(), which compiles the flat tables as ipblock-rule does.  Those"
	echo "  frames never reach an interface, so their sources are random over the range the"
	echo "  rules cover, not documentation addresses."
	echo "- Drop rates: ipblock is attached twice per list size, with the default lookup (flat) and"
	echo "  with \`ipblock-loader --lookup trie\`, each with its own pin directory and veth pair."
	echo
	echo "## Clean-up check"
	echo
	if [[ -z $LEFT ]]; then
		echo "After the run: no bench namespace, pin, XDP dispatcher pin, nft table, ipset set or"
		echo "iptables rule left."
	else
		echo "Left behind after the run (a bug):"
		echo
		echo '```'
		echo "$LEFT"
		echo '```'
	fi
} >"$BL_TMP/latest.md"

cp "$BL_TMP/latest.md" "$RESULTS/latest.md"
cat "$RESULTS/latest.md"
log "report: $RESULTS/latest.md; plots: $RESULTS/*.png; $ELAPSED s"
