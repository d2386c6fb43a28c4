#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# ipblock's CrowdSec bouncer (the service's [crowdsec] thread) beside the
# incumbent, Debian's crowdsec-firewall-bouncer 0.0.25 in nftables mode,
# both polling one CrowdSec LAPI (Debian's crowdsec 1.4.6, offline) every
# second.  Per round: `cscli decisions import` of the same 10,000 Ip bans
# (198.18.0.0 - 198.18.39.15), then for each bouncer the time from the
# import's start to all 10,000 enforced (the nft set's element count; the
# service's crowdsec rules), its CPU time (utime + stime of its process
# over the same window), its RSS (and, for ipblock, the kernel memory of
# its maps from ipblock-loader -s), and the receive-side drop rate under
# the same flood (bench/trafficgen, sources random in 198.18.0.0/19, all
# banned); then `cscli decisions delete --all` and the time to empty.
# Prints markdown; medians of the rounds with min-max, and ratios.  Not a
# test.  The host's nft ruleset is untouched: each bouncer has its own
# network namespace.  A round where a bouncer never gets all 10,000 is
# reported, not timed: crowdsec 1.4.6's stream can leave out a bulk of 50
# decisions inserted while a poll runs (see README, Integrations).
#
#   bench/crowdsec_vs_bouncer.sh [-r ROUNDS (5)] [-o FILE.md]
#
#   l   br0 198.19.200.1/24 (the LAPI)
#   rb  cb 198.19.200.2 (crowdsec-firewall-bouncer) ibr1 <-veth-- ibg1  gb
#   ri  ci 198.19.200.3 (ipblock service)           ibr2 <-veth-- ibg2  gi
#   flood: trafficgen send in gb/gi on CPU 0; receivers' NAPI threads on CPU 1
set -u
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

ROUNDS=5
OUTMD=
N=10000
WINDOW=1
WARM=0.3
TX_CPU=0
RX_CPU=1
NICE=-10
ENFORCE_TIMEOUT=20
# Idle seconds between a round's release and the next import.
SETTLE=3
MISSES=
while getopts "r:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	o) OUTMD=$OPTARG ;;
	*) usage 3,26 "$opt" ;;
	esac
done

bl_init nft crowdsec cscli crowdsec-firewall-bouncer curl ss
bl_need_built "$LOADER" "$RULE" "$TG"
# lib_crowdsec.sh runs the LAPI; it keeps its files under ST_TMP.
ST_TMP=$BL_TMP
# shellcheck source=selftests/lib_crowdsec.sh
source "$BL_REPO/selftests/lib_crowdsec.sh"

DST=198.19.255.254
RCV_MAC=02:00:00:00:00:02
SND_MAC=02:00:00:00:00:01
FLOOD_SRC=198.18.0.0/19

# --- the network ----------------------------------------------------------------

ns_add l
ip -n "$(ns l)" link add br0 type bridge || die "cannot create the bridge"
ip -n "$(ns l)" link set br0 up
ip -n "$(ns l)" addr add 198.19.200.1/24 dev br0
# ctl NS IF ADDR: a control link from NS to the LAPI's bridge.
ctl() {
	ns_add "$1"
	ip -n "$(ns "$1")" link add "$2" type veth peer name "p$2" netns "$(ns l)" ||
		die "cannot create veth $2"
	ip -n "$(ns l)" link set "p$2" master br0
	ip -n "$(ns l)" link set "p$2" up
	ip -n "$(ns "$1")" link set "$2" up
	ip -n "$(ns "$1")" addr add "$3/24" dev "$2"
}
ctl rb cb 198.19.200.2
ctl ri ci 198.19.200.3

