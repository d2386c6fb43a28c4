#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: ipblock's figures against baselines measured in the same run.
#
#   1. drop and pass rates over veth: ipblock, an XDP filter judging by a
#      plain BPF LPM trie, nftables, iptables + ipset, and XDP programs that
#      drop everything, read the headers and drop by source (the two
#      floors) or pass everything (bench_droprate.sh)
#   2. cost per packet of the XDP program against an empty one, beside the
#      LPM-trie filter (bench_prog)
#   3. kernel memory per rule-set size: ipblock, the LPM tries alone, ipset
#      hash:net, an nftables interval set (bench_memory.sh)
#   4. rule loading: one rule by each CLI, whole lists imported, the cost of
#      one change in a 1M-rule table (bench_update), bulk operations of
#      ipblock-rule (bench_import.sh)
#   5. the common library's micro-benchmarks, when built
#   6. CrowdSec: 10,000 decisions applied by ipblock's bouncer and by
#      crowdsec-firewall-bouncer (crowdsec_vs_bouncer.sh; also make bench-crowdsec)
#
# Prints the report (markdown) and writes it to bench/results/latest.md with
# PNG plots beside it.  The machine is shared: every figure is the median of
# interleaved rounds, shown with its min-max.  Environment: BUILD (as for
# make), BENCH_ROUNDS (default 4; BENCH_PROG_ROUNDS, default 7, for
# bench_prog; BENCH_MEM_ROUNDS, default 2, for the nftables loads of
# bench_memory.sh), BENCH_SIZES (default "1 3000 100000 1000000"),
# BENCH_PROG_SIZES (default 0,1000,100000,1000000), BENCH_MEM_SIZES
# (default "0 3000:v4 100000:mixed 1000000:mixed"), BENCH_MEM=0,
# BENCH_UPDATE=0, BENCH_IMPORT=0 to skip bench_memory.sh, bench_update,
# bench_import.sh, BENCH_CROWDSEC=0 to skip crowdsec_vs_bouncer.sh (section 6).
set -u

MAKE_BUILD=${BUILD:-build}
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# The drop rates' ratios are of rates per CPU-second of the receiver, which
# the machine's other load moves little: 4 rounds (5 before the memory
# section came) keep the whole bench near six minutes.
ROUNDS=${BENCH_ROUNDS:-4}
# bench_prog's rounds are cheap (half a minute for 5) and its figures are a
# few ns apart: more rounds steady their medians.
PROG_ROUNDS=${BENCH_PROG_ROUNDS:-7}
SIZES=${BENCH_SIZES:-1 3000 100000 1000000}
PROG_SIZES=${BENCH_PROG_SIZES:-0,1000,100000,1000000}
MEM_ROUNDS=${BENCH_MEM_ROUNDS:-2}
MEM_SIZES=${BENCH_MEM_SIZES:-0 3000:v4 100000:mixed 1000000:mixed}
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
make --no-print-directory -C "$BL_REPO" BUILD="$MAKE_BUILD" all \
	"$MAKE_BUILD/bench/trafficgen" "$MAKE_BUILD/bench/bench_prog" \
	"$MAKE_BUILD/bench/bench_update" >&2 ||
	die "cannot build the bench programs"
bl_need_built "$LOADER" "$RULE" "$TG" "$BUILD/bench/bench_prog" "$BUILD/bench/bench_update"
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

log "section 2: cost per packet, ipblock and the LPM-trie filter (bench_prog)"
run_child "$BUILD/bench/bench_prog" -n "$PROG_ROUNDS" -r 300000 -c 0 -o "$BL_TMP/prog.dat" \
	-s "$PROG_SIZES" >"$BL_TMP/prog.md" ||
	die "bench_prog failed"

UPDATE_MD=
if [[ ${BENCH_UPDATE:-1} != 0 ]]; then
	log "section 4: one rule change in a 1M-rule table (bench_update)"
	if run_child "$BUILD/bench/bench_update" -c 0 >"$BL_TMP/update.md" 2>"$BL_TMP/update.err"; then
		UPDATE_MD=$BL_TMP/update.md
	else
		log "bench_update failed: $(tail -n 3 "$BL_TMP/update.err")"
	fi
fi

# --- 1. drop and pass rates, 3. loading (same namespaces) ----------------------

