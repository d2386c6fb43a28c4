#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A fleet: one CrowdSec LAPI (Debian's crowdsec, offline) and 20 ipblock
# services, each a host of its own -- its own network namespace, pin
# directory, state directory, bouncer key and veth link -- polling that LAPI
# every second.  One cscli decisions add -i reaches all 20 within the poll
# interval + 1 s (the slowest of the 20 is what counts) and real pings into
# a few hosts are dropped; one deletion leaves all 20; a host stopped while
# a decision is added and another deleted converges, once started again, to
# the same crowdsec rules as the other 19.
#
#   lapi   br0 198.18.0.1/24 (LAPI), .250 .251 (the banned sources),
#          2001:db8::1/64, ::fa; ports p1..p20 enslaved to br0
#   h1..h20  eth0 198.18.0.(10+N)/24, 2001:db8::(a+N hex)/64  <- ipblock service
# Helpers run through check() look unreachable to shellcheck; eval's single
# quotes are meant.
# shellcheck disable=SC2317,SC2016
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib_crowdsec.sh
source "$(dirname "$0")/lib_crowdsec.sh"

HOSTS=${FLEET_HOSTS:-20}
# The host stopped and started again mid-way, and the hosts pinged into.
RESTARTED=7
PINGED=(1 10 "$HOSTS")
BAN4=198.18.0.250
BAN4B=198.18.0.251
BAN6=2001:db8::fb

st_init curl
if ! cs_require; then
	skip fleet "$WHY"
	st_finish
fi
T_START=$(cs_now_ms)

# --- the network: a bridge in lapi's namespace, one veth per host -------------

ns_add lapi
ip -n "$(ns lapi)" link add br0 type bridge || setup_fail "cannot create the bridge"
ip -n "$(ns lapi)" link set br0 up
addr lapi br0 198.18.0.1/24 "$BAN4/24" "$BAN4B/24" 2001:db8::1/64 2001:db8::fa/64
host_ip4() { echo "198.18.0.$((10 + $1))"; }
host_ip6() { printf '2001:db8::%x\n' $((10 + $1)); }
for ((n = 1; n <= HOSTS; n++)); do
	ns_add "h$n"
	veth "h$n" eth0 lapi "p$n"
	ip -n "$(ns lapi)" link set "p$n" master br0 || setup_fail "cannot enslave p$n"
	addr "h$n" eth0 "$(host_ip4 "$n")/24" "$(host_ip6 "$n")/64"
done

# --- the LAPI, reachable from every host --------------------------------------

cs_use_netns lapi
CS_LISTEN=198.18.0.1
cs_start_lapi || setup_fail "$WHY"
say "crowdsec's LAPI answered after ${CS_START_MS} ms at $CS_URL"

# Each host its own bouncer (the LAPI keeps each bouncer's last pull: hosts
# sharing a key would take each other's changes).
svc_conf() {
	local n=$1
	cat <<CONF
[ipblock]
pin-dir = /sys/fs/bpf/$ST_ID-$n
state-dir = $ST_TMP/h$n/state
[interface eth0]
[crowdsec]
url = $CS_URL
api-key-file = $ST_TMP/h$n/key
interval = 1s
CONF
}
for ((n = 1; n <= HOSTS; n++)); do
	mkdir -p "$ST_TMP/h$n"
	KEY=$(cs_add_bouncer "ipblock-h$n") || setup_fail "cscli bouncers add ipblock-h$n failed"
	(umask 077 && printf '%s\n' "$KEY" >"$ST_TMP/h$n/key")
	svc_conf "$n" >"$ST_TMP/h$n/ipblock.conf"
	ST_PINS+=("/sys/fs/bpf/$ST_ID-$n")
	: >"$ST_TMP/h$n/out"
done
T_SETUP=$(cs_now_ms)
say "setup: $HOSTS namespaces, veths and bouncer keys in $((T_SETUP - T_START)) ms"

