#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The shipped fail2ban action (contrib/fail2ban/action.d/ipblock.conf) driven
# by the real fail2ban-server: failures written to a log are enforced within a
# second of fail2ban's decision (within 2 s of the log line: fail2ban's
# polling takes up to 1.6 s to notice them), the banned source is dropped,
# fail2ban's unban after the ban time lets it pass again, a stop releases the
# jail's bans and a restart restores them without errors (a reload keeps
# them), an admin's static allow is never removed by a jail, IPv6 the same,
# each jail its own source, make install puts the action in place.
#
#   snd (va)  198.18.0.1 .3 .4/24, 2001:db8::1/64
#   rcv (vb)  198.18.0.2/24,       2001:db8::2/64   <- ipblock, fail2ban-server
#
# fail2ban runs in rcv's network namespace (as on the host it protects) with
# its own configuration directory, socket, database and log under the test's
# temporary directory, the polling backend, and two jails:
#   ipbt-short  bantime 4 s           source fail2ban-ipbt-short
#   ipbt-long   bantime -1 (for good) source fail2ban-ipbt-long
# Helpers run through check() look unreachable to shellcheck; the eval
# strings are expanded when the check runs.
# shellcheck disable=SC2317,SC2016
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init fail2ban-server fail2ban-client

ACTION=$ST_REPO/contrib/fail2ban/action.d/ipblock.conf
SHORT_BANTIME=4
# Ban latency: fail2ban's decision -> enforced (the action's part), and
# failures written -> enforced (with fail2ban's polling).
ACTION_LIMIT_MS=1000
TOTAL_LIMIT_MS=2000

ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24 198.18.0.3/24 198.18.0.4/24 2001:db8::1/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64

run_cli loader rcv -d vb
((RC)) && setup_fail "ipblock-loader -d vb failed ($RC): $ERR"