log "sections 1 and 4: drop rates and rule loading (bench_droprate.sh)"
run_child "$BL_DIR/bench_droprate.sh" -o "$BL_TMP/dr" -r "$ROUNDS" -s "$SIZES" ||
	die "bench_droprate.sh failed"

MEM_OK=
if [[ ${BENCH_MEM:-1} != 0 ]]; then
	log "section 3: kernel memory per rule-set size (bench_memory.sh)"
	if run_child "$BL_DIR/bench_memory.sh" -o "$BL_TMP/mem" -r "$MEM_ROUNDS" -s "$MEM_SIZES"; then
		MEM_OK=1
	else
		log "bench_memory.sh failed (its messages above)"
	fi
fi

IMPORT_MD=
if [[ ${BENCH_IMPORT:-1} != 0 && -x $BL_DIR/bench_import.sh ]]; then
	log "section 4: ipblock-rule bulk figures (bench_import.sh)"
	if run_child timeout 400 "$BL_DIR/bench_import.sh" -o "$BL_TMP/import.dat" \
		>"$BL_TMP/import.md" 2>"$BL_TMP/import.err"; then
		IMPORT_MD=$BL_TMP/import.md
	else
		log "bench_import.sh failed: $(tail -n 3 "$BL_TMP/import.err")"
	fi
fi

# --- 4. library ------------------------------------------------------------------

for b in "${LIB_BENCHES[@]}"; do
	log "section 5: $b"
	if ! run_child timeout 120 "$BUILD/bench/$b" >"$BL_TMP/$b.md" 2>"$BL_TMP/$b.err"; then
		log "$b failed: $(tail -n 3 "$BL_TMP/$b.err")"
		echo "($b failed: $(tail -n 1 "$BL_TMP/$b.err"))" >"$BL_TMP/$b.md"
	fi
done

# --- 6. CrowdSec: ipblock's bouncer beside crowdsec-firewall-bouncer ------------------

CROWDSEC_MD=
if [[ ${BENCH_CROWDSEC:-1} != 0 ]]; then
	if command -v crowdsec-firewall-bouncer >/dev/null && command -v crowdsec >/dev/null; then
		log "section 6: CrowdSec decisions, ipblock beside crowdsec-firewall-bouncer (crowdsec_vs_bouncer.sh)"
		if run_child timeout 400 "$BL_DIR/crowdsec_vs_bouncer.sh" \
			-o "$RESULTS/crowdsec_vs_bouncer.md" >"$BL_TMP/crowdsec.md" 2>"$BL_TMP/crowdsec.err"; then
			CROWDSEC_MD=$BL_TMP/crowdsec.md
		else
			log "crowdsec_vs_bouncer.sh failed: $(tail -n 3 "$BL_TMP/crowdsec.err")"
		fi
	else
		log "section 6 left out: crowdsec or crowdsec-firewall-bouncer is not installed (make deps)"
	fi
fi

# --- plots -------------------------------------------------------------------------

log "plots"
PD=$BL_TMP/plot
mkdir -p "$PD"
# prog.dat: prog rules family kind median min max delta warm_median warm_min
# warm_max warm_delta (prog: empty, src, trie, ipblock).
awk '$1 == "empty" { print $5 }' "$BL_TMP/prog.dat" >"$PD/prog-empty.dat"
for f in 4 6; do
	awk -v f=$f '$1 == "src" && $3 == f { print $5 }' "$BL_TMP/prog.dat" >"$PD/prog-src-v$f.dat"
	for k in hit miss; do
		for p in trie ipblock; do
			awk -v f=$f -v k=$k -v p=$p '$1 == p && $3 == f && $4 == k {
				x = $2 == 0 ? 0 : $2 <= 1000 ? 1 : $2 <= 100000 ? 2 : 3
				print x, $2, $5, $6, $7, $9 }' "$BL_TMP/prog.dat" >"$PD/prog-v$f-$k-$p.dat"
		done
	done
