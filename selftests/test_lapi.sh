#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The LAPI client (common/lapi*.[ch]) against a real CrowdSec LAPI (Debian's
# crowdsec, started offline by lib_crowdsec.sh): decisions added and deleted
# with cscli reach the client as rule changes (Ip v4/v6, a Range with host
# bits, captcha filtered out), startup=true lists what is live, a wrong key is
# one sentence, a stopped LAPI is an error and a restarted one is caught up
# with.  Prints the timings: LAPI start, poll latency, 10,000 decisions.
# No traffic and no BPF: the client has no map access.
# Helpers run through check() look unreachable to shellcheck.
# shellcheck disable=SC2317
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib_crowdsec.sh
source "$(dirname "$0")/lib_crowdsec.sh"

st_init curl
if ! cs_require; then
	skip lapi "$WHY"
	st_finish
fi
DRIVER=$BUILD/tests/lapi_poll
if [[ ! -x $DRIVER ]]; then
	fail lapi "$DRIVER is missing: run make test-build first"
	st_finish
fi

# --- the driver: one LAPI client kept across polls -----------------------------

# drv_start NAME KEYFILE [ARGS...]: start a driver as coprocess NAME.
declare -A DRV_IN DRV_OUT DRV_PID
drv_start() {
	local name=$1 key=$2 line
	shift 2
	local in out
	# A pair of FIFOs rather than coproc: several drivers at once.
	in=$ST_TMP/drv-$name.in
	out=$ST_TMP/drv-$name.out
	mkfifo "$in" "$out" || return 1
	"$DRIVER" --url "$CS_URL" --key "$key" "$@" <"$in" >"$out" 2>&1 &
	DRV_PID[$name]=$!
	on_exit "kill ${DRV_PID[$name]} 2>/dev/null"
	exec {fd_in}>"$in"
	exec {fd_out}<"$out"
	DRV_IN[$name]=$fd_in
	DRV_OUT[$name]=$fd_out
	if ! read -r -t 10 -u "$fd_out" line || [[ $line != ready ]]; then
		WHY="driver $name did not start: $line"
		return 1
	fi
}

# drv NAME CMD: send CMD, collect the answer up to "end" in $ANS (bounded).
ANS=
drv() {
	local name=$1 cmd=$2 line
	ANS=
	echo "$cmd" >&"${DRV_IN[$name]}" || return 1
	while read -r -t 60 -u "${DRV_OUT[$name]}" line; do
		[[ $line == end ]] && return 0
		ANS+="$line"$'\n'
	done
	WHY="driver $name gave no answer to '$cmd' within 60 s; got: $ANS"
	return 1
}

drv_stop() {
	local name=$1 fdi=${DRV_IN[$1]} fdo=${DRV_OUT[$1]}
	echo quit >&"$fdi"
	exec {fdi}>&-
	exec {fdo}<&-
	wait "${DRV_PID[$name]}" 2>/dev/null
}

# field NAME: a key=value of the answer's summary line.
field() {
	sed -n "s/^poll .*\b$1=\([^ ]*\).*/\1/p" <<<"$ANS" | head -n 1
}

# field_is NAME VALUE: the answer's summary has NAME=VALUE.
field_is() {
	[[ $(field "$1") == "$2" ]] && return 0
	WHY="expected $1=$2 in:
$(head -n 30 <<<"$ANS")"
	return 1
}

# changes_less_deleted N: the answer's changes, less its deletions, are N.
changes_less_deleted() {
	local c d
	c=$(field changes)
	d=$(field deleted)
	((c - d == $1)) && return 0
	WHY="expected $1 changes besides the $d deletions in:
$(head -n 30 <<<"$ANS")"
	return 1
}

# ans_has LINE_REGEX: the answer has a line matching (extended regex).
ans_has() {
	grep -qE -- "^$1\$" <<<"$ANS" && return 0
	WHY="expected a line /^$1\$/ in:
$ANS"
	return 1
}

ans_lacks() {
	! grep -qE -- "$1" <<<"$ANS" && return 0
	WHY="expected no line /$1/ in:
$ANS"
	return 1
}

# poll_ok NAME [count]: a poll that succeeded.
poll_ok() {
	drv "$1" "${2:-poll}" || return 1
	[[ $(field rc) == 0 ]] && return 0
	WHY="poll failed:
$ANS"
	return 1
}