# --- the services --------------------------------------------------------------

SVC_PID=()
# svc_launch N: start host N's service in its namespace (not waiting).
svc_launch() {
	local n=$1
	SVC_LINES[n]=$(wc -l <"$ST_TMP/h$n/out")
	nsenter --net="/run/netns/$(ns "h$n")" "$LOADER" --service --config "$ST_TMP/h$n/ipblock.conf" \
		>>"$ST_TMP/h$n/out" 2>>"$ST_TMP/h$n/err" &
	SVC_PID[n]=$!
	ST_PIDS+=("$!")
}
SVC_LINES=()

# svc_ready N...: every listed host's service said "service ready" (bounded
# at 60 s for all: 20 programs go through the verifier on 2 cores).
svc_ready() {
	local deadline=$(($(cs_now_ms) + 60000)) n left
	while :; do
		left=()
		for n in "$@"; do
			tail -n +"$((SVC_LINES[n] + 1))" "$ST_TMP/h$n/out" | grep -q 'service ready' ||
				left+=("$n")
		done
		((${#left[@]} == 0)) && return 0
		for n in "${left[@]}"; do
			if ! kill -0 "${SVC_PID[n]}" 2>/dev/null; then
				WHY="host $n's service exited: $(tail -n 3 "$ST_TMP/h$n/err")"
				return 1
			fi
		done
		if (($(cs_now_ms) > deadline)); then
			WHY="not ready after 60 s: hosts ${left[*]}"
			return 1
		fi
		set -- "${left[@]}"
		sleep 0.2
	done
}

# svc_stop N: SIGTERM, bounded wait.
svc_stop() {
	stop_pid "${SVC_PID[$1]}"
}

# crowdsec_rules N: host N's rules of source crowdsec, "CIDR action" lines.
crowdsec_rules() {
	"$RULE" --pin-dir "/sys/fs/bpf/$ST_ID-$1" -l -o crowdsec 2>/dev/null | grep -v '^#' |
		cut -d' ' -f1,2
}

# wait_all WANT|GONE CIDR MS HOST...: on every listed host the crowdsec rule
# for CIDR appears (or goes) within MS ms of $T0.  The hosts are read in turn,
# so each time is when the rule was seen, an upper bound of when it was
# applied.  Sets MAX_MS (the slowest host) and MED_MS (the median).
wait_all() {
	local want=$1 cidr=$2 ms=$3 n now has left times=()
	shift 3
	while :; do
		left=()
		for n in "$@"; do
			if crowdsec_rules "$n" | grep -qxF "$cidr deny"; then has=1; else has=0; fi
			if [[ $want == WANT && $has == 1 ]] || [[ $want == GONE && $has == 0 ]]; then
				now=$(cs_now_ms)
				times+=($((now - T0)))
			else
				left+=("$n")
			fi
		done
		((${#left[@]} == 0)) && break
		if (($(cs_now_ms) - T0 > ms)); then
			WHY="$cidr still $([[ $want == WANT ]] && echo absent || echo present) on hosts ${left[*]} after $ms ms"
			return 1
		fi
		set -- "${left[@]}"
	done
	mapfile -t times < <(printf '%s\n' "${times[@]}" | sort -n)
	MAX_MS=${times[-1]}
	MED_MS=${times[$((${#times[@]} / 2))]}
	return 0
}

# pings MODE SRC DST_FAMILY: ping_passes/ping_dropped from lapi's namespace,
# source SRC, into each host of PINGED, in parallel (3 pings each).
pings() {
	local mode=$1 src=$2 fam=$3 n dst pids=() rc=0 why=()
	for n in "${PINGED[@]}"; do
		if [[ $fam == 4 ]]; then dst=$(host_ip4 "$n"); else dst=$(host_ip6 "$n"); fi
		( "$mode" lapi "$dst" "$src" || { echo "$WHY" >"$ST_TMP/ping.$n"; exit 1; } ) &
		pids+=("$!")
	done
	for n in "${!pids[@]}"; do
		wait "${pids[n]}" || rc=1
	done
	for n in "${PINGED[@]}"; do
		[[ -s $ST_TMP/ping.$n ]] && why+=("$(cat "$ST_TMP/ping.$n")")
		rm -f "$ST_TMP/ping.$n"
	done
	WHY=${why[*]:-}
	return "$rc"
}

ALL=()
for ((n = 1; n <= HOSTS; n++)); do
	ALL+=("$n")
	svc_launch "$n"
done
T0=$(cs_now_ms)
check services_ready svc_ready "${ALL[@]}"
say "$HOSTS services ready in $(($(cs_now_ms) - T0)) ms"
# all_attached: every host's eth0 runs an XDP program.
all_attached() {
	local n bad=()
	for n in "${ALL[@]}"; do
		ip -n "$(ns "h$n")" link show eth0 | grep -q 'prog/xdp' || bad+=("$n")
	done
	((${#bad[@]} == 0)) && return 0
	WHY="no XDP program on eth0 of hosts ${bad[*]}"
	return 1
}
check attached_on_every_host all_attached
check pings_pass_before pings ping_passes "$BAN4" 4
# How long one read of every host's rules takes: the resolution of the times below.
T0=$(cs_now_ms)
for n in "${ALL[@]}"; do
	crowdsec_rules "$n" >/dev/null
done
say "one ipblock-rule -l of each of the $HOSTS hosts: $(($(cs_now_ms) - T0)) ms"
# svc_cpu_ticks: utime + stime of the running services, summed.
svc_cpu_ticks() {
	local n t=0 v
	for n in "${ALL[@]}"; do
		v=$(awk '{ print $14 + $15 }' "/proc/${SVC_PID[n]}/stat" 2>/dev/null) && t=$((t + v))
	done
	echo "$t"
}
CPU0=$(svc_cpu_ticks)
LAPI_CPU0=$(awk '{ print $14 + $15 }' "/proc/$CS_PID/stat")
T_CPU0=$(cs_now_ms)

# --- one decision, every host ---------------------------------------------------

say "one cscli decisions add -i reaches all $HOSTS hosts within the poll interval (1 s) + 1 s"
T0=$(cs_now_ms)
cscli_t decisions add -i "$BAN4" -d 1h >/dev/null || setup_fail "cscli decisions add -i failed"
CSCLI_MS=$(($(cs_now_ms) - T0))
check ban_on_every_host wait_all WANT "$BAN4/32" 2000 "${ALL[@]}"
say "cscli decisions add -i (its run ${CSCLI_MS} ms included) -> rule on all $HOSTS: slowest ${MAX_MS:-?} ms, median ${MED_MS:-?} ms"
check ban_drops_pings pings ping_dropped "$BAN4" 4

say "one deletion leaves all $HOSTS hosts"
T0=$(cs_now_ms)
cscli_t decisions delete -i "$BAN4" >/dev/null || setup_fail "cscli decisions delete failed"
CSCLI_MS=$(($(cs_now_ms) - T0))
check unban_on_every_host wait_all GONE "$BAN4/32" 2000 "${ALL[@]}"
say "cscli decisions delete (its run ${CSCLI_MS} ms included) -> rule gone on all $HOSTS: slowest ${MAX_MS:-?} ms, median ${MED_MS:-?} ms"
check unban_pings_pass pings ping_passes "$BAN4" 4

# The services' and the LAPI's CPU while all 20 polled every second.
HZ=$(getconf CLK_TCK)
CPU1=$(svc_cpu_ticks)
LAPI_CPU1=$(awk '{ print $14 + $15 }' "/proc/$CS_PID/stat")
T_CPU1=$(cs_now_ms)
say "CPU over $((T_CPU1 - T_CPU0)) ms of polling: the $HOSTS services $(((CPU1 - CPU0) * 1000 / HZ)) ms in all, the LAPI $(((LAPI_CPU1 - LAPI_CPU0) * 1000 / HZ)) ms"

# --- a host restarted mid-way ---------------------------------------------------

say "host $RESTARTED stopped while one decision is added and another deleted"
OTHERS=()
for n in "${ALL[@]}"; do
	((n == RESTARTED)) || OTHERS+=("$n")
done
T0=$(cs_now_ms)
cscli_t decisions add -i "$BAN4" -d 1h >/dev/null || setup_fail "cscli decisions add -i failed"
check second_ban_on_every_host wait_all WANT "$BAN4/32" 2000 "${ALL[@]}"
svc_stop "$RESTARTED"
check stopped_host_stopped eval '! kill -0 "${SVC_PID[RESTARTED]}" 2>/dev/null'
T0=$(cs_now_ms)
cscli_t decisions delete -i "$BAN4" >/dev/null || setup_fail "cscli decisions delete failed"
cscli_t decisions add -i "$BAN6" -d 1h >/dev/null || setup_fail "cscli decisions add -i v6 failed"
cscli_t decisions add -i "$BAN4B" -d 1h >/dev/null || setup_fail "cscli decisions add -i failed"
# Three cscli runs, then a poll + 1 s.
check others_unban wait_all GONE "$BAN4/32" 3000 "${OTHERS[@]}"
check others_v6_ban wait_all WANT "$BAN6/128" 3000 "${OTHERS[@]}"
check others_second_v4_ban wait_all WANT "$BAN4B/32" 3000 "${OTHERS[@]}"
check stopped_host_keeps_its_rules eval \
	'[[ $(crowdsec_rules "$RESTARTED") == "$BAN4/32 deny" ]]'
svc_launch "$RESTARTED"
T0=$(cs_now_ms)
check restarted_ready svc_ready "$RESTARTED"
check restarted_catches_up_ban wait_all WANT "$BAN6/128" 3000 "$RESTARTED"
check restarted_releases_missed_deletion wait_all GONE "$BAN4/32" 3000 "$RESTARTED"
say "restarted host: start to caught up ${MAX_MS:-?} ms"

# same_rules: every host's crowdsec listing equals host 1's (and is not empty).
same_rules() {
	local ref n got bad=()
	ref=$(crowdsec_rules 1)
	if [[ -z $ref ]]; then
		WHY="host 1 holds no crowdsec rule"
		return 1
	fi
	for n in "${ALL[@]}"; do
		got=$(crowdsec_rules "$n")
		[[ $got == "$ref" ]] || bad+=("host $n: $(tr '\n' ' ' <<<"$got")")
	done
	((${#bad[@]} == 0)) && return 0
	WHY="host 1: $(tr '\n' ' ' <<<"$ref"); differing: ${bad[*]}"
	return 1
}
check restarted_host_converges same_rules
check converged_set_is_the_lapis eval \
	'[[ $(crowdsec_rules 1 | sort) == "$(printf "%s deny\n" "$BAN6/128" "$BAN4B/32" | sort)" ]]'
check restarted_drops_v6 eval 'PINGED=("$RESTARTED"); pings ping_dropped 2001:db8::fb 6'
check restarted_passes_released eval 'PINGED=("$RESTARTED"); pings ping_passes "$BAN4" 4'

# --- the end ----------------------------------------------------------------------

for n in "${ALL[@]}"; do
	svc_stop "$n"
done
# no_errors: no service said anything on stderr.
no_errors() {
	local n bad=()
	for n in "${ALL[@]}"; do
		[[ -s $ST_TMP/h$n/err ]] && bad+=("host $n: $(head -n 2 "$ST_TMP/h$n/err")")
	done
	((${#bad[@]} == 0)) && return 0
	WHY="${bad[*]}"
	return 1
}
check no_service_errors no_errors
say "whole test: $(($(cs_now_ms) - T_START)) ms"
st_finish
