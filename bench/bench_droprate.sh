#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Receive-side drop and pass rates over veth, and rule-loading figures, for
# ipblock, an XDP program judging by a plain BPF LPM trie (what most XDP
# firewalls do), nftables, iptables + ipset and reference XDP programs: one
# that drops everything and one that reads the headers and drops by source
# (the two floors).  Writes markdown fragments and gnuplot data into OUTDIR;
# bench/run.sh assembles them.  Not a test.
#
#   BUILD=build-bench bench/bench_droprate.sh -o OUTDIR [-r ROUNDS] [-w SEC]
#                                             [-s "1 3000 100000 1000000"]
#
# One namespace pair per system and list size, all set up first, so that
# the rounds interleave every configuration and a slow drift of the shared
# machine hits them alike:
#
#   gK  ibgK --veth-- ibrK  rK        sender: trafficgen send (CPU 0)
#                                    receiver: NAPI thread of ibrK (CPU 1)
#
# The sender runs tg_tx with BPF_PROG_RUN live frames; each XDP_TX goes
# through ibgK's ndo_xdp_xmit into ibrK's NAPI ring.  That ring only exists
# while ibrK has an XDP program or GRO on, so every receiver gets GRO (what a
# NIC has by default) and threaded NAPI pinned to the other CPU: the rate
# measured is the receiver's, as long as the sender offers more.
#
# Traffic: sources random in 198.18.0.0/16 (every list covers it: denied) or
# in 198.19.0.0/17 (no list touches it: passed), to 198.19.255.1, a
# neighbour the receiver does not own; forwarding is off, so a passed frame
# ends in the receiver's routing step, the same for every system.
set -u
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

OUT=
ROUNDS=5
WINDOW=0.5
WARM=0.2
TAIL=0.1
SIZES="1 3000 100000 1000000"
TX_CPU=0
RX_CPU=1
LOAD_TIMEOUT=150
# Sender and receiver thread get a larger share of their CPU than the
# machine's other work (no real-time class: the others keep running).
NICE=-10
# The drop log of the iblog receivers: RATE,SAMPLE.
DROPLOG=${DROPLOG:-1000,1000}
IMPORT_ROUNDS=3
ADD_ROUNDS=5

while getopts "o:r:w:s:h" opt; do
	case $opt in
	o) OUT=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	w) WINDOW=$OPTARG ;;
	s) SIZES=$OPTARG ;;
	*) usage 3,13 "$opt" ;;
	esac
done
[[ -n $OUT ]] || die "give -o OUTDIR"
mkdir -p "$OUT" || die "cannot create $OUT"

bl_init nft ipset iptables bpftool timeout "$GNU_TIME"
bl_need_built "$LOADER" "$RULE" "$TG"
if (($(nproc) < 2)); then
	RX_CPU=0
	log "one CPU: sender and receiver share it; rates are of both together"
fi

DENY_SRC=198.18.0.0/16
PASS_SRC=198.19.0.0/17
DST=198.19.255.1
RCV_MAC=02:00:00:00:00:02
SND_MAC=02:00:00:00:00:01

# --- lists -------------------------------------------------------------------

label() {
	case $1 in
	1000000) echo 1M ;;
	100000) echo 100k ;;
	3000) echo 3,000 ;;
	*) echo "$1" ;;
	esac
}

# nft_file DEV N: the table, set and chain for list N, hooked on DEV.
nft_file() {
	local dev=$1 n=$2
	echo "table netdev ipblock_bench {"
	echo "  set deny4 {"
	echo "    type ipv4_addr; flags interval;"
	printf '    elements = { '
	paste -sd, "$BL_TMP/v4-$n.txt"
	echo "    }"
	echo "  }"
	echo "  chain ingress {"
	echo "    type filter hook ingress device \"$dev\" priority -500; policy accept;"
	echo "    ip saddr @deny4 counter drop"
	echo "  }"
	echo "}"
}

# ipset_file NAME N: a restore file creating set NAME with list N.
ipset_file() {
	local name=$1 n=$2 hs=1024
	while ((hs < n / 8)); do
		hs=$((hs * 2))
	done
	echo "create $name hash:net family inet hashsize $hs maxelem $((n * 2 > 65536 ? n * 2 : 65536))"
	sed "s/^/add $name /" "$BL_TMP/v4-$n.txt"
}

log "generating the lists: $SIZES"
for n in $SIZES; do
	"$TG" rules -n "$n" >"$BL_TMP/v4-$n.txt" || die "cannot generate the $n-rule list"
done

# --- receivers ---------------------------------------------------------------

# Per configuration: namespaces and devices; what to read for its drops.
declare -A C_K C_KIND C_PIN C_STATE C_NAPI
CONFIGS=()
K=0
# loads.tsv: system size wall_s peak_rss_kb kernel_bytes
LOADS=$OUT/loads.tsv
: >"$LOADS"