done
# pivot MODE: "label ipblock lo hi trie lo hi nft lo hi ipt lo hi" per list
# size, in Mpps per receiver CPU-second ($OUT/MODE.dat: kind size wall lo hi
# cpu lo hi).
pivot() {
	awk -v sizes="$SIZES" '
		{ v[$1, $2] = $6 " " $7 " " $8 }
		END {
			n = split(sizes, s, " ")
			for (i = 1; i <= n; i++) {
				l = s[i] == 1000000 ? "1M" : s[i] == 100000 ? "100k" : s[i] == 3000 ? "3,000" : s[i]
				line = l
				split("ipblock trie nft ipt", sys, " ")
				for (j = 1; j <= 4; j++)
					line = line " " ((sys[j], s[i]) in v ? v[sys[j], s[i]] : "- - -")
				print line
			}
		}' "$BL_TMP/dr/$1.dat"
}
pivot drop >"$PD/drop.dat"
pivot pass >"$PD/pass.dat"
{
	awk '$1 == "floor" { printf "%s ", $6 }' "$BL_TMP/dr/drop.dat"
	awk '$1 == "srcfloor" { printf "%s ", $6 }' "$BL_TMP/dr/drop.dat"
	awk '$1 == "nofilter" { printf "%s ", $6 }' "$BL_TMP/dr/pass.dat"
	awk '$1 == "xdppass" { print $6 }' "$BL_TMP/dr/pass.dat"
} >"$PD/floors.dat"
# memory.dat: x label ipblock trie ipset nft nft_lo nft_hi goal ipblock_delta
# trie_delta (MiB), one line per size; the plot wants its index.
if [[ -n $MEM_OK ]]; then
	awk '{ $1 = NR - 1; print }' "$BL_TMP/mem/memory.dat" >"$PD/memory.dat"
fi
gnuplot -e "dir='$PD'; out='$RESULTS'; mem=${MEM_OK:-0}" "$BL_DIR/plots.gp" 2>"$BL_TMP/gnuplot.err" ||
	log "gnuplot failed: $(tail -n 3 "$BL_TMP/gnuplot.err")"

# --- clean-up check --------------------------------------------------------------

leftovers() {
	ip netns list 2>/dev/null | grep -E '^ipblock-bench-'
	ls -d /sys/fs/bpf/ipblock-bench-* 2>/dev/null
	comm -13 <(echo "$XDP_PINS_BEFORE") <(xdp_pins)
	nft list tables 2>/dev/null | grep ipblock_bench
	ipset list -n 2>/dev/null | grep ipblock_bench
	iptables -t raw -S 2>/dev/null | grep ipblock_bench
}
LEFT=$(leftovers)

# --- report ----------------------------------------------------------------------

# prog_target FAMILY LIMIT: a program-cost row of the targets table, path
# cached (256 sources cycled, how the issue measured): ipblock's worst Δ
# over every rule count and source kind, each count's figures, and the
# LPM-trie filter's worst for comparison.
prog_target() {
	awk -v f="$1" -v lim="$2" '
		function lbl(n) { return n >= 1000000 ? n / 1000000 "M" : n >= 1000 ? n / 1000 "k" : n }
		($1 == "ipblock" || $1 == "trie") && $3 == f {
			v = $12
			if ($1 == "ipblock") {
				if (!(($2) in seen)) { seen[$2] = 1; order[++n] = $2 }
				d[$2, $4] = v
				if (!have || v > worst) { worst = v; at = lbl($2) " " $4; have = 1 }
			} else if (!thave || v > tworst) {
				tworst = v; tat = lbl($2) " " $4; thave = 1
			}
		}
		END {
			name = "ipblock IPv" f " cost ≤ empty program + " lim " ns at every rule count up to 1M, path cached (256 sources)"
			if (!have) { print "| " name " | not measured | n/a |"; exit }
			per = ""
			for (i = 1; i <= n; i++) {
				c = order[i]
				per = per (i > 1 ? "; " : "") lbl(c) ": " \
					((c, "hit") in d ? sprintf("%+.0f", d[c, "hit"]) : "–") "/" sprintf("%+.0f", d[c, "miss"])
			}
			printf "| %s | worst %+.0f ns (%s); hit/miss per count: %s.  LPM-trie filter: worst %s | %s |\n",
				name, worst, at, per,
				thave ? sprintf("%+.0f ns (%s)", tworst, tat) : "not measured",
				worst <= lim ? "**met**" : "**MISSED**"
		}' "$BL_TMP/prog.dat"
}

