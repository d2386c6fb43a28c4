#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Kernel memory per rule-set size (issue 14), for ipblock, the LPM tries
# alone, ipset hash:net and an nftables interval set, all measured in the
# same run.  Writes markdown fragments and gnuplot data into OUTDIR;
# bench/run.sh assembles them.  Not a test.
#
#   BUILD=build-bench bench/bench_memory.sh -o OUTDIR [-r ROUNDS]
#                     [-s "0 3000:v4 100000:mixed 1000000:mixed"]
#
# A size is N:v4 (N IPv4 prefixes of bench/rulegen.h, the FireHOL-level1
# shape) or N:mixed (N/2 IPv4 and N/2 IPv6 prefixes of bench/rulegen.h);
# 0 is no rules.  Each system's figure is its own account of its memory:
#
#   ipblock    tables_memory() (trafficgen mem): memlock, as bpftool shows
#              it, of every map, the tables' inner segment maps and the four
#              tries included; loaded as a user would, ipblock-loader on new
#              maps and ipblock-rule -i, so the tables grow as the rules come
#   LPM tries  a trie per family holding the list (trafficgen trie, not
#              attached): the two tries' memlock
#   ipset      two hash:net sets (inet, inet6) with ipset's defaults,
#              maxelem raised to fit: the sum of their "Size in memory"
#   nftables   a table inet with two interval sets and a chain matching
#              them: nft reports no memory, so its figure is the kernel
#              delta (below)
#
# Kernel delta: the kernel memory charged to the bench's own memory cgroup
# (see kmem_kb; the whole machine's counters as a fallback), read once
# settled before loading, after loading and after removing again: two
# deltas per load.  Every system is loaded once at every size (its own
# account does not vary; the deltas check it), nftables ROUNDS times (its
# figure is the median of the deltas), each in a fresh namespace, and a
# load of nothing once per round shows the noise.
set -u
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

OUT=
ROUNDS=3
SIZES="0 3000:v4 100000:mixed 1000000:mixed"
SHRINK_TO=3000
LOAD_TIMEOUT=150

while getopts "o:r:s:h" opt; do
	case $opt in
	o) OUT=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	s) SIZES=$OPTARG ;;
	*) usage 3,34 "$opt" ;;
	esac
done
[[ -n $OUT ]] || die "give -o OUTDIR"
mkdir -p "$OUT" || die "cannot create $OUT"

bl_init nft ipset bpftool timeout
bl_need_built "$LOADER" "$RULE" "$TG"

SYSTEMS="ipblock trie ipset nft"

# --- lists -------------------------------------------------------------------

# size_n SIZE / size_kind SIZE: "100000:mixed" -> 100000 / mixed.
size_n() {
	echo "${1%%:*}"
}
size_kind() {
	[[ $1 == *:* ]] && echo "${1#*:}" || echo v4
}

label() {
	local n kind l
	n=$(size_n "$1")
	kind=$(size_kind "$1")
	case $n in
	0) echo "0 (no rules)"; return ;;
	1000000) l=1M ;;
	100000) l=100k ;;
	3000) l="3,000" ;;
	*) l=$n ;;
	esac
	[[ $kind == mixed ]] && echo "$l mixed" || echo "$l IPv4"
}

# Lists per size: $BL_TMP/S-4.txt and S-6.txt (S the count), and both in S.txt.
log "generating the lists: $SIZES"
for s in $SIZES; do
	n=$(size_n "$s")
	case $(size_kind "$s") in
	v4) n4=$n n6=0 ;;
	mixed) n4=$((n / 2)) n6=$((n - n / 2)) ;;
	*) die "size $s: the kind is v4 or mixed" ;;
	esac
	"$TG" rules -n "$n4" >"$BL_TMP/$n-4.txt" || die "cannot generate the lists"
	"$TG" rules -6 -n "$n6" >"$BL_TMP/$n-6.txt" || die "cannot generate the lists"
	cat "$BL_TMP/$n-4.txt" "$BL_TMP/$n-6.txt" >"$BL_TMP/$n.txt"