# pair: a new namespace pair gK/rK joined by ibgK/ibrK, receiver with GRO.
pair() {
	K=$((K + 1))
	ns_add "g$K"
	ns_add "r$K"
	ip -n "$(ns "g$K")" link add "ibg$K" address "$SND_MAC" type veth \
		peer name "ibr$K" address "$RCV_MAC" netns "$(ns "r$K")" ||
		die "cannot create veth ibg$K"
	ip -n "$(ns "g$K")" link set "ibg$K" up
	ip -n "$(ns "r$K")" link set "ibr$K" up
	ip -n "$(ns "r$K")" addr add 198.19.255.254/24 dev "ibr$K"
	net "r$K" "$TG" gro -i "ibr$K" on || die "cannot switch GRO on for ibr$K"
}

# record SYSTEM N FILE KERNEL_BYTES: keep a load's time and peak RSS.
record() {
	local wall rss
	read -r wall rss <"$3"
	printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$wall" "$rss" "${4:--}" >>"$LOADS"
}

# ipblock_kmem PIN: what the kernel accounts for every map of ipblock,
# inner segment maps included (tables_memory(): memlock, bytes).
ipblock_kmem() {
	"$TG" mem --pin-dir "$1" 2>/dev/null | awk '{ print $2 }'
}

# ipset_kmem NS NAME: ipset's own account of the set's memory (bytes).
ipset_kmem() {
	net "$1" ipset list -t "$2" 2>/dev/null | awk -F': ' '/Size in memory/ { print $2 }'
}

# ipblock_load NS PIN FILE: the rules into the maps, by the CLI's import.
ipblock_load() {
	net "$1" "$RULE" --pin-dir "$2" -i "$3" -p deny
}

add_config() {
	local name=$1
	C_K[$name]=$K
	C_KIND[$name]=$2
	C_STATE[$name]=ok
	CONFIGS+=("$name")
}

setup_reference() {
	pair
	net "r$K" "$TG" attach -i "ibr$K" drop || die "cannot attach the drop-everything program"
	on_exit "net r$K $TG detach -i ibr$K"
	add_config floor floor -
	pair
	net "r$K" "$TG" attach -i "ibr$K" src || die "cannot attach the drop-by-source program"
	on_exit "net r$K $TG detach -i ibr$K"
	add_config srcfloor srcfloor -
	pair
	add_config nofilter nofilter -
	pair
	net "r$K" "$TG" attach -i "ibr$K" pass || die "cannot attach the pass-everything program"
	on_exit "net r$K $TG detach -i ibr$K"
	add_config xdppass xdppass -
}

# setup_ipblock N [iblog]: ipblock, attached with new maps, then list N
# imported; iblog: with its drop log on ($DROPLOG: events a second per CPU,
# 1 in SAMPLE beyond) and read all along by trafficgen droplog.
setup_ipblock() {
	local n=$1 kind=${2:-ipblock} pin
	pair
	pin_dir "$n-ipblock"
	pin=$PIN
	net "r$K" "$LOADER" --pin-dir "$pin" -d "ibr$K" -m native >/dev/null ||
		die "cannot attach ipblock to ibr$K"
	on_exit "net r$K $LOADER --pin-dir $pin -d ibr$K -u"
	add_config "$kind-$n" "$kind" "$n"
	C_PIN[$kind-$n]=$pin
	if [[ $kind == iblog ]]; then
		"$RULE" --pin-dir "$pin" -i "$BL_TMP/v4-$n.txt" -p deny >/dev/null 2>&1 ||
			"$TG" load --pin-dir "$pin" "$BL_TMP/v4-$n.txt" >/dev/null ||
			die "cannot load $n rules into ipblock"
		"$TG" droplog --pin-dir "$pin" "$DROPLOG" >"$BL_TMP/droplog-$n.out" 2>&1 &
		BL_PIDS+=($!)
		return
	fi
	if timed_run "$BL_TMP/t" timeout "$LOAD_TIMEOUT" nsenter --net="$(ns_path "r$K")" \
		"$RULE" --pin-dir "$pin" -i "$BL_TMP/v4-$n.txt" -p deny; then
		record "$kind" "$n" "$BL_TMP/t" "$(ipblock_kmem "$pin")"
	else
		# ipblock-rule -i failed: the bench's own loader (the same library call).
		log "ipblock-rule -i failed ($(head -c 200 "$BL_TMP/t.err")); using trafficgen load"
		"$TG" load --pin-dir "$pin" "$BL_TMP/v4-$n.txt" >/dev/null ||
			die "cannot load $n rules into ipblock"
		echo "- -" >"$BL_TMP/t"
		record "$kind" "$n" "$BL_TMP/t" "$(ipblock_kmem "$pin")"
	fi
}