# cold_target FAMILY LIMIT: ipblock's cold (65,536 sources) Δ for 1M hits
# against the old design's figure; every count's cold figures beside it.
cold_target() {
	awk -v f="$1" -v lim="$2" '
		function lbl(n) { return n >= 1000000 ? n / 1000000 "M" : n >= 1000 ? n / 1000 "k" : n }
		$1 == "ipblock" && $3 == f {
			if (!(($2) in seen)) { seen[$2] = 1; order[++n] = $2 }
			d[$2, $4] = $8
		}
		$1 == "trie" && $3 == f && $2 == 1000000 && $4 == "hit" { t = $8; th = 1 }
		END {
			name = "ipblock IPv" f " cold 1M hits no worse than the old design (empty + " lim " ns), 65,536 random sources"
			if (!((1000000, "hit") in d)) { print "| " name " | not measured (no 1M count) | n/a |"; exit }
			per = ""
			for (i = 1; i <= n; i++) {
				c = order[i]
				per = per (i > 1 ? "; " : "") lbl(c) ": " \
					((c, "hit") in d ? sprintf("%+.0f", d[c, "hit"]) : "–") "/" sprintf("%+.0f", d[c, "miss"])
			}
			printf "| %s | %+.0f ns; cold hit/miss per count: %s.  LPM-trie filter, 1M hits: %s | %s |\n",
				name, d[1000000, "hit"], per, th ? sprintf("%+.0f ns", t) : "not measured",
				d[1000000, "hit"] <= lim ? "**met**" : "**MISSED**"
		}' "$BL_TMP/prog.dat"
}