declare -A NAPI
# flood_pair K RECV_NS SEND_NS: veth ibgK (SEND_NS) -> ibrK (RECV_NS), GRO on,
# the receiver owning DST, its NAPI threaded on RX_CPU.
flood_pair() {
	local k=$1 r=$2 g=$3 before after pid
	ns_add "$g"
	ip -n "$(ns "$g")" link add "ibg$k" address "$SND_MAC" type veth \
		peer name "ibr$k" address "$RCV_MAC" netns "$(ns "$r")" || die "cannot create veth ibg$k"
	ip -n "$(ns "$g")" link set "ibg$k" up
	ip -n "$(ns "$r")" link set "ibr$k" up
	ip -n "$(ns "$r")" addr add "$DST/24" dev "ibr$k"
	net "$r" "$TG" gro -i "ibr$k" on || die "cannot switch GRO on for ibr$k"
	before=$(ps -eo pid=,comm= | awk -v p="napi/ibr$k-" 'index($2, p) == 1 { print $1 }')
	sysfs "$r" sh -c "echo 1 > /sys/class/net/ibr$k/threaded" || die "no threaded NAPI on ibr$k"
	after=$(ps -eo pid=,comm= | awk -v p="napi/ibr$k-" 'index($2, p) == 1 { print $1 }')
	NAPI[$k]=
	for pid in $after; do
		grep -qw "$pid" <<<"$before" && continue
		taskset -pc "$RX_CPU" "$pid" >/dev/null || die "cannot pin NAPI thread $pid"
		renice -n "$NICE" -p "$pid" >/dev/null
		NAPI[$k]+="$pid "
	done
	[[ -n ${NAPI[$k]} ]] || die "no NAPI thread of ibr$k found"
}
flood_pair 1 rb gb
flood_pair 2 ri gi

# --- the LAPI and the two bouncers ------------------------------------------------

cs_use_netns l
CS_LISTEN=198.19.200.1
log "starting the LAPI"
cs_start_lapi || die "$WHY"
KEY_B=$(cs_add_bouncer fw-bouncer) || die "cscli bouncers add failed"
KEY_I=$(cs_add_bouncer ipblock) || die "cscli bouncers add failed"

mkdir -p "$BL_TMP/fwb" "$BL_TMP/ipb/state"
cat >"$BL_TMP/fwb/bouncer.yaml" <<EOF
mode: nftables
pid_dir: $BL_TMP/fwb/
update_frequency: 1s
daemonize: false
log_mode: file
log_dir: $BL_TMP/fwb/
log_level: info
api_url: $CS_URL/
api_key: $KEY_B
insecure_skip_verify: false
disable_ipv6: false
deny_action: DROP
deny_log: false
supported_decisions_types:
  - ban
nftables:
  ipv4:
    enabled: true
    set-only: false
    table: crowdsec
    chain: crowdsec-chain
  ipv6:
    enabled: true
    set-only: false
    table: crowdsec6
    chain: crowdsec6-chain
prometheus:
  enabled: false
  listen_addr: 127.0.0.1
  listen_port: 60601
EOF
(umask 077 && printf '%s\n' "$KEY_I" >"$BL_TMP/ipb/key")
pin_dir ipb
cat >"$BL_TMP/ipb/ipblock.conf" <<EOF
[ipblock]
pin-dir = $PIN
state-dir = $BL_TMP/ipb/state
[interface ibr2]
mode = native
[crowdsec]
url = $CS_URL
api-key-file = $BL_TMP/ipb/key
interval = 1s
EOF

log "starting crowdsec-firewall-bouncer (nftables) in $(ns rb)"
bl_bg nsenter --net="$(ns_path rb)" crowdsec-firewall-bouncer -c "$BL_TMP/fwb/bouncer.yaml" \
	>"$BL_TMP/fwb/stdout" 2>&1
PID_B=$BL_BG
log "starting the ipblock service in $(ns ri)"
bl_bg nsenter --net="$(ns_path ri)" "$LOADER" --service --config "$BL_TMP/ipb/ipblock.conf" \
	>"$BL_TMP/ipb/stdout" 2>"$BL_TMP/ipb/stderr"
PID_I=$BL_BG
on_exit "net ri $LOADER --pin-dir $PIN -d ibr2 -u"
for ((i = 0; i < 100; i++)); do
	grep -q 'service ready' "$BL_TMP/ipb/stdout" && break
	sleep 0.1
done
grep -q 'service ready' "$BL_TMP/ipb/stdout" || die "the service did not start: $(tail -n 3 "$BL_TMP/ipb/stderr")"
for ((i = 0; i < 100; i++)); do
	net rb nft list chain ip crowdsec crowdsec-chain >/dev/null 2>&1 && break
	sleep 0.1