# setup_trie N: the LPM-trie filter (tg_trie) with list N, its tries pinned.
setup_trie() {
	local n=$1
	pair
	pin_dir "$n-trie"
	add_config "trie-$n" trie "$n"
	C_PIN[trie-$n]=$PIN
	on_exit "net r$K $TG detach -i ibr$K"
	timed_run "$BL_TMP/t" nsenter --net="$(ns_path "r$K")" "$TG" trie --pin-dir "$PIN" \
		-i "ibr$K" "$BL_TMP/v4-$n.txt" || die "cannot load the LPM-trie filter with $n rules"
	record trie "$n" "$BL_TMP/t" "$(trie_kmem "$PIN")"
}

# trie_kmem PIN: memlock of the LPM-trie filter's two tries (bytes).
trie_kmem() {
	local m total=0 b
	for m in trie4 trie6; do
		b=$(bpftool map show pinned "$1/$m" 2>/dev/null |
			awk '{ for (i = 1; i < NF; i++) if ($i == "memlock") print $(i + 1) }')
		b=${b%B}
		[[ $b =~ ^[0-9]+$ ]] && total=$((total + b))
	done
	echo "$total"
}

setup_nft() {
	local n=$1
	pair
	add_config "nft-$n" nft "$n"
	nft_file "ibr$K" "$n" >"$BL_TMP/nft-$n.nft"
	on_exit "net r$K nft delete table netdev ipblock_bench"
	if timed_run "$BL_TMP/t" timeout "$LOAD_TIMEOUT" nsenter --net="$(ns_path "r$K")" \
		nft -f "$BL_TMP/nft-$n.nft"; then
		record nft "$n" "$BL_TMP/t"
	else
		log "nft could not load $n prefixes within ${LOAD_TIMEOUT}s: skipped"
		C_STATE[nft-$n]="not loaded in ${LOAD_TIMEOUT} s"
		echo "$LOAD_TIMEOUT -" >"$BL_TMP/t"
		record nft "$n" "$BL_TMP/t" timeout
	fi
	rm -f "$BL_TMP/nft-$n.nft"
}

setup_ipt() {
	local n=$1 set=ipblock_bench_$1
	pair
	add_config "ipt-$n" ipt "$n"
	ipset_file "$set" "$n" >"$BL_TMP/ipset-$n"
	on_exit "net r$K ipset destroy $set"
	if ! timed_run "$BL_TMP/t" timeout "$LOAD_TIMEOUT" nsenter --net="$(ns_path "r$K")" \
		ipset restore -f "$BL_TMP/ipset-$n"; then
		log "ipset could not load $n prefixes within ${LOAD_TIMEOUT}s: skipped"
		C_STATE[ipt-$n]="not loaded in ${LOAD_TIMEOUT} s"
		echo "$LOAD_TIMEOUT -" >"$BL_TMP/t"
		record ipset "$n" "$BL_TMP/t" timeout
		return
	fi
	record ipset "$n" "$BL_TMP/t" "$(ipset_kmem "r$K" "$set")"
	net "r$K" iptables -t raw -A PREROUTING -i "ibr$K" -m set --match-set "$set" src -j DROP ||
		die "cannot add the iptables rule"
	on_exit "net r$K iptables -t raw -D PREROUTING -i ibr$K -m set --match-set $set src -j DROP"
	rm -f "$BL_TMP/ipset-$n"
}

# threaded K: the receiver's NAPI in its own kernel thread, on RX_CPU.
threaded() {
	local k=$1 before after pid
	before=$(ps -eo pid=,comm= | awk -v p="napi/ibr$k-" 'index($2, p) == 1 { print $1 }')
	sysfs "r$k" sh -c "echo 1 > /sys/class/net/ibr$k/threaded" ||
		die "cannot make ibr$k's NAPI threaded"
	after=$(ps -eo pid=,comm= | awk -v p="napi/ibr$k-" 'index($2, p) == 1 { print $1 }')
	for pid in $after; do
		grep -qw "$pid" <<<"$before" && continue
		taskset -pc "$RX_CPU" "$pid" >/dev/null || die "cannot pin NAPI thread $pid"
		renice -n "$NICE" -p "$pid" >/dev/null
		C_NAPI[$k]+="$pid "
	done
	[[ -n ${C_NAPI[$k]:-} ]] || die "no NAPI thread of ibr$k found"
}

# napi_ns K: CPU time the receiver's NAPI thread has run so far (ns).
napi_ns() {
	local p v s=0
	for p in ${C_NAPI[$1]}; do
		read -r v _ <"/proc/$p/schedstat"
		s=$((s + v))
	done
	echo "$s"
}

log "setting up the receivers"
setup_reference
for n in $SIZES; do
	log "loading $(label "$n") prefixes into ipblock, the LPM-trie filter, nftables, ipset"
	setup_ipblock "$n"
	setup_ipblock "$n" iblog
	setup_trie "$n"
	setup_nft "$n"
	setup_ipt "$n"
