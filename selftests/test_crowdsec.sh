#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The service's CrowdSec bouncer against a real CrowdSec LAPI (Debian's
# crowdsec, offline, started by lib_crowdsec.sh in the receiver's network
# namespace), over real traffic: cscli decisions add -i and --range are
# dropped within one poll interval + 1 s, IPv6 too; an admin's static allow
# beats a ban; cscli decisions delete passes again; a decision's duration is
# its rule's timeout; a stopped LAPI leaves the rules enforced and a
# restarted one is caught up with; a service restarted after a deletion it
# missed releases that rule (startup=true).
#
#   snd (va)  198.18.0.1 .3 .4 .5 .6 .7/24, 2001:db8::1 ::3/64
#   rcv (vb)  198.18.0.2/24, 2001:db8::2/64   <- ipblock service, crowdsec LAPI
# Helpers run through check() look unreachable to shellcheck.
# shellcheck disable=SC2317
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib_crowdsec.sh
source "$(dirname "$0")/lib_crowdsec.sh"

st_init curl
if ! cs_require; then
	skip crowdsec "$WHY"
	st_finish
fi

ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24 198.18.0.3/24 198.18.0.4/24 198.18.0.5/24 198.18.0.6/24 \
	198.18.0.7/24 2001:db8::1/64 2001:db8::3/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64

cs_use_netns rcv
cs_start_lapi || setup_fail "$WHY"
say "crowdsec's LAPI answered after ${CS_START_MS} ms at $CS_URL"
KEY=$(cs_add_bouncer ipblock-selftest) || setup_fail "cscli bouncers add failed"
(umask 077 && printf '%s\n' "$KEY" >"$ST_TMP/key")

CONF=$ST_TMP/ipblock.conf
cat >"$CONF" <<CONF
[ipblock]
pin-dir = $PIN
state-dir = $ST_TMP/state
[interface vb]
[crowdsec]
url = $CS_URL
api-key-file = $ST_TMP/key
interval = 1s
CONF

: >"$ST_TMP/svc.out"
SVC_PID=
# svc_start: the service in rcv's namespace; true once it says it is ready (bounded).
svc_start() {
	local i lines
	lines=$(wc -l <"$ST_TMP/svc.out" 2>/dev/null || echo 0)
	nsenter --net="/run/netns/$(ns rcv)" "$LOADER" --service --config "$CONF" \
		>>"$ST_TMP/svc.out" 2>>"$ST_TMP/svc.err" &
	SVC_PID=$!
	ST_PIDS+=("$SVC_PID")
	for ((i = 0; i < 100; i++)); do
		tail -n +"$((lines + 1))" "$ST_TMP/svc.out" 2>/dev/null | grep -q 'service ready' &&
			return 0
		kill -0 "$SVC_PID" 2>/dev/null || break
		sleep 0.1
	done
	WHY="the service did not get ready: $(tail -n 3 "$ST_TMP/svc.err" 2>/dev/null)"
	return 1
}

# svc_stop: SIGTERM, bounded wait.
svc_stop() {
	stop_pid "$SVC_PID"
}

# crowdsec_rules: the rules source crowdsec holds, "CIDR action" lines.
crowdsec_rules() {
	"$RULE" --pin-dir "$PIN" -l -o crowdsec 2>/dev/null | grep -v '^#' | cut -d' ' -f1,2
}

# wait_rule WANT|GONE CIDR MS: the crowdsec rule for CIDR appears (or goes)
# within MS ms; sets WAITED (ms).
wait_rule() {
	local want=$1 cidr=$2 ms=$3 t0 now
	t0=$(cs_now_ms)
	while :; do
		now=$(cs_now_ms)
		WAITED=$((now - t0))
		if crowdsec_rules | grep -qx "$cidr deny"; then
			[[ $want == WANT ]] && return 0
		else
			[[ $want == GONE ]] && return 0
		fi
		if ((WAITED > ms)); then
			WHY="$cidr still $([[ $want == WANT ]] && echo absent || echo present) after ${WAITED} ms"
			return 1
		fi
		sleep 0.05
	done
}

check service_starts svc_start
check admin_allow eval '"$RULE" --pin-dir "$PIN" -a 198.18.0.4 -p allow >/dev/null'