done
net rb nft list chain ip crowdsec crowdsec-chain >/dev/null 2>&1 ||
	die "the firewall bouncer made no nft chain: $(tail -n 3 "$BL_TMP/fwb/"*.log "$BL_TMP/fwb/stdout" 2>/dev/null)"

# --- what is read ------------------------------------------------------------------

# held_b / held_i: decisions each enforces now.
held_b() {
	net rb nft list set ip crowdsec crowdsec-blacklists 2>/dev/null |
		grep -oE '198\.18\.[0-9]+\.[0-9]+' | wc -l
}
held_i() {
	"$RULE" --pin-dir "$PIN" -l -o crowdsec 2>/dev/null | grep -c ' deny'
}
# cpu_ticks PID: utime + stime (clock ticks).
cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
HZ=$(getconf CLK_TCK)
rss_kb() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
# anon_kb PID: the anonymous part of the RSS (ipblock's RSS also counts the
# lookup tables it maps, which are the kernel's map memory counted below).
anon_kb() {
	awk '/^RssAnon:/ { print $2 }' "/proc/$1/status"
}
# kmem_i: the kernel memory of ipblock's maps (bytes), as ipblock-loader -s says.
kmem_i() {
	"$TG" mem --pin-dir "$PIN" 2>/dev/null | awk '{ print $2 }'
}
ip_in_delivers() {
	# shellcheck disable=SC2016 # awk's fields
	net "$1" awk '/^Ip:/ { if (++n == 2) print $10 }' /proc/net/snmp
}
napi_ns() {
	local p v s=0
	for p in ${NAPI[$1]}; do
		read -r v _ <"/proc/$p/schedstat"
		s=$((s + v))
	done
	echo "$s"
}