done
for ((k = 1; k <= K; k++)); do
	threaded "$k"
done

# --- measuring ---------------------------------------------------------------

# ip_in_receives NS: datagrams that reached IPv4 input in NS.
ip_in_receives() {
	# shellcheck disable=SC2016 # awk's fields, not the shell's
	net "$1" awk '/^Ip:/ { if (++n == 2) print $4 }' /proc/net/snmp
}

# drops NAME: the system's own count of dropped packets so far.
drops() {
	local name=$1 k=${C_K[$1]}
	case ${C_KIND[$name]} in
	floor | srcfloor) rx_packets "r$k" "ibr$k" ;;
	trie) "$TG" trie-stats --pin-dir "${C_PIN[$name]}" | awk '{ print $2 }' ;;
	ipblock | iblog)
		net "r$k" "$LOADER" --pin-dir "${C_PIN[$name]}" -s |
			awk '/dropped/ { for (i = 1; i < NF; i++) if ($(i + 1) == "packets") { print $i; exit } }'
		;;
	nft)
		# Listing anything of a table makes nft fetch its sets, which takes
		# minutes at 1M elements: count what never reached IP instead.
		echo $(($(rx_packets "r$k" "ibr$k") - $(ip_in_receives "r$k")))
		;;
	ipt)
		net "r$k" iptables -t raw -L PREROUTING -v -n -x | awk '/match-set/ { print $1; exit }'
		;;
	*) echo 0 ;;
	esac
}

declare -A RATE CRATE DROPFRAC OFFERED

# measure NAME MODE: one timed window of MODE (drop|pass) traffic.  RATE
# gets the receiver's Mpps over the window, CRATE its Mpps per CPU-second
# of the receiving NAPI thread (all of the receive work runs there).
measure() {
	local name=$1 mode=$2 k=${C_K[$1]} src full0 full1 d0 d1 c0 c1 ta tb tc td pid sent
	local total u0 u1
	[[ $mode == drop ]] && src=$DENY_SRC || src=$PASS_SRC
	total=$(awk -v a="$WARM" -v b="$WINDOW" -v c="$TAIL" 'BEGIN { print a + b + c }')
	full0=$(rx_packets "r$k" "ibr$k")
	[[ $mode == drop ]] && d0=$(drops "$name")
	bl_bg nice -n "$NICE" nsenter --net="$(ns_path "g$k")" "$TG" send -i "ibg$k" --dst-mac "$RCV_MAC" \
		-s "$src" -d "$DST" -t "$total" -c "$TX_CPU" >"$BL_TMP/send.out" 2>&1
	pid=$BL_BG
	sleep "$WARM"
	ta=$(now_us)
	c0=$(rx_packets "r$k" "ibr$k")
	u0=$(napi_ns "$k")
	tb=$(now_us)
	sleep "$WINDOW"
	tc=$(now_us)
	c1=$(rx_packets "r$k" "ibr$k")
	u1=$(napi_ns "$k")
	td=$(now_us)
	bl_wait "$pid" || log "sender failed: $(cat "$BL_TMP/send.out")"
	full1=$(rx_packets "r$k" "ibr$k")
	sent=$(awk '/Mpps offered/ { print $(NF - 2) }' "$BL_TMP/send.out")
	OFFERED[$name:$mode]+="${sent:-0} "
	RATE[$name:$mode]+="$(awk -v n=$((c1 - c0)) -v t=$(((tc + td) - (ta + tb))) \
		'BEGIN { printf "%.4f", n / (t / 2) }') "
	CRATE[$name:$mode]+="$(awk -v n=$((c1 - c0)) -v u=$((u1 - u0)) \
		'BEGIN { printf "%.4f", (u > 0 ? n / u * 1000 : 0) }') "
	if [[ $mode == drop ]]; then
		d1=$(drops "$name")
		DROPFRAC[$name]+="$(awk -v d=$((d1 - d0)) -v n=$((full1 - full0)) \
			'BEGIN { printf "%.4f", n ? d / n : 0 }') "
	fi
}

# The rounds: every configuration once per round, each round starting one
# further along the list.
RUNS=()
for name in "${CONFIGS[@]}"; do
	[[ ${C_STATE[$name]} == ok ]] || continue
	case ${C_KIND[$name]} in
	floor | srcfloor | iblog) RUNS+=("$name:drop") ;;
	nofilter | xdppass) RUNS+=("$name:pass") ;;
	*) RUNS+=("$name:drop" "$name:pass") ;;
	esac