# import_target: the 1M import row (bench_import.sh's data).
import_target() {
	local f=$BL_TMP/import.dat
	if [[ ! -s $f ]]; then
		echo "| Import of 1M IPv4 prefixes (\`ipblock-rule -i\`) ≤ 2 s, growth included | not measured | n/a |"
		return
	fi
	awk '$1 == "import1m" {
			printf "| Import of 1M IPv4 prefixes (`ipblock-rule -i`, freshly attached, growth included) ≤ 2 s | %.2f s (%.2f–%.2f) | %s |\n",
				$2, $3, $4, $2 <= 2 ? "**met**" : "**MISSED**"
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
	prog_target 4 20
	prog_target 6 40
	cold_target 4 179
	cold_target 6 359
	[[ -n $MEM_OK ]] && cat "$BL_TMP/mem/targets-memory.md"
	import_target
	echo
	echo "## 1. Drop rate over veth (Mpps at the receiver), source denied"
	echo
	echo "Each system on its own veth pair with the same generated IPv4 list (FireHOL-level1-shaped:"
	echo "/32 hosts, cut /24 blocks, bogon-sized prefixes, random /8–/31 elsewhere; no overlaps)."
	echo "Two rates per row: Mpps the receiver took per second of wall clock, and per CPU-second of"
	echo "its NAPI thread, where all of its receive work runs.  The first depends on how much of"
	echo "its CPU the shared machine left it and on what the sender offered; the second is what it"
	echo "would take with a CPU of its own, so the ratios and the targets use it."
	echo "Two baselines, both XDP programs attached like ipblock: one that drops everything, the"
	echo "limit of this path, which never reads the frame; and one that reads the Ethernet and IP"
	echo "headers with ipblock's own parser and drops every frame whose source is not 0, the limit"
	echo "of any filter that judges by source address.  The frame was written by the sender on the"
	echo "other CPU, so its first read is a cache miss.  The *LPM-trie XDP filter* is the usual way"
	echo "to write an XDP blocklist: the same parser, one BPF_MAP_TYPE_LPM_TRIE lookup per packet"
	echo "in a trie per family filled with the same list, a per-CPU verdict count."
	echo
	cat "$BL_TMP/dr/drop.md"
	echo
	echo "Against the two floors, the filters alone:"
	echo
	cat "$BL_TMP/dr/floors.md"
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
	echo "wrapper; Δ is what a filter adds.  Per rule count N (N IPv4 and N IPv6 prefixes of the"
	echo "generated lists), one private instance of each: *ipblock* (its tables: one load for a /16"
	echo "block without longer rules, a chunk entry for a /24 region, a few hash probes for a"
	echo "region holding longer rules, a walk down a tree of nodes in a crowded one) and the"
	echo "*LPM-trie filter* (one kernel LPM-trie lookup).  With 65,536 random sources a large"
	echo "table's path misses the caches; the warm columns (256 sources) show the same lookups"
	echo "with their path cached."
	echo
	cat "$BL_TMP/prog.md"
	echo
	echo "![ns per packet](prog_cost.png)"
	echo
	echo "## 3. Kernel memory per rule-set size"
	echo
	if [[ -n $MEM_OK ]]; then
		echo "Issue 14's sizes: no rules; a FireHOL-level1-shaped list of 3,000 IPv4 prefixes; 100,000"
		echo "and 1,000,000 *mixed* prefixes, which here means half IPv4 and half IPv6 prefixes of the"
		echo "bench's generated lists (bench/rulegen.h).  ipblock is attached with new maps and fed"
		echo "by \`ipblock-rule -i\`, so its tables grow as a user's would; its figure is"
		echo "\`tables_memory()\` (what \`ipblock-loader -s\` prints): the memlock of every map,"
		echo "including the tables' inner segment maps and its four tries (two sets per family).  The"
		echo "*LPM tries alone* are one trie per family holding the list: the LPM-trie filter's maps."
		echo "ipset: two \`hash:net\` sets (inet, inet6) with ipset's defaults, their own \"Size in"
		echo "memory\".  nftables: a \`table inet\` with two interval sets and a chain matching them."
		echo
		cat "$BL_TMP/mem/memory.md"
		echo
		echo "![kernel memory](memory.png)"
		echo
		echo "What the kernel really allocates: the kernel delta beside each system's own account."
		echo
		cat "$BL_TMP/mem/memory-delta.md"
		echo
		echo "Reading it: an LPM trie's memlock counts its leaves only (24 bytes plus key and value"
		echo "each), not its intermediate nodes nor the allocator's rounding, so a trie really costs"
		echo "several times its memlock; ipblock keeps four, which is most of the gap between its two"
		echo "columns.  ipset charges only part of its memory to a memory cgroup, so its kernel delta"
		echo "is a lower bound when measured by cgroup; its own \"Size in memory\" is the figure."
		echo
		cat "$BL_TMP/mem/memory-notes.md"
	else
		echo "bench_memory.sh: not run (disabled or failed)."
	fi
	echo
	echo "## 4. Rule loading"
	echo
	cat "$BL_TMP/dr/import.md"
	echo
	echo "### One rule change in a 1M-rule table (bench_update)"
	echo
	if [[ -n $UPDATE_MD ]]; then
		echo "\`maps_rule_set()\` and \`maps_rule_delete()\` (what \`ipblock-rule -a\` / \`-d\` call) in a"
		echo "private instance holding 1M IPv4 rules of the generated list, against the same change in"
		echo "an empty instance (the baseline).  *warm*: in a process that has made a change before;"
		echo "*first*: the first change after \`maps_release()\`, as every CLI call makes."
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
	echo "## 5. Common library"
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
	echo "## 6. CrowdSec decisions: ipblock's bouncer beside crowdsec-firewall-bouncer"
	echo
	if [[ -n $CROWDSEC_MD ]]; then
		tail -n +3 "$CROWDSEC_MD"
	else
		echo "Not measured in this run (BENCH_CROWDSEC=0, crowdsec missing, or the script failed)."
	fi
	echo
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
	echo "  each system's own drop count (ipblock's and the LPM-trie filter's per-CPU counters, the"
	echo "  iptables rule's counter; for nftables the frames that never reached IPv4 input, since"
	echo "  listing any part of a table with a 1M-element set takes nft minutes)."
	echo "- Program cost: bench_prog runs tg_call, which rewrites the source from the pool and"
	echo "  tail-calls the program under test, repeat times per BPF_PROG_RUN; each filter's own"
	echo "  counters confirm every frame got the expected verdict.  ipblock's instances are loaded"
	echo "  with the default ceiling (its tries' max_entries) and filled by maps_replace_rules(),"
	echo "  which builds the tables as ipblock-rule does; the LPM-trie filter's tries are sized for"
	echo "  and filled with the same lists.  Those frames never reach an interface, so their"
	echo "  sources are random over the range the rules cover, not documentation addresses."
	echo "- Memory: see section 3; every load in a namespace of its own, removed afterwards."
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