# flood K RNS: one window of flood into ibrK; prints "Mpps Mpps/CPU-s dropped_fraction".
flood() {
	local k=$1 r=$2 c0 c1 u0 u1 t0 t1 d0 d1 pid
	bl_bg nice -n "$NICE" nsenter --net="$(ns_path "g${r#r}")" "$TG" send -i "ibg$k" \
		--dst-mac "$RCV_MAC" -s "$FLOOD_SRC" -d "$DST" -t "$(awk -v a="$WARM" -v b="$WINDOW" 'BEGIN { print a + b + 0.1 }')" \
		-c "$TX_CPU" >"$BL_TMP/send.out" 2>&1
	pid=$BL_BG
	sleep "$WARM"
	t0=$(now_us)
	c0=$(rx_packets "$r" "ibr$k")
	u0=$(napi_ns "$k")
	d0=$(ip_in_delivers "$r")
	sleep "$WINDOW"
	t1=$(now_us)
	c1=$(rx_packets "$r" "ibr$k")
	u1=$(napi_ns "$k")
	d1=$(ip_in_delivers "$r")
	bl_wait "$pid" || log "sender failed: $(cat "$BL_TMP/send.out")"
	awk -v n=$((c1 - c0)) -v t=$((t1 - t0)) -v u=$((u1 - u0)) -v d=$((d1 - d0)) \
		'BEGIN { printf "%.4f %.4f %.4f\n", n / t, (u > 0 ? n / u * 1000 : 0), (n ? 1 - d / n : 0) }'
}

# --- the rounds ---------------------------------------------------------------------

log "writing $N decisions"
{
	echo "duration,scope,value,type"
	for ((i = 0; i < N; i++)); do
		echo "4h,ip,198.18.$((i / 256)).$((i % 256)),ban"
	done
} >"$BL_TMP/decisions.csv"

declare -A R
add() { R[$1]+="$2 "; }
# The control: with nothing banned, the flood's share dropped must be ~0.
read -r _ _ CTRL_B < <(flood 1 rb)
read -r _ _ CTRL_I < <(flood 2 ri)
log "control, nothing banned: share dropped $CTRL_B (fw-bouncer), $CTRL_I (ipblock)"
for ((round = 1; round <= ROUNDS; round++)); do
	log "round $round of $ROUNDS: import"
	[[ $(held_b) == 0 && $(held_i) == 0 ]] || die "the bouncers do not start empty (fw-bouncer $(held_b), ipblock $(held_i))"
	cb0=$(cpu_ticks "$PID_B")
	ci0=$(cpu_ticks "$PID_I")
	t0=$(now_us)
	cscli_t decisions import -i "$BL_TMP/decisions.csv" >/dev/null 2>&1 || die "cscli decisions import failed"
	add import_s "$(awk -v t=$(($(now_us) - t0)) 'BEGIN { printf "%.3f", t / 1e6 }')"
	tb='' ti=''
	while [[ -z $tb || -z $ti ]]; do
		[[ -z $tb && $(held_b) -ge $N ]] && tb=$(($(now_us) - t0))
		[[ -z $ti && $(held_i) -ge $N ]] && ti=$(($(now_us) - t0))
		if (($(now_us) - t0 > ENFORCE_TIMEOUT * 1000000)); then
			# Said in the report, not hidden: a round where a bouncer
			# never got to all N counts as a miss, its time left out.
			MISSES+="round $round: after ${ENFORCE_TIMEOUT} s fw-bouncer held $(held_b), ipblock $(held_i) of $N. "
			cp "$BL_TMP/ipb/stdout" "/tmp/$BL_ID.ipblock-round$round.log" 2>/dev/null &&
				log "round $round missed; the service's log: /tmp/$BL_ID.ipblock-round$round.log"
			[[ -z $tb ]] && tb=miss
			[[ -z $ti ]] && ti=miss
			break
		fi
		sleep 0.05
	done
	# The CPU window: import start to both enforced, plus 2 s of polls.
	sleep 2
	cb1=$(cpu_ticks "$PID_B")
	ci1=$(cpu_ticks "$PID_I")
	win=$(($(now_us) - t0))
	tb_s=$(awk -v t="$tb" 'BEGIN { if (t == "miss") print t; else printf "%.3f", t / 1e6 }')
	ti_s=$(awk -v t="$ti" 'BEGIN { if (t == "miss") print t; else printf "%.3f", t / 1e6 }')
	[[ $tb_s == miss ]] || add enf_b "$tb_s"
	[[ $ti_s == miss ]] || add enf_i "$ti_s"
	add cpu_b "$(awk -v c=$((cb1 - cb0)) -v h="$HZ" 'BEGIN { printf "%.3f", c / h }')"
	add cpu_i "$(awk -v c=$((ci1 - ci0)) -v h="$HZ" 'BEGIN { printf "%.3f", c / h }')"
	add win_s "$(awk -v t="$win" 'BEGIN { printf "%.1f", t / 1e6 }')"
	add rss_b "$(rss_kb "$PID_B")"
	add rss_i "$(rss_kb "$PID_I")"
	add anon_b "$(anon_kb "$PID_B")"
	add anon_i "$(anon_kb "$PID_I")"
	add kmem_i "$(kmem_i)"
	log "round $round: flood"
	# Interleaved: the bouncer first in odd rounds, ipblock first in even ones.
	for who in $( ((round % 2)) && echo "b i" || echo "i b"); do
		if [[ $who == b ]]; then read -r m c f < <(flood 1 rb); else read -r m c f < <(flood 2 ri); fi
		add "mpps_$who" "$m"
		add "cmpps_$who" "$c"
		add "drop_$who" "$f"
	done
	log "round $round: delete --all"
	t0=$(now_us)
	cscli_t decisions delete --all >/dev/null 2>&1 || die "cscli decisions delete --all failed"
	tb='' ti=''
	while [[ -z $tb || -z $ti ]]; do
		[[ -z $tb && $(held_b) == 0 ]] && tb=$(($(now_us) - t0))
		[[ -z $ti && $(held_i) == 0 ]] && ti=$(($(now_us) - t0))
		(($(now_us) - t0 > 60000000)) && die "not all released within 60 s"
		sleep 0.05
	done
	add del_b "$(awk -v t="$tb" 'BEGIN { printf "%.3f", t / 1e6 }')"
	add del_i "$(awk -v t="$ti" 'BEGIN { printf "%.3f", t / 1e6 }')"
	sleep "$SETTLE"
	log "round $round: enforced in ${tb_s}s (fw-bouncer) / ${ti_s}s (ipblock)"
done

# --- the report -----------------------------------------------------------------------

# m KEY: "median (min–max)" of a series; med KEY: the median alone.
med() {
	# shellcheck disable=SC2086 # a word list
	stats ${R[$1]} | awk '{ print $1 }'
}
m() {
	# shellcheck disable=SC2086
	stats ${R[$1]} | awk -v d="${2:-2}" '{ printf "%.*f (%.*f–%.*f)\n", d, $1, d, $2, d, $3 }'
}
KB_TO_MIB=1024
{
	echo "## ipblock's CrowdSec bouncer vs crowdsec-firewall-bouncer (nftables)"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), Linux $(uname -r), $(nproc) cores (shared), commit $(git -C "$BL_REPO" rev-parse --short HEAD 2>/dev/null);"
	echo "crowdsec $(dpkg-query -W -f '${Version}' crowdsec 2>/dev/null), crowdsec-firewall-bouncer $(dpkg-query -W -f '${Version}' crowdsec-firewall-bouncer 2>/dev/null);"
	echo "$N Ip bans by one \`cscli decisions import\`, both bouncers polling every 1 s; $ROUNDS rounds, median (min–max)."
	echo
	echo "| | crowdsec-firewall-bouncer | ipblock | ipblock / bouncer |"
	echo "|---|---:|---:|---:|"
	echo "| import start → all $N enforced, s | $(m enf_b) | $(m enf_i) | $(ratio "$(med enf_i)" "$(med enf_b)") |"
	echo "| \`delete --all\` → all released, s | $(m del_b) | $(m del_i) | $(ratio "$(med del_i)" "$(med del_b)") |"
	echo "| CPU (utime+stime) over import → enforced + 2 s, s | $(m cpu_b 3) | $(m cpu_i 3) | $(ratio "$(med cpu_i)" "$(med cpu_b)") |"
	echo "| RSS with $N held, MiB | $(fmt "$(awk -v k="$(med rss_b)" -v d=$KB_TO_MIB 'BEGIN { print k / d }')" 1) | $(fmt "$(awk -v k="$(med rss_i)" -v d=$KB_TO_MIB 'BEGIN { print k / d }')" 1) | $(ratio "$(med rss_i)" "$(med rss_b)") |"
	echo "| of which anonymous (RssAnon), MiB | $(fmt "$(awk -v k="$(med anon_b)" -v d=$KB_TO_MIB 'BEGIN { print k / d }')" 1) | $(fmt "$(awk -v k="$(med anon_i)" -v d=$KB_TO_MIB 'BEGIN { print k / d }')" 1) | $(ratio "$(med anon_i)" "$(med anon_b)") |"
	echo "| + kernel maps (ipblock-loader -s memlock), MiB | not measured | $(fmt "$(awk -v b="$(med kmem_i)" 'BEGIN { print b / 1048576 }')" 1) | |"
	echo "| drop rate under the flood, Mpps per CPU-second of the receiver | $(m cmpps_b) | $(m cmpps_i) | $(ratio "$(med cmpps_i)" "$(med cmpps_b)") |"
	echo "| drop rate, Mpps of wall clock | $(m mpps_b) | $(m mpps_i) | $(ratio "$(med mpps_i)" "$(med mpps_b)") |"
	echo "| share of the flood dropped | $(m drop_b 3) | $(m drop_i 3) | |"
	echo "| the same with nothing banned (control) | $(fmt "$CTRL_B" 3) | $(fmt "$CTRL_I" 3) | |"
	echo
	[[ -n $MISSES ]] && echo "**Rounds where a bouncer did not enforce all $N** (left out of the times above): $MISSES" && echo
	echo "Import (\`cscli decisions import\` itself): $(m import_s) s; CPU windows $(m win_s 1) s."
	echo "Flood: trafficgen (XDP_TX by BPF_PROG_RUN live frames, CPU 0) into a veth whose NAPI thread"
	echo "runs on CPU 1, sources random in $FLOOD_SRC (all banned), to the receiver's own $DST"
	echo "(the bouncer's chain hooks input); ${WINDOW}s windows. The nft set's kernel memory is not"
	echo "measured (a hash set with timeouts; bench_memory.sh measures interval sets only). A round"
	echo "one bouncer missed still times the other: the medians may be over different rounds."
} >"$BL_TMP/report.md"
cat "$BL_TMP/report.md"
[[ -n $OUTMD ]] && cp "$BL_TMP/report.md" "$OUTMD"
exit 0