done
log "measuring: ${#RUNS[@]} configurations x $ROUNDS rounds, ${WINDOW}s windows"
for ((r = 0; r < ROUNDS; r++)); do
	for ((j = 0; j < ${#RUNS[@]}; j++)); do
		run=${RUNS[(j + r * 3) % ${#RUNS[@]}]}
		measure "${run%:*}" "${run#*:}"
	done
	log "round $((r + 1)) of $ROUNDS done"
done

# --- tables ------------------------------------------------------------------

# med NAME:MODE: "median min max" in Mpps; cmed: the same per CPU-second.
med() {
	# shellcheck disable=SC2086 # the rates are a word list
	stats ${RATE[$1]:-}
}
cmed() {
	# shellcheck disable=SC2086
	stats ${CRATE[$1]:-}
}

system_name() {
	case $1 in
	floor) echo "XDP drop-everything (baseline: this path's limit)" ;;
	srcfloor) echo "XDP drop-by-source floor (reads the headers, no lookup)" ;;
	nofilter) echo "no filter, GRO only (baseline)" ;;
	xdppass) echo "XDP pass-everything (empty program)" ;;
	ipblock) echo "ipblock (native XDP)" ;;
	iblog) echo "ipblock, drop log on ($DROPLOG: a second per CPU, 1 in N beyond)" ;;
	trie) echo "LPM-trie XDP filter (native XDP)" ;;
	nft) echo "nftables netdev ingress, interval set" ;;
	ipt) echo "iptables raw PREROUTING + ipset hash:net" ;;
	esac
}

# row SIZE NAME MODE BASELINE [SECOND_BASELINE]: one table row, and one
# data line.  Both rates are shown; the ratios (one column per baseline,
# given as its median per CPU-second) are of the rates per CPU-second.
row() {
	local size=$1 name=$2 mode=$3 base=$4 base2=${5:-} m lo hi cm clo chi note="" frac extra=""
	if [[ ${C_STATE[$name]} != ok ]]; then
		[[ -n $base2 ]] && extra=" – |"
		echo "| $(label "$size") | $(system_name "${C_KIND[$name]}") | – | ${C_STATE[$name]} | – | – | – |$extra"
		return
	fi
	read -r m lo hi <<<"$(med "$name:$mode")"
	read -r cm clo chi <<<"$(cmed "$name:$mode")"
	if [[ $mode == drop && ${C_KIND[$name]} != floor && ${C_KIND[$name]} != srcfloor ]]; then
		# shellcheck disable=SC2086
		read -r frac _ <<<"$(stats ${DROPFRAC[$name]})"
		awk -v f="$frac" 'BEGIN { exit !(f < 0.99) }' &&
			note=" (only $(fmt "$(awk -v f="$frac" 'BEGIN { print f * 100 }')" 1)% dropped!)"
	fi
	[[ -n $base2 ]] && extra=" $(ratio "$cm" "$base2") |"
	echo "| $(label "$size") | $(system_name "${C_KIND[$name]}")$note | $(fmt "$m" 3) | $(fmt "$lo" 2)–$(fmt "$hi" 2) | **$(fmt "$cm" 3)** | $(fmt "$clo" 2)–$(fmt "$chi" 2) | $(ratio "$cm" "$base") |$extra"
	# The plots show the systems; the drop log's row is the table's alone.
	[[ ${C_KIND[$name]} == iblog ]] ||
		echo "${C_KIND[$name]} $size $m $lo $hi $cm $clo $chi" >>"$OUT/$mode.dat"
}

SYSTEMS="ipblock iblog trie nft ipt"
: >"$OUT/drop.dat"
: >"$OUT/pass.dat"
read -r FLOOR _ <<<"$(cmed floor:drop)"
read -r SRCFLOOR _ <<<"$(cmed srcfloor:drop)"
read -r NOFILTER _ <<<"$(cmed nofilter:pass)"
{
	echo "| rules | system | Mpps (median) | min–max | Mpps per receiver CPU-second | min–max | × drop-everything floor | × drop-by-source floor |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|"
	row - floor drop "$FLOOR" "$SRCFLOOR"
	row - srcfloor drop "$FLOOR" "$SRCFLOOR"
	for n in $SIZES; do
		for s in $SYSTEMS; do
			row "$n" "$s-$n" drop "$FLOOR" "$SRCFLOOR"
		done
	done
} >"$OUT/drop.md"
{
	echo "| rules | system | Mpps (median) | min–max | Mpps per receiver CPU-second | min–max | × no filter |"
	echo "|---:|---|---:|---:|---:|---:|---:|"
	row - nofilter pass "$NOFILTER"
	row - xdppass pass "$NOFILTER"
	for n in $SIZES; do
		for s in $SYSTEMS; do
			[[ $s == iblog ]] || row "$n" "$s-$n" pass "$NOFILTER"
		done
	done
} >"$OUT/pass.md"