# --- fail2ban's own configuration directory ---------------------------------
F2B=$ST_TMP/fail2ban
CONF=$F2B/etc
RUN=$F2B/run
F2BLOG=$RUN/fail2ban.log
LOG_SHORT=$F2B/short.log
LOG_LONG=$F2B/long.log
mkdir -p "$RUN"
cp -a /etc/fail2ban "$CONF" || setup_fail "cannot copy /etc/fail2ban"
# Only the package's .conf files: no jail of the host, no admin's .local.
rm -rf "$CONF"/jail.d/* "$CONF"/fail2ban.d/*
find "$CONF" -name '*.local' -delete
cp "$ACTION" "$CONF/action.d/ipblock.conf" || setup_fail "cannot copy $ACTION"
: >"$LOG_SHORT"
: >"$LOG_LONG"

cat >"$CONF/fail2ban.local" <<EOF
[DEFAULT]
allowipv6 = auto

[Definition]
loglevel = INFO
logtarget = $F2BLOG
socket = $RUN/fail2ban.sock
pidfile = $RUN/fail2ban.pid
dbfile = $RUN/fail2ban.sqlite3
EOF

cat >"$CONF/filter.d/ipbt.conf" <<'EOF'
[Definition]
failregex = ^\s*ipbt: auth failure from <HOST>$
datepattern = ^%%Y-%%m-%%d %%H:%%M:%%S
EOF

cat >"$CONF/jail.local" <<EOF
[DEFAULT]
backend  = polling
ignoreip =
maxretry = 3
findtime = 600
filter   = ipbt
action   = ipblock[ipblock_rule="$RULE", pin_dir="$PIN"]

[ipbt-short]
enabled = true
logpath = $LOG_SHORT
bantime = $SHORT_BANTIME

[ipbt-long]
enabled = true
logpath = $LOG_LONG
bantime = -1
EOF

SRC_SHORT=fail2ban-ipbt-short
SRC_LONG=fail2ban-ipbt-long

# f2b ARGS...: fail2ban-client on the test's configuration, bounded.
f2b() {
	timeout 30 nsenter --net="/run/netns/$(ns rcv)" fail2ban-client -c "$CONF" "$@"
}

f2b_pid() {
	cat "$RUN/fail2ban.pid" 2>/dev/null
}

# is_f2b PID: PID is a running fail2ban-server.
is_f2b() {
	[[ -n $1 ]] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -q fail2ban-server
}

# f2b_stop: stop the server and make sure it is gone (killed if it does not
# go within 10 s, and then a failure).
f2b_stop() {
	local pid i
	pid=$(f2b_pid)
	f2b stop >/dev/null 2>&1
	for ((i = 0; i < 100; i++)); do
		is_f2b "$pid" || break
		sleep 0.1
	done
	if is_f2b "$pid"; then
		kill -9 "$pid"
		WHY="fail2ban-server $pid did not stop within 10 s: killed"
		return 1
	fi
	rm -f "$RUN/fail2ban.pid"
}
on_exit f2b_stop

# f2b_start: start the server; the jails are up when the client returns.
f2b_start() {
	run_cli f2b -x start
	cli_ok || return 1
	[[ $(f2b status 2>&1) == *"ipbt-long, ipbt-short"* ]] && return 0
	WHY="fail2ban-client status does not list the jails: $(f2b status 2>&1)"
	return 1
}

# fail_login LOG ADDR: three failures of ADDR (maxretry) in LOG, stamped
# with the second FAIL_SEC (fail2ban counts the ban time from it).
FAIL_SEC=
fail_login() {
	local i stamp
	FAIL_SEC=$(date +%s)
	stamp=$(date -d "@$FAIL_SEC" '+%F %T')
	for i in 1 2 3; do
		printf '%s ipbt: auth failure from %s\n' "$stamp" "$2" >>"$1"
	done
}

now_ns() {
	date +%s%N
}

# wait_since T0 LIMIT_MS CMD...: run CMD every 50 ms until it succeeds;
# ELAPSED_MS is the time since T0 (ns) when it did.  False after LIMIT_MS.
ELAPSED_MS=
wait_since() {
	local t0=$1 limit=$2 now
	shift 2
	ELAPSED_MS=
	while :; do
		if "$@"; then
			now=$(now_ns)
			ELAPSED_MS=$(((now - t0) / 1000000))
			return 0
		fi
		now=$(now_ns)
		(((now - t0) / 1000000 > limit)) && break
		sleep 0.05
	done
	WHY="not within ${limit} ms: $*"
	return 1
}

# claims SOURCE: the rules SOURCE holds, "CIDR action # SOURCE deny [N left]".
claims() {
	rule -l -o "$1" 2>/dev/null | grep -v '^#' | strip_hits
}

# has_claim SOURCE PREFIX / no_claim SOURCE PREFIX
has_claim() {
	claims "$1" | grep -q "^$2 " && return 0
	WHY="$1 holds no claim for $2: $(claims "$1" | tr '\n' ';')"
	return 1
}
no_claim() {
	claims "$1" | grep -q "^$2 " || return 0
	WHY="$1 still holds $2: $(claims "$1" | tr '\n' ';')"
	return 1
}

# no_errors [FROM]: fail2ban's log holds no ERROR or CRITICAL line (from its
# line FROM on).
no_errors() {
	local e
	e=$(tail -n +"${1:-1}" "$F2BLOG" | grep -E ' (ERROR|CRITICAL) ')
	[[ -z $e ]] && return 0
	WHY="fail2ban logged errors:
$e"
	return 1
}

LATENCIES=()
ACTION_LATENCIES=()
# ban_latency NAME SOURCE PREFIX T0: the claim is enforced within
# ACTION_LIMIT_MS of fail2ban's decision (its "Ban" line: the action's part)
# and within TOTAL_LIMIT_MS of T0, when the failures were written (fail2ban's
# polling adds up to 1.6 s: its filter and its actions thread each wake
# after 0.2, 0.4, 0.6, 0.8 s).  Waits up to 5 s to say how late.
ban_latency() {
	local name=$1 seen total banned action
	if ! wait_since "$4" 5000 has_claim "$2" "$3"; then
		fail "$name" "no ban of $3 by $2 within 5 s" "fail2ban's log:" "$(tail -n 20 "$F2BLOG")"
		return
	fi
	seen=$(now_ns)
	total=$ELAPSED_MS
	banned=$(grep -F "[${2#fail2ban-}] Ban ${3%/*}" "$F2BLOG" | tail -n 1 | cut -c 1-23 | tr , .)
	if [[ -z $banned ]]; then
		fail "$name" "$3 is banned but fail2ban's log has no Ban line for it"
		return
	fi
	banned=$(date -d "$banned" +%s%N)
	action=$(((seen - banned) / 1000000))
	LATENCIES+=("$total")
	ACTION_LATENCIES+=("$action")
	if ((action <= ACTION_LIMIT_MS && total <= TOTAL_LIMIT_MS)); then
		pass "$name (${action} ms from fail2ban's Ban, ${total} ms from the log line)"
	else
		fail "$name" "enforced ${action} ms after fail2ban's Ban (at most ${ACTION_LIMIT_MS})," \
			"${total} ms after the log line (at most ${TOTAL_LIMIT_MS})"
	fi
}

say "the action file: every operation named, one source per jail"
for op in actionstart actionstop actionflush actioncheck actionban actionunban; do
	check "action_defines_$op" grep -q "^$op = " "$ACTION"
done

# action_cmd OP: the jail ipbt-long's OP command as fail2ban's configuration
# reader hands it to the server (fail2ban-client -d), the action's options
# put in.
action_cmd() {
	f2b -d 2>/dev/null | "$PYTHON" -c '
import ast, sys
for line in sys.stdin:
    if line.startswith("[\x27multi-set\x27, \x27ipbt-long\x27, \x27action\x27"):
        print(dict(ast.literal_eval(line)[4])[sys.argv[1]])
' "$1"
}

say "make install: the action where fail2ban's action.d exists, naming the installed CLI"
INST=$ST_TMP/inst
mkdir -p "$INST/etc/fail2ban/action.d" "$INST/plain"
run_cli make -s -C "$ST_REPO" BUILD="$BUILD" DESTDIR="$INST" PREFIX=/opt/ipbt install
check install_puts_the_action eval '[[ $RC == 0 ]] && grep -qx "ipblock_rule = /opt/ipbt/sbin/ipblock-rule" \
	"$INST/etc/fail2ban/action.d/ipblock.conf" || { WHY="exit $RC: $OUT $ERR"; false; }'
check installed_action_otherwise_the_same eval 'diff <(grep -v "^ipblock_rule = " "$ACTION") \
	<(grep -v "^ipblock_rule = " "$INST/etc/fail2ban/action.d/ipblock.conf")'
run_cli make -s -C "$ST_REPO" BUILD="$BUILD" DESTDIR="$INST/plain" install
check no_action_without_fail2ban eval '[[ $RC == 0 && -x $INST/plain/usr/local/sbin/ipblock-rule &&
	! -e $INST/plain/etc/fail2ban ]] || { WHY="exit $RC: $OUT $ERR; $(find "$INST/plain")"; false; }'

say "actioncheck: ready, and not loaded (another pin directory)"
CHECK_CMD=$(action_cmd actioncheck)
check actioncheck_rendered eval '[[ $CHECK_CMD == "$RULE --pin-dir $PIN --check" ]] ||
	{ WHY="rendered as: $CHECK_CMD"; false; }'
run_cli sh -c "$CHECK_CMD"
check actioncheck_ready_exit_0 cli_ok
run_cli sh -c "${CHECK_CMD/"$PIN"/"$PIN-absent"}"
check actioncheck_not_loaded_exit_2 cli_rc 2

say "static allow of the admin, then fail2ban starts"
run_cli rule -a 198.18.0.3 -p allow
check admin_allow_added cli_ok
check fail2ban_starts f2b_start
check sources_start_empty eval '[[ -z $(claims $SRC_SHORT)$(claims $SRC_LONG) ]]'
check passes_before_ban ping_passes snd 198.18.0.2 198.18.0.1
check v6_passes_before_ban ping_passes snd 2001:db8::2 2001:db8::1

say "failures -> ban -> dropped -> unban after the ban time -> passes"
t0=$(now_ns)
fail_login "$LOG_SHORT" 198.18.0.1
ban_latency ban_within_1s "$SRC_SHORT" 198.18.0.1/32 "$t0"
check ban_has_the_bantime_as_timeout eval \
	'claims $SRC_SHORT | grep -qE "^198\.18\.0\.1/32 deny # $SRC_SHORT deny [1-${SHORT_BANTIME}]s left$"'
check banned_source_dropped ping_dropped snd 198.18.0.2 198.18.0.1
check other_source_passes ping_passes snd 198.18.0.2 198.18.0.4
check other_jail_untouched eval '[[ -z $(claims $SRC_LONG) ]]'
# fail2ban counts the ban time from the failures' time stamp (a whole second)
# and unbans then; ipblock's own deadline, counted from the ban, is later.
# Not before that second + bantime, and within 2 s after it.
if wait_since "$((FAIL_SEC * 1000000000))" $(((SHORT_BANTIME + 6) * 1000)) \
	no_claim "$SRC_SHORT" 198.18.0.1/32; then
	late=$((ELAPSED_MS - SHORT_BANTIME * 1000))
	if ((late >= 0 && late <= 2000)); then
		pass "unban_after_bantime (${ELAPSED_MS} ms after the failures' second, bantime ${SHORT_BANTIME} s)"
	else
		fail unban_after_bantime "unbanned ${ELAPSED_MS} ms after the failures' second, bantime ${SHORT_BANTIME} s"
	fi
else
	fail unban_after_bantime "$WHY"
fi
check fail2ban_logged_the_unban grep -q "\[ipbt-short\] Unban 198.18.0.1$" "$F2BLOG"
check unbanned_source_passes ping_passes snd 198.18.0.2 198.18.0.1

say "an admin's static allow is never removed by a jail"
t0=$(now_ns)
fail_login "$LOG_SHORT" 198.18.0.3
ban_latency allowed_address_ban_within_1s "$SRC_SHORT" 198.18.0.3/32 "$t0"
check listing_shows_allow_beats_ban has_line "$(rule_lines | sed 's/ [0-9hms]* left$//')" \
	"198.18.0.3/32 allow # static allow, $SRC_SHORT deny"
check allowed_address_passes_during_ban ping_passes snd 198.18.0.2 198.18.0.3
check jail_unbans_allowed_address wait_since "$(now_ns)" $(((SHORT_BANTIME + 4) * 1000)) \
	no_claim "$SRC_SHORT" 198.18.0.3/32
check static_allow_kept_after_unban has_claim static 198.18.0.3/32
check allowed_address_passes_after_unban ping_passes snd 198.18.0.2 198.18.0.3

say "IPv6, a persistent jail, a subnet"
t0=$(now_ns)
fail_login "$LOG_LONG" 2001:db8::1
ban_latency v6_ban_within_1s "$SRC_LONG" 2001:db8::1/128 "$t0"
check v6_banned_source_dropped ping_dropped snd 2001:db8::2 2001:db8::1
check v6_persistent_ban_has_no_timeout has_line "$(claims $SRC_LONG)" \
	"2001:db8::1/128 deny # $SRC_LONG deny"
t0=$(now_ns)
fail_login "$LOG_LONG" 198.18.0.4
ban_latency long_ban_within_1s "$SRC_LONG" 198.18.0.4/32 "$t0"
check long_banned_source_dropped ping_dropped snd 198.18.0.2 198.18.0.4
fail_login "$LOG_LONG" 198.18.0.3
check long_jail_bans_allowed_address wait_since "$(now_ns)" 5000 has_claim "$SRC_LONG" 198.18.0.3/32
check allowed_address_passes_during_long_ban ping_passes snd 198.18.0.2 198.18.0.3
run_cli f2b set ipbt-long banip 198.18.8.0/24
check banip_subnet cli_ok
check subnet_banned_as_one_prefix wait_since "$(now_ns)" 5000 has_claim "$SRC_LONG" 198.18.8.0/24
# An unban of what is no longer there (an admin deleted the claim by hand) is done.
run_cli rule -d 198.18.8.0/24 -o "$SRC_LONG"
check claim_deleted_by_hand cli_ok
run_cli f2b set ipbt-long unbanip 198.18.8.0/24
check unban_of_absent_claim cli_ok
check unban_of_absent_claim_no_error no_errors

say "stop releases the jail's bans, a restart restores them"
BEFORE=$(claims "$SRC_LONG")
check fail2ban_stops f2b_stop
check stop_flushes_the_source eval '[[ -z $(claims $SRC_LONG)$(claims $SRC_SHORT) ]]'
check stopped_passes ping_passes snd 198.18.0.2 198.18.0.4
check static_allow_kept_after_stop has_claim static 198.18.0.3/32
RESTART_LINE=$(($(wc -l <"$F2BLOG") + 1))
t0=$(now_ns)
check fail2ban_restarts f2b_start
if wait_since "$t0" 10000 eval '[[ $(claims $SRC_LONG) == "$BEFORE" ]]'; then
	pass "restart_restores_bans (${ELAPSED_MS} ms from the start command)"
else
	fail restart_restores_bans "expected:" "$BEFORE" "got:" "$(claims "$SRC_LONG")"
fi
check restore_logged grep -q "\[ipbt-long\] Restore Ban 198.18.0.4$" "$F2BLOG"
check restored_ban_dropped ping_dropped snd 198.18.0.2 198.18.0.4
check restored_v6_ban_dropped ping_dropped snd 2001:db8::2 2001:db8::1
check restore_without_errors no_errors "$RESTART_LINE"
check static_allow_kept_after_restore has_claim static 198.18.0.3/32
check allowed_address_passes_after_restore ping_passes snd 198.18.0.2 198.18.0.3

say "a reload keeps the bans: no flush, no unban"
RELOAD_LINE=$(($(wc -l <"$F2BLOG") + 1))
run_cli f2b reload
check reload cli_ok
sleep 1
check reload_keeps_bans same "$BEFORE" "$(claims "$SRC_LONG")" "the jail's bans"
check reload_without_errors no_errors "$RELOAD_LINE"
check reload_flushes_nothing eval '! tail -n +"$RELOAD_LINE" "$F2BLOG" | grep -E "Flush ticket|Unban"'

say "unban by hand and the final stop"
run_cli f2b set ipbt-long unbanip 2001:db8::1
check v6_unbanip cli_ok
check v6_unbanned wait_since "$(now_ns)" 5000 no_claim "$SRC_LONG" 2001:db8::1/128
check v6_unbanned_passes ping_passes snd 2001:db8::2 2001:db8::1
LAST_PID=$(f2b_pid)
check final_stop f2b_stop
check final_stop_flushes eval '[[ -z $(claims $SRC_LONG) ]]'
check server_gone eval "[[ -n $LAST_PID ]] && ! is_f2b $LAST_PID"
check static_allow_survives_everything has_line "$(rule_lines)" "198.18.0.3/32 allow"
check no_errors_in_fail2ban_log no_errors

say "ban latencies, ms: failures written -> enforced: ${LATENCIES[*]};" \
	"fail2ban's Ban line -> enforced: ${ACTION_LATENCIES[*]}"
st_finish