# A timeout between 1 and the decision's duration, in seconds (cscli adds it a
# moment before the poll, so a few seconds have gone).
timeout_re() {
	local max=$1
	echo "($((max - 9))|$((max - 8))|$((max - 7))|$((max - 6))|$((max - 5))|$((max - 4))|$((max - 3))|$((max - 2))|$((max - 1))|$max)"
}

# --- the LAPI --------------------------------------------------------------------
say "a private CrowdSec LAPI on 127.0.0.1"
cs_start_lapi || setup_fail "$WHY"
say "timing: LAPI start (launch to /health 200): $CS_START_MS ms"
pass lapi_started

KEY=$(cs_add_bouncer ipblock-test) || setup_fail "cscli bouncers add failed"
printf '%s\n' "$KEY" >"$ST_TMP/key"
check bouncer_key_printed_without_newline test "${#KEY}" -ge 16
run_cli cs_add_bouncer ipblock-test
check bouncer_name_twice_fails test "$RC" -ne 0

drv_start main "$ST_TMP/key" || setup_fail "$WHY"

# --- startup, adds, filters --------------------------------------------------------
say "startup=true on an empty LAPI"
check startup_poll_on_empty_lapi poll_ok main
check startup_poll_is_full field_is full 1
check startup_poll_has_no_changes field_is changes 0

say "cscli decisions add: Ip v4, Range with host bits, Ip v6, a captcha"
cscli_t decisions add -i 198.18.7.7 -d 1m >/dev/null || setup_fail "cscli decisions add -i failed"
cscli_t decisions add --range 198.18.9.77/24 -d 2m >/dev/null ||
	setup_fail "cscli decisions add --range failed"
cscli_t decisions add -i 2001:db8::7 -d 3m >/dev/null || setup_fail "cscli decisions add -i v6 failed"
cscli_t decisions add -i 198.18.7.8 -d 1m -t captcha >/dev/null ||
	setup_fail "cscli decisions add -t captcha failed"
check poll_after_adds poll_ok main
check poll_after_adds_is_incremental field_is full 0
check ip_v4_added ans_has "add 198.18.7.7/32 crowdsec $(timeout_re 60) id=[0-9]+"
check range_host_bits_cleared ans_has "add 198.18.9.0/24 crowdsec $(timeout_re 120) id=[0-9]+"
check ip_v6_added ans_has "add 2001:db8::7/128 crowdsec $(timeout_re 180) id=[0-9]+"
check captcha_filtered_out ans_lacks "198.18.7.8"
check captcha_counted_as_ignored field_is ignored 1
check nothing_more field_is changes 3

say "poll latency (10 empty polls)"
LAT=()
for i in $(seq 10); do
	poll_ok main count || break
	LAT+=("$(field ms)")