# Targets: "| target | figure | met? |" rows, on the rates per CPU-second.
verdict() {
	awk -v a="$1" -v t="$2" 'BEGIN { if (a == "–") print "n/a"; else print (a >= t ? "**met**" : "**MISSED**") }'
}
{
	for n in $SIZES; do
		read -r ib _ <<<"$(cmed "ipblock-$n:drop")"
		for s in nft ipt; do
			if [[ ${C_STATE[$s-$n]} != ok ]]; then
				echo "| ipblock ≥ 2.5 × $(system_name "$s") drop rate, $(label "$n")-prefix list | ${C_STATE[$s-$n]} | n/a |"
				continue
			fi
			read -r other _ <<<"$(cmed "$s-$n:drop")"
			q=$(ratio "$ib" "$other")
			echo "| ipblock ≥ 2.5 × $(system_name "$s") drop rate, $(label "$n")-prefix list | $q × ($(fmt "$ib" 3) vs $(fmt "$other" 3) Mpps per CPU-s) | $(verdict "$q" 2.5) |"
		done
	done
	for n in $SIZES; do
		read -r ib _ <<<"$(cmed "ipblock-$n:drop")"
		if [[ ${C_STATE[iblog-$n]} != ok ]]; then
			echo "| drop log on: drop rate ≥ 0.97 × off, $(label "$n")-prefix list | ${C_STATE[iblog-$n]} | n/a |"
			continue
		fi
		read -r il _ <<<"$(cmed "iblog-$n:drop")"
		q=$(ratio "$il" "$ib")
		echo "| drop log on ($DROPLOG): drop rate ≥ 0.97 × off, $(label "$n")-prefix list | $q × ($(fmt "$il" 3) vs $(fmt "$ib" 3) Mpps per CPU-s) | $(verdict "$q" 0.97) |"
	done
	if [[ " $SIZES " == *" 3000 "* ]]; then
		read -r ib _ <<<"$(cmed "ipblock-3000:drop")"
		read -r it _ <<<"$(cmed "trie-3000:drop")"
		q=$(ratio "$ib" "$FLOOR")
		echo "| ipblock ≥ 0.8 × drop-everything floor, 3,000-prefix list | $q × ($(fmt "$ib" 3) vs $(fmt "$FLOOR" 3) Mpps per CPU-s); × drop-by-source floor: $(ratio "$ib" "$SRCFLOOR") ($(fmt "$SRCFLOOR" 3)); LPM-trie filter: $(ratio "$it" "$FLOOR") × and $(ratio "$it" "$SRCFLOOR") × | $(verdict "$q" 0.8) |"
	fi
} >"$OUT/targets-drop.md"

# The two floors, side by side.
{
	echo "| rules | ipblock × drop-everything | ipblock × drop-by-source | LPM trie × drop-everything | LPM trie × drop-by-source | ipblock ÷ LPM trie |"
	echo "|---:|---:|---:|---:|---:|---:|"
	for n in $SIZES; do
		read -r ib _ <<<"$(cmed "ipblock-$n:drop")"
		read -r it _ <<<"$(cmed "trie-$n:drop")"
		echo "| $(label "$n") | $(ratio "$ib" "$FLOOR") | $(ratio "$ib" "$SRCFLOOR") | $(ratio "$it" "$FLOOR") | $(ratio "$it" "$SRCFLOOR") | $(ratio "$ib" "$it") |"
	done
	echo
	echo "Rates per CPU-second of the receiver.  The drop-by-source floor itself is $(ratio "$SRCFLOOR" "$FLOOR") × the drop-everything floor: what reading the frame costs."
} >"$OUT/floors.md"

# What the sender offered: the floor's rate means little if it was all.
# shellcheck disable=SC2086
read -r off_m off_lo off_hi <<<"$(stats ${OFFERED[floor:drop]})"
{
	echo "Sender (CPU $TX_CPU) offered $(fmt "$off_m" 2) Mpps (min–max $(fmt "$off_lo" 2)–$(fmt "$off_hi" 2)) during the floor's runs; receiver NAPI thread on CPU $RX_CPU."
	echo "Mpps: frames the receiver took per second of the window.  Mpps per receiver CPU-second: the same frames over the CPU time its NAPI thread ran in the window (/proc/PID/schedstat), where all of its receive work runs: what the receiver would take with a CPU of its own, whatever else the shared machine runs.  The ratios and targets use it."
	echo "$ROUNDS interleaved rounds, ${WINDOW} s windows after ${WARM} s of warm-up, 60-byte UDP frames, 4,096 sources cycled per run."
	# shellcheck disable=SC2068 # every system's fractions, one word each
	read -r _ fmin fmax <<<"$(stats ${DROPFRAC[@]})"
	echo "Cross-check: of the frames each receiver got in a drop run, its system's own count says $(fmt "$(awk -v f="$fmin" 'BEGIN { print f * 100 }')" 2)–$(fmt "$(awk -v f="$fmax" 'BEGIN { print f * 100 }')" 2) % were dropped."
} >"$OUT/notes.md"
log "drop and pass tables written"