done
"$TG" rules -n "$SHRINK_TO" >"$BL_TMP/shrink.txt" || die "cannot generate the lists"

# --- the kernel's counters ---------------------------------------------------

# The kernel memory charged to the bench's own memory cgroup: BPF maps are
# charged to the cgroup of the process that creates them, nftables objects
# to the one that adds them, so the other work of a shared machine, in
# other cgroups, does not show.  cgroup v1: memory.kmem.usage_in_bytes;
# v2: memory.stat's "kernel".  Without either (the root cgroup), the whole
# machine's SUnreclaim + VmallocUsed + Percpu, which every other process
# moves too.
KMEM_FILE=
KMEM_HOW=
cg=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
if [[ -n $cg && -r /sys/fs/cgroup/memory$cg/memory.kmem.usage_in_bytes ]]; then
	KMEM_FILE=/sys/fs/cgroup/memory$cg/memory.kmem.usage_in_bytes
	KMEM_HOW="the kernel memory charged to the bench's memory cgroup (v1, \`memory.kmem.usage_in_bytes\`)"
else
	cg=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
	if [[ -n $cg && $cg != / ]] && grep -q '^kernel ' "/sys/fs/cgroup$cg/memory.stat" 2>/dev/null; then
		KMEM_FILE=/sys/fs/cgroup$cg/memory.stat
		KMEM_HOW="the kernel memory charged to the bench's memory cgroup (v2, \`memory.stat\` kernel)"
	else
		KMEM_HOW="the whole machine's SUnreclaim + VmallocUsed + Percpu (/proc/meminfo; the bench runs in the root cgroup, so every other process's allocations count too)"
	fi
fi
unset cg

# kmem_kb: the counter, in kB.
kmem_kb() {
	case $KMEM_FILE in
	*usage_in_bytes) echo $(($(<"$KMEM_FILE") / 1024)) ;;
	*memory.stat) awk '$1 == "kernel" { printf "%d\n", $2 / 1024 }' "$KMEM_FILE" ;;
	*) awk '/^(SUnreclaim|VmallocUsed|Percpu):/ { s += $2 } END { printf "%d\n", s }' /proc/meminfo ;;
	esac
}

# kmem_settled: kmem_kb once three reads lie within 64 kB (a cgroup's
# counter, read 0.1 s apart) or 512 kB (/proc/meminfo, whose counters lag
# by up to a second; 0.25 s apart), or after 12 reads.  BPF maps are freed
# after an RCU grace period.
kmem_settled() {
	local a=-1 b=-1 c i lo hi step=0.1 tol=64
	[[ -z $KMEM_FILE ]] && step=0.25 tol=512
	for ((i = 0; i < 12; i++)); do
		sleep "$step"
		c=$(kmem_kb)
		if ((a >= 0)); then
			lo=$a hi=$a
			((b < lo)) && lo=$b
			((c < lo)) && lo=$c
			((b > hi)) && hi=$b
			((c > hi)) && hi=$c
			((hi - lo < tol)) && break
		fi
		a=$b b=$c
	done
	echo "$c"
}

# --- loading and removing each system ------------------------------------------------

# load_SYS N loads list N into namespace NS (setting OWN: its own account
# in bytes, or "-"); unload_SYS removes it again.
OWN=
M=0
NS=
PINS=

# fresh: a namespace with a veth pair up, in NS.
fresh() {
	M=$((M + 1))
	ns_add "m$M"
	NS=m$M
	ip -n "$(ns "$NS")" link add name mv0 type veth peer name mv1 || die "cannot create a veth"
	ip -n "$(ns "$NS")" link set mv0 up
	ip -n "$(ns "$NS")" link set mv1 up
}

declare -A SHRINK XCHECK