done
if ((${#LAT[@]} == 10)); then
	say "timing: empty poll: median $(printf '%s\n' "${LAT[@]}" | sort -n | sed -n 5p) ms (min $(printf '%s\n' "${LAT[@]}" | sort -n | head -n 1), max $(printf '%s\n' "${LAT[@]}" | sort -n | tail -n 1))"
	pass empty_polls
else
	fail empty_polls "$WHY"
fi

say "a decision reaches the client: cscli decisions add, then one poll"
T0=$(cs_now_ms)
cscli_t decisions add -i 198.18.7.10 -d 5m >/dev/null
poll_ok main
T1=$(cs_now_ms)
check add_seen_in_next_poll ans_has "add 198.18.7.10/32 crowdsec $(timeout_re 300) id=[0-9]+"
say "timing: cscli decisions add + one poll: $((T1 - T0)) ms (the poll alone $(field ms) ms)"

# --- deletes ---------------------------------------------------------------------------
say "cscli decisions delete"
cscli_t decisions delete -i 198.18.7.7 >/dev/null || setup_fail "cscli decisions delete -i failed"
cscli_t decisions delete --range 198.18.9.77/24 >/dev/null ||
	setup_fail "cscli decisions delete --range failed"
check poll_after_deletes poll_ok main
check ip_deleted ans_has "del 198.18.7.7/32 crowdsec id=[0-9]+"
check range_deleted ans_has "del 198.18.9.0/24 crowdsec id=[0-9]+"
check v6_untouched ans_lacks "2001:db8::7"
# The LAPI may repeat deletions in later polls; they must stay harmless.
check repeated_poll_ok poll_ok main
check repeated_poll_adds_nothing ans_lacks "^add "

say "startup=true from a new client lists what is live"
drv_start second "$ST_TMP/key" || setup_fail "$WHY"
check second_client_startup poll_ok second
check second_client_full field_is full 1
check second_client_lists_v6 ans_has "add 2001:db8::7/128 crowdsec $(timeout_re 180) id=[0-9]+"
check second_client_lists_late_add ans_has "add 198.18.7.10/32 crowdsec $(timeout_re 300) id=[0-9]+"
check second_client_no_deleted_adds ans_lacks "^add 198.18.(7.7|9.0)/"
drv_stop second

say "expiry: a 2 s decision leaves through the stream"
cscli_t decisions add -i 198.18.7.11 -d 2s >/dev/null
poll_ok main
check short_decision_added ans_has "add 198.18.7.11/32 crowdsec (1|2) id=[0-9]+"
sleep 3
check poll_after_expiry poll_ok main
check expired_decision_deleted ans_has "del 198.18.7.11/32 crowdsec id=[0-9]+"

# --- errors ------------------------------------------------------------------------------
say "a wrong key"
printf 'not-the-key\n' >"$ST_TMP/wrongkey"
drv_start wrong "$ST_TMP/wrongkey" || setup_fail "$WHY"
drv wrong poll
check wrong_key_is_eacces field_is rc -13
check wrong_key_sentence ans_has "error: The CrowdSec LAPI at $CS_URL refused the API key in $ST_TMP/wrongkey \(403 access forbidden\).*"
drv_stop wrong
: >"$ST_TMP/emptykey"
run_cli "$DRIVER" --url "$CS_URL" --key "$ST_TMP/emptykey"
check empty_key_file_refused has_line "$OUT" "error: The CrowdSec API key file $ST_TMP/emptykey is empty: put the key that 'cscli bouncers add NAME -o raw' printed in it."

say "the LAPI stopped, then restarted"
cs_stop_lapi
say "timing: LAPI stop (SIGTERM to exit): $CS_STOP_MS ms"
drv main poll
check stopped_lapi_is_econnrefused field_is rc -111
check stopped_lapi_sentence ans_has "error: Cannot connect to the CrowdSec LAPI at $CS_URL: .*"
check stopped_lapi_no_changes field_is changes 0
cs_start_lapi || setup_fail "restart: $WHY"
say "timing: LAPI restart (launch to /health 200): $CS_START_MS ms"
cscli_t decisions add -i 198.18.7.12 -d 4m >/dev/null
check poll_after_restart poll_ok main
check restart_poll_is_full field_is full 1
check restart_catches_up_new ans_has "add 198.18.7.12/32 crowdsec $(timeout_re 240) id=[0-9]+"
check restart_keeps_live ans_has "add 2001:db8::7/128 crowdsec [0-9]+ id=[0-9]+"
check poll_after_catch_up poll_ok main
check back_to_incremental field_is full 0

# --- 10,000 decisions ----------------------------------------------------------------------
say "10,000 decisions: cscli decisions import, then polls"
{
	echo "duration,scope,value"
	for ((i = 0; i < 5000; i++)); do
		echo "1h,ip,198.18.$((20 + i / 250)).$((1 + i % 250))"
	done
	for ((i = 0; i < 5000; i++)); do
		printf '1h,ip,2001:db8:1::%x\n' $((i + 1))
	done
} >"$ST_TMP/import.csv"
T0=$(cs_now_ms)
if cscli_t decisions import -i "$ST_TMP/import.csv" >/dev/null 2>"$ST_TMP/import.err"; then
	T1=$(cs_now_ms)
	say "timing: cscli decisions import of 10,000: $((T1 - T0)) ms"
	check poll_10k poll_ok main count
	check poll_10k_new field_is new 10000
	# Plus the old deletions the LAPI may repeat (each passed on as a del).
	check poll_10k_one_add_each changes_less_deleted 10000
	check poll_10k_nothing_bad field_is bad 0
	say "timing: incremental poll of 10,000 new decisions: $(field ms) ms"
	T2=$(cs_now_ms)
	say "timing: import + poll, end to end: $((T2 - T0)) ms"
	drv_start big "$ST_TMP/key" || setup_fail "$WHY"
	check startup_10k poll_ok big count
	check startup_10k_changes test "$(field changes)" -ge 10000
	say "timing: startup=true poll listing $(field new) decisions: $(field ms) ms (client peak RSS $(field rss_kb) KiB)"
	drv_stop big
else
	fail import_10k "$(cat "$ST_TMP/import.err")"
fi

drv_stop main
st_finish