# --- rule loading --------------------------------------------------------------

# Adding one rule by each system's command line, to the 3,000-rule lists.
ADD_N=
for n in $SIZES; do
	((n >= 1000)) && {
		ADD_N=$n
		break
	}
done
declare -A ADD_T
if [[ -n $ADD_N ]]; then
	log "adding one rule by each CLI ($ADD_ROUNDS rounds)"
	kn=${C_K[nft-$ADD_N]} kt=${C_K[ipt-$ADD_N]}
	for ((r = 0; r < ADD_ROUNDS; r++)); do
		p=198.19.$((200 + r)).7
		ki=${C_K[ipblock-$ADD_N]}
		t0=$(now_us)
		net "r$ki" "$RULE" --pin-dir "${C_PIN[ipblock-$ADD_N]}" -a "$p" -p deny >/dev/null &&
			ADD_T[ipblock]+="$(($(now_us) - t0)) "
		net "r$ki" "$RULE" --pin-dir "${C_PIN[ipblock-$ADD_N]}" -d "$p" >/dev/null
		if [[ ${C_STATE[ipt-$ADD_N]} == ok ]]; then
			t0=$(now_us)
			net "r$kt" ipset add "ipblock_bench_$ADD_N" "$p" && ADD_T[ipset]+="$(($(now_us) - t0)) "
			net "r$kt" ipset del "ipblock_bench_$ADD_N" "$p"
		fi
		if [[ ${C_STATE[nft-$ADD_N]} == ok ]]; then
			t0=$(now_us)
			net "r$kn" nft add element netdev ipblock_bench deny4 "{ $p }" &&
				ADD_T[nft]+="$(($(now_us) - t0)) "
			net "r$kn" nft delete element netdev ipblock_bench deny4 "{ $p }"
		fi
	done
fi

# More rounds of the 100k import in a scratch namespace (the set-up made the
# first); 1M is measured once, by the set-up.
IMP_N=
for n in $SIZES; do
	[[ $n == 100000 ]] && IMP_N=$n
done
if [[ -n $IMP_N ]] && ((IMPORT_ROUNDS > 1)); then
	log "importing $(label "$IMP_N") prefixes: $((IMPORT_ROUNDS - 1)) more rounds"
	ns_add imp
	ip -n "$(ns imp)" link add name ibi0 type veth peer name ibi1
	for d in ibi0 ibi1; do
		ip -n "$(ns imp)" link set "$d" up
	done
	on_exit "net imp nft delete table netdev ipblock_bench"
	on_exit "net imp ipset destroy ipblock_bench_imp"
	nft_file ibi1 "$IMP_N" >"$BL_TMP/nft-imp.nft"
	ipset_file ipblock_bench_imp "$IMP_N" >"$BL_TMP/ipset-imp"
	for ((r = 1; r < IMPORT_ROUNDS; r++)); do
		# ipblock on new maps each round, as the set-up's import was.
		pin_dir "imp-$r"
		net imp "$LOADER" --pin-dir "$PIN" -d ibi0 -m native >/dev/null ||
			die "cannot attach ipblock to ibi0"
		on_exit "net imp $LOADER --pin-dir $PIN -d ibi0 -u"
		timed_run "$BL_TMP/t" nsenter --net="$(ns_path imp)" "$RULE" --pin-dir "$PIN" \
			-i "$BL_TMP/v4-$IMP_N.txt" -p deny &&
			record ipblock "$IMP_N" "$BL_TMP/t" "$(ipblock_kmem "$PIN")"
		net imp "$LOADER" --pin-dir "$PIN" -d ibi0 -u >/dev/null
		rm -rf "$PIN"
		pin_dir "imp-$r-trie"
		timed_run "$BL_TMP/t" nsenter --net="$(ns_path imp)" "$TG" trie --pin-dir "$PIN" \
			"$BL_TMP/v4-$IMP_N.txt" && record trie "$IMP_N" "$BL_TMP/t" "$(trie_kmem "$PIN")"
		rm -rf "$PIN"
		timed_run "$BL_TMP/t" nsenter --net="$(ns_path imp)" ipset restore -f "$BL_TMP/ipset-imp" &&
			record ipset "$IMP_N" "$BL_TMP/t" "$(ipset_kmem imp ipblock_bench_imp)"
		net imp ipset destroy ipblock_bench_imp
		timed_run "$BL_TMP/t" nsenter --net="$(ns_path imp)" nft -f "$BL_TMP/nft-imp.nft" &&
			record nft "$IMP_N" "$BL_TMP/t"
		net imp nft delete table netdev ipblock_bench
	done
fi