load_ipblock() {
	local n=$1
	pin_dir "m$M"
	PINS=$PIN
	net "$NS" "$LOADER" --pin-dir "$PINS" -d mv0 -m native >/dev/null ||
		die "cannot attach ipblock"
	on_exit "net $NS $LOADER --pin-dir $PINS -d mv0 -u"
	if ((n > 0)); then
		net "$NS" timeout "$LOAD_TIMEOUT" "$RULE" --pin-dir "$PINS" -i "$BL_TMP/$n.txt" \
			-p deny >/dev/null || die "cannot import $n rules into ipblock"
	fi
	read -r _ OWN _ <<<"$("$TG" mem --pin-dir "$PINS")"
}

# After the kernel delta of ipblock's load at the largest size: the
# cross-check by bpftool and the memory after shrinking back.
after_ipblock() {
	local n=$1
	[[ $n == "$BIG" ]] || return 0
	XCHECK[$n]=$(bpftool_sum "$PINS")
	if ((n > SHRINK_TO)); then
		local m
		net "$NS" "$RULE" --pin-dir "$PINS" -R "$BL_TMP/shrink.txt" -p deny >/dev/null &&
			read -r _ m _ <<<"$("$TG" mem --pin-dir "$PINS")" && SHRINK[to]=$m
		net "$NS" "$RULE" --pin-dir "$PINS" -F >/dev/null &&
			read -r _ m _ <<<"$("$TG" mem --pin-dir "$PINS")" && SHRINK[zero]=$m
	fi
}

unload_ipblock() {
	net "$NS" "$LOADER" --pin-dir "$PINS" -d mv0 -u >/dev/null
	rm -rf "$PINS"
}