say "decisions reach the rules within a poll interval (1 s) + 1 s"
cscli_t decisions add -i 198.18.0.3 -d 1h >/dev/null || setup_fail "cscli decisions add -i failed"
check ip_ban_applied wait_rule WANT 198.18.0.3/32 2000
say "cscli decisions add -i -> rule: ${WAITED} ms"
check ip_ban_drops ping_dropped snd 198.18.0.2 198.18.0.3
check ip_ban_has_the_duration eval \
	'"$RULE" --pin-dir "$PIN" -l | grep -qE "^198\.18\.0\.3/32 deny # crowdsec deny (59m[0-9]+s|1h) left"'
cscli_t decisions add --range 198.18.0.4/30 -d 2h >/dev/null || setup_fail "cscli decisions add --range failed"
check range_ban_applied wait_rule WANT 198.18.0.4/30 2000
say "cscli decisions add --range -> rule: ${WAITED} ms"
check range_ban_drops ping_dropped snd 198.18.0.2 198.18.0.5
check admin_allow_beats_the_range ping_passes snd 198.18.0.2 198.18.0.4
cscli_t decisions add -i 2001:db8::3 -d 1h >/dev/null || setup_fail "cscli decisions add -i v6 failed"
check v6_ban_applied wait_rule WANT 2001:db8::3/128 2000
check v6_ban_drops ping_dropped snd 2001:db8::2 2001:db8::3
cscli_t decisions add -i 198.18.0.7 -d 1h -t captcha >/dev/null
sleep 1.5
check captcha_not_applied eval '! crowdsec_rules | grep -q "^198\.18\.0\.7/"'

say "deletions and expiry"
cscli_t decisions delete -i 198.18.0.3 >/dev/null || setup_fail "cscli decisions delete failed"
check ip_unban_applied wait_rule GONE 198.18.0.3/32 2000
say "cscli decisions delete -> rule gone: ${WAITED} ms"
check ip_unban_passes ping_passes snd 198.18.0.2 198.18.0.3
check admin_allow_kept eval '"$RULE" --pin-dir "$PIN" -l | grep -q "^198\.18\.0\.4/32 allow"'
cscli_t decisions add -i 198.18.0.3 -d 3s >/dev/null
check short_ban_applied wait_rule WANT 198.18.0.3/32 2000
check short_ban_drops ping_dropped snd 198.18.0.2 198.18.0.3
# Gone within its 3 s, the next whole second and a poll: bounded at 6 s.
check short_ban_expires wait_rule GONE 198.18.0.3/32 6000
check expired_ban_passes ping_passes snd 198.18.0.2 198.18.0.3

say "the LAPI stopped: the rules stay; restarted: caught up with"
cs_stop_lapi
sleep 3
check lapi_down_rules_stay eval 'crowdsec_rules | grep -qx "198.18.0.4/30 deny"'
check lapi_down_still_drops ping_dropped snd 198.18.0.2 198.18.0.5
check lapi_down_said eval 'grep -q "Cannot connect to the CrowdSec LAPI" "$ST_TMP/svc.err"'
check service_alive_while_lapi_down kill -0 "$SVC_PID"
cs_start_lapi || setup_fail "restart: $WHY"
cscli_t decisions add -i 198.18.0.3 -d 1h >/dev/null
# Polls back off while the LAPI is down (doubling from 1 s): at most 8 s here, plus a poll.
check lapi_back_caught_up wait_rule WANT 198.18.0.3/32 10000
say "LAPI restarted, decision added -> rule: ${WAITED} ms"
check lapi_back_said eval 'grep -q "the LAPI answers again" "$ST_TMP/svc.out"'

say "a deletion the service missed while stopped is caught up with at its start"
svc_stop
cscli_t decisions delete -i 198.18.0.3 >/dev/null
check missed_deletion_still_pinned eval 'crowdsec_rules | grep -qx "198.18.0.3/32 deny"'
check service_restarts svc_start
check missed_deletion_released wait_rule GONE 198.18.0.3/32 3000
check range_kept_across_restart eval 'crowdsec_rules | grep -qx "198.18.0.4/30 deny"'
check startup_answer_said eval 'grep -q "crowdsec: startup answer" "$ST_TMP/svc.out"'
svc_stop
check no_errors_but_the_outage eval '! grep -v "Cannot connect\|CrowdSec LAPI" "$ST_TMP/svc.err" | grep -q .'

st_finish