# load_stats SYSTEM N: "wall_median wall_min wall_max rss_median_kb kmem count"
load_stats() {
	local sys=$1 n=$2
	local -a walls=() rss=()
	local kmem=- w r k
	while IFS=$'\t' read -r s size w r k; do
		[[ $s == "$sys" && $size == "$n" ]] || continue
		[[ $w =~ ^[0-9.]+$ ]] && walls+=("$w")
		[[ $r =~ ^[0-9]+$ ]] && rss+=("$r")
		[[ $k =~ ^[0-9]+$ ]] && kmem=$k
		[[ $k == timeout ]] && kmem=timeout
	done <"$LOADS"
	if ((${#walls[@]} == 0)); then
		echo "nan nan nan nan $kmem 0"
		return
	fi
	read -r wm wl wh <<<"$(stats "${walls[@]}")"
	read -r rm _ <<<"$(stats "${rss[@]:-nan}")"
	echo "$wm $wl $wh $rm $kmem ${#walls[@]}"
}

# sys_short KIND: the system's name in the loading tables.
sys_short() {
	case $1 in
	trie) echo "LPM-trie filter" ;;
	*) echo "$1" ;;
	esac
}

mib() {
	awk -v b="$1" -v d="${2:-1}" 'BEGIN { if (b !~ /^[0-9.]+$/) print "–"; else printf "%.*f\n", d, b / 1048576 }'
}

{
	if [[ -n $ADD_N ]]; then
		echo "Adding one rule to the $(label "$ADD_N")-prefix lists, one CLI call (ms, median of $ADD_ROUNDS, min–max; baseline ipset):"
		echo
		echo "| system | command | ms (median) | min–max | × ipset |"
		echo "|---|---|---:|---:|---:|"
		# shellcheck disable=SC2086
		read -r ipm _ <<<"$(stats ${ADD_T[ipset]:-})"
		for s in ipset ipblock nft; do
			# shellcheck disable=SC2086
			read -r m lo hi <<<"$(stats ${ADD_T[$s]:-})"
			case $s in
			ipblock) cmd="ipblock-rule -a ADDR -p deny" ;;
			ipset) cmd="ipset add SET ADDR" ;;
			nft) cmd="nft add element netdev T S { ADDR }" ;;
			esac
			echo "| $(sys_short "$s") | \`$cmd\` | $(fmt "$(awk -v a="$m" 'BEGIN { print a / 1000 }')" 1) | $(fmt "$(awk -v a="$lo" 'BEGIN { print a / 1000 }')" 1)–$(fmt "$(awk -v a="$hi" 'BEGIN { print a / 1000 }')" 1) | $(ratio "$m" "$ipm") |"
		done
		echo
		echo "Each time includes starting the command in the namespace (nsenter).  Not measured at"
		echo "1M: nft reads an interval set back before changing it, and reading back 1M elements took"
		echo "over a minute here."
		echo
	fi
	echo "Importing a whole list (wall seconds and the loading process's peak RSS by GNU time; kernel memory where the system reports it: for ipblock the memlock of all its maps, inner segment maps included, on new maps grown by the import; for the LPM-trie filter, loaded by the bench's own loader (\`trafficgen trie\`, batched map updates), its two tries' memlock; ipset's own \"Size in memory\"; baseline ipset):"
	echo
	echo "| rules | system | command | wall s (median) | min–max | runs | × ipset | peak RSS MiB | kernel MiB |"
	echo "|---:|---|---|---:|---:|---:|---:|---:|---:|"
	for n in $SIZES; do
		((n >= 100000)) || continue
		read -r bw _ <<<"$(load_stats ipset "$n")"
		for s in ipset ipblock trie nft; do
			read -r wm wl wh rm km cnt <<<"$(load_stats "$s" "$n")"
			case $s in
			ipblock) cmd="ipblock-rule -i FILE -p deny" ;;
			trie) cmd="trafficgen trie --pin-dir DIR FILE" ;;
			ipset) cmd="ipset restore -f FILE" ;;
			nft) cmd="nft -f FILE" ;;
			esac
			if [[ $km == timeout ]]; then
				echo "| $(label "$n") | $(sys_short "$s") | \`$cmd\` | > $LOAD_TIMEOUT | not loaded within the time budget | 1 | – | – | – |"
				continue
			fi
			[[ $wm == nan ]] && {
				echo "| $(label "$n") | $(sys_short "$s") | \`$cmd\` | – | import not available | 0 | – | – | – |"
				continue
			}
			echo "| $(label "$n") | $(sys_short "$s") | \`$cmd\` | $(fmt "$wm" 2) | $(fmt "$wl" 2)–$(fmt "$wh" 2) | $cnt | $(ratio "$wm" "$bw") | $(fmt "$(awk -v r="$rm" 'BEGIN { print r / 1024 }')" 1) | $(mib "$km") |"
		done
	done
} >"$OUT/import.md"

log "done; cleaning up"