# hex_le BYTES...: the number little-endian hex bytes ("e0 e6 00 00") make.
hex_le() {
	local v=0 i
	for ((i = $#; i >= 1; i--)); do
		v=$((v * 256 + 16#${!i}))
	done
	echo "$v"
}

# bpftool_sum PIN: "bytes maps": memlock of every map pinned at PIN and of
# every inner map their outer maps hold, by bpftool alone: the cross-check
# of tables_memory().
bpftool_sum() {
	local pin=$1 f ids=() line
	for f in "$pin"/*; do
		line=$(bpftool map show pinned "$f" | head -n 1)
		ids+=("${line%%:*}")
		[[ $line == *array_of_maps* ]] || continue
		# An outer map's values are its inner maps' ids (u32).
		while read -r line; do
			# shellcheck disable=SC2086 # the value's four bytes
			ids+=("$(hex_le ${line##*value: })")
		done < <(bpftool map dump pinned "$f" | grep 'value:')
	done
	bpftool map show | awk -v want="${ids[*]}" '
		BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) keep[w[i]] = 1 }
		/^[0-9]+: / { id = $1; sub(":", "", id); cur = id in keep; if (cur) found++ }
		cur { for (i = 1; i < NF; i++) if ($i == "memlock") { b = $(i + 1); sub("B", "", b); sum += b } }
		END { printf "%d %d\n", sum, found }'
}

load_trie() {
	local n=$1
	pin_dir "t$M"
	PINS=$PIN
	"$TG" trie --pin-dir "$PINS" "$BL_TMP/$n-4.txt" "$BL_TMP/$n-6.txt" >"$BL_TMP/trie.out" ||
		die "cannot load the tries with $n rules"
	OWN=$(awk '{ for (i = 1; i < NF; i++) if ($i == "total") print $(i + 1) }' "$BL_TMP/trie.out")
}

unload_trie() {
	rm -rf "$PINS"
}

ipset_file() {
	local n=$1 f fam max
	max=$((n > 65536 ? n : 65536))
	for f in 4 6; do
		[[ $f == 4 ]] && fam=inet || fam=inet6
		echo "create ipblock_bench_m$f hash:net family $fam maxelem $max"
		sed "s/^/add ipblock_bench_m$f /" "$BL_TMP/$n-$f.txt"
	done
}

load_ipset() {
	local n=$1
	on_exit "net $NS ipset destroy"
	net "$NS" timeout "$LOAD_TIMEOUT" ipset restore -f "$BL_TMP/ipset-$n" ||
		die "ipset could not load $n prefixes"
	OWN=$(net "$NS" ipset list -t | awk -F': ' '/Size in memory/ { s += $2 } END { print s }')
}

unload_ipset() {
	net "$NS" ipset destroy
}

nft_file() {
	local n=$1 f
	echo "table inet ipblock_bench {"
	for f in 4 6; do
		echo "  set deny$f {"
		echo "    type ipv${f}_addr; flags interval;"
		if [[ -s $BL_TMP/$n-$f.txt ]]; then
			printf '    elements = { '
			paste -sd, "$BL_TMP/$n-$f.txt"
			echo "    }"
		fi
		echo "  }"
	done
	echo "  chain pre {"
	echo "    type filter hook prerouting priority -300; policy accept;"
	echo "    ip saddr @deny4 drop"
	echo "    ip6 saddr @deny6 drop"
	echo "  }"
	echo "}"
}

load_nft() {
	local n=$1
	on_exit "net $NS nft delete table inet ipblock_bench"
	net "$NS" timeout "$LOAD_TIMEOUT" nft -f "$BL_TMP/nft-$n" || die "nft could not load $n prefixes"
	OWN=-
}

unload_nft() {
	net "$NS" nft delete table inet ipblock_bench
}

load_null() {
	OWN=-
}

unload_null() {
	:
}

for s in $SIZES; do
	n=$(size_n "$s")
	ipset_file "$n" >"$BL_TMP/ipset-$n"
	nft_file "$n" >"$BL_TMP/nft-$n"
done

# measure SYS N R: load, settle, unload, settle; the kernel's counters read
# before, after loading and after unloading give two deltas (kB).  The
# namespace is made before and stays until the script ends: a namespace
# is freed by a worker some time after it is deleted, which would land in
# a later measurement.
declare -A OWNS DELTAS
measure() {
	local sys=$1 n=$2 r=$3 before after freed
	fresh
	before=$(kmem_settled)
	"load_$sys" "$n"
	after=$(kmem_settled)
	[[ $sys == ipblock && $r == 0 ]] && after_ipblock "$n"
	"unload_$sys"
	freed=$(kmem_settled)
	[[ $OWN == - ]] || OWNS[$sys:$n]+="$OWN "
	DELTAS[$sys:$n]+="$((after - before)) $((after - freed)) "
}

# --- rounds ----------------------------------------------------------------------

BIG=0
for s in $SIZES; do
	n=$(size_n "$s")
	((n > BIG)) && BIG=$n
done

# Round 1 loads every system at every size, sizes ascending, the systems'
# order turning from size to size.  Their own accounts do not vary, so later
# rounds load nftables only, whose figure is the kernel delta, and nothing
# (the noise).
log "memory: every system once, then nftables $((ROUNDS - 1)) more times; sizes $SIZES"
# What ran before (another section's namespaces and maps) is freed after
# the fact: wait until the counter holds still for a second, at most 15 s.
for ((i = 0; i < 15; i++)); do
	a=$(kmem_settled)
	sleep 1
	b=$(kmem_kb)
	((b - a < 128 && a - b < 128)) && break
done
read -ra SYS <<<"$SYSTEMS"
measure null 0 0
i=0
for s in $SIZES; do
	n=$(size_n "$s")
	for ((j = 0; j < ${#SYS[@]}; j++)); do
		measure "${SYS[(j + i) % ${#SYS[@]}]}" "$n" 0
	done
	i=$((i + 1))
done
log "memory round 1 of $ROUNDS done"
for ((r = 1; r < ROUNDS; r++)); do
	measure null 0 "$r"
	for s in $SIZES; do
		measure nft "$(size_n "$s")" "$r"
	done
	log "memory round $((r + 1)) of $ROUNDS done"
done

# --- tables --------------------------------------------------------------------

# mib BYTES [DIGITS]: MiB with fixed decimals ("–" if not a number; no "-0.0").
mib() {
	awk -v b="$1" -v d="${2:-1}" 'BEGIN {
		if (b !~ /^-?[0-9.]+$/) { print "–"; exit }
		v = b / 1048576
		if (v < 0 && v > -0.5 / 10 ^ d) v = 0
		printf "%.*f\n", d, v }'
}

# own SYS:N: the median of the system's own account (bytes), "-" if none.
own() {
	local m
	# shellcheck disable=SC2086 # a word list
	read -r m _ <<<"$(stats ${OWNS[$1]:-})"
	[[ $m == nan ]] && m=-
	echo "$m"
}

# delta SYS:N: "median min max count" of the kernel deltas, in bytes.
delta() {
	# shellcheck disable=SC2086 # a word list
	stats ${DELTAS[$1]:-} | awk -v c="$(wc -w <<<"${DELTAS[$1]:-}")" '
		$1 == "nan" { print "- - - 0"; exit }
		{ printf "%d %d %d %d\n", $1 * 1024, $2 * 1024, $3 * 1024, c }'
}

# label_n N: the label of the size whose count is N.
label_n() {
	local s
	for s in $SIZES; do
		if [[ $(size_n "$s") == "$1" ]]; then
			label "$s"
			return
		fi
	done
	echo "$1"
}

# goal_of SIZE: issue 14's goal for this size (MiB).
goal_of() {
	case $(size_n "$1") in
	0) echo 4 ;;
	3000) echo 8 ;;
	100000) echo 64 ;;
	1000000) echo 320 ;;
	*) echo - ;;
	esac
}

# The noise: the widest a delta of a round that loaded nothing went (bytes).
read -r _ NLO NHI NCNT <<<"$(delta null:0)"
NOISE=$(awk -v a="$NLO" -v b="$NHI" 'BEGIN { a = a < 0 ? -a : a; b = b < 0 ? -b : b; print (a > b ? a : b) }')

# vs A B [delta]: A ÷ B, or "–" when B is 0 or, for a kernel delta, within
# 4 × the noise or under 64 KiB.
vs() {
	awk -v a="$1" -v b="$2" -v d="${3:-}" -v n="$NOISE" 'BEGIN {
		if (a !~ /^[0-9]+$/ || b !~ /^-?[0-9]+$/ || b <= 0 || (d && (b <= 4 * n || b < 65536)))
			print "–"
		else
			printf "%.1f\n", a / b }'
}

: >"$OUT/memory.dat"
{
	echo "| rules | ipblock | LPM tries alone | ipset hash:net | nftables interval set | goal (issue 14) | ipblock ÷ LPM tries | ipblock ÷ ipset | ipblock ÷ nftables |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for s in $SIZES; do
		n=$(size_n "$s")
		ib=$(own "ipblock:$n")
		tr=$(own "trie:$n")
		is=$(own "ipset:$n")
		read -r nf nlo nhi _ <<<"$(delta "nft:$n")"
		g=$(goal_of "$s")
		echo "| $(label "$s") | $(mib "$ib" 2) | $(mib "$tr" 2) | $(mib "$is" 2) | $(mib "$nf" 2) ($(mib "$nlo" 1)–$(mib "$nhi" 1)) | ≤ $g | $(vs "$ib" "$tr") | $(vs "$ib" "$is") | $(vs "$ib" "$nf" delta) |"
		# x label ipblock trie ipset nft nft_lo nft_hi goal ipblock_delta trie_delta, in MiB
		read -r ibd _ <<<"$(delta "ipblock:$n")"
		read -r trd _ <<<"$(delta "trie:$n")"
		echo "$n \"$(label "$s")\" $(mib "$ib" 4) $(mib "$tr" 4) $(mib "$is" 4) $(mib "$nf" 4) $(mib "$nlo" 4) $(mib "$nhi" 4) $g $(mib "$ibd" 4) $(mib "$trd" 4)" >>"$OUT/memory.dat"
	done
	echo
	echo "MiB.  ipblock, LPM tries and ipset: each one's own account (memlock for the BPF maps, ipset's \"Size in memory\"); nftables: the kernel delta, median (min–max) of $(delta "nft:$BIG" | cut -d' ' -f4) deltas ($ROUNDS loads, each measured when loaded and again when removed), where the kernel delta is $KMEM_HOW.  Ratios are left out (–) where the other figure is 0 or within the noise."
} >"$OUT/memory.md"

{
	echo "| rules | ipblock: memlock | ipblock: kernel delta | LPM tries: memlock | LPM tries: kernel delta | ipset: own | ipset: kernel delta | nftables: kernel delta |"
	echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
	for s in $SIZES; do
		n=$(size_n "$s")
		line="| $(label "$s") |"
		for sys in $SYSTEMS; do
			read -r dm dlo dhi _ <<<"$(delta "$sys:$n")"
			[[ $sys != nft ]] && line+=" $(mib "$(own "$sys:$n")" 2) |"
			line+=" $(mib "$dm" 1) ($(mib "$dlo" 1) to $(mib "$dhi" 1)) |"
		done
		echo "$line"
	done
	echo
	echo "MiB.  Kernel delta: $KMEM_HOW, read when settled before loading, after loading and after removing again: the median (min to max) of the load and the removal deltas, 2 for ipblock, the LPM tries and ipset (one load), $(delta "nft:$BIG" | cut -d' ' -f4) for nftables ($ROUNDS loads).  Noise: over $NCNT deltas around loading nothing, $(mib "$NLO" 2) to $(mib "$NHI" 2) MiB."
} >"$OUT/memory-delta.md"

# Targets: issue 14's goals on ipblock's own account (memlock).
{
	for s in $SIZES; do
		g=$(goal_of "$s")
		[[ $g == - ]] && continue
		n=$(size_n "$s")
		ib=$(own "ipblock:$n")
		read -r dm _ <<<"$(delta "ipblock:$n")"
		echo "| Issue 14: ipblock's kernel memory (memlock of every map, as bpftool shows) ≤ $g MiB, $(label "$s") | $(mib "$ib" 2) MiB (kernel delta $(mib "$dm" 1) MiB) | $(awk -v b="$ib" -v g="$g" 'BEGIN { if (b !~ /^[0-9]+$/) print "n/a"; else print (b <= g * 1048576 ? "**met**" : "**MISSED**") }') |"
	done
} >"$OUT/targets-memory.md"

{
	read -r xs xn <<<"${XCHECK[$BIG]:-- 0}"
	echo "Cross-check at $(label_n "$BIG"): \`bpftool map show\` summed over ipblock's $xn maps (the pinned ones, and the inner maps their outer maps' dumps name) gives $(mib "$xs" 3) MiB; \`tables_memory()\` $(mib "$(own "ipblock:$BIG")" 3) MiB."
	if [[ -n ${SHRINK[to]:-} ]]; then
		echo
		echo "Shrink: grown to $(label_n "$BIG"), then \`ipblock-rule -R\` with the $SHRINK_TO-prefix IPv4 list: $(mib "${SHRINK[to]}" 2) MiB (a fresh load of it: $(mib "$(own "ipblock:$SHRINK_TO")" 2) MiB); then \`ipblock-rule -F\`: $(mib "${SHRINK[zero]:-}" 2) MiB (fresh, no rules: $(mib "$(own "ipblock:0")" 2) MiB)."
		echo "shrink ${SHRINK[to]} ${SHRINK[zero]:-}" >"$OUT/shrink.dat"
	fi
} >"$OUT/memory-notes.md"
log "memory tables written"
