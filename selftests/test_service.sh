#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The service (ipblock-loader --service) over real traffic, and a reboot
# played on it: rules of three sources (a list from the configuration, the
# static source, a jail with timeouts) judge traffic; the service is killed
# with SIGKILL, the pins removed and XDP detached (what a reboot leaves);
# started again, it gives the same verdicts, timed rules keep their
# remaining time and expired ones stay gone.  Then: sd_notify messages on a
# test NOTIFY_SOCKET, SIGHUP reloads, SIGTERM leaves the program attached,
# a corrupt state file falls back to the previous copy, and the faults
# (unknown interface, read-only and full state directory, no usable state)
# each say one sentence, exit with the documented code and leave the
# kernel's rules as they were.
#
#   snd (va)  198.18.0.1 .3-.9/24, 2001:db8::1 ::3/64
#   rcv (vb)  198.18.0.2/24,        2001:db8::2/64        <- ipblock service
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init mount

ns_add snd rcv
veth snd va rcv vb
veth snd vd rcv vc
addr snd va 198.18.0.1/24 198.18.0.3/24 198.18.0.4/24 198.18.0.5/24 198.18.0.6/24 \
	198.18.0.7/24 198.18.0.8/24 2001:db8::1/64 2001:db8::3/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64

STATE=$ST_TMP/state
CONF=$ST_TMP/ipblock.conf
NOTIFY=$ST_TMP/notify.log
SVC_PID=
: >"$NOTIFY"

# conf FILE [EXTRA...]: a configuration on the private pins, attaching to vb.
conf() {
	local f=$1
	shift
	{
		echo "[ipblock]"
		echo "pin-dir = $PIN"
		echo "state-dir = ${STATE_DIR:-$STATE}"
		[[ -n ${DETACH:-} ]] && echo "detach-on-stop = yes"
		echo "[interface vb]"
		printf '%s\n' "$@"
	} >"$f"
}
echo "198.18.0.4" >"$ST_TMP/blk.netset"
echo "198.18.0.7" >"$ST_TMP/more.netset"
conf "$CONF" "[list blk]" "file = $ST_TMP/blk.netset" "action = deny"

# The notify socket's listener, for the whole test (bounded: 300 s).
"$PYTHON" "$ST_DIR/notify_listen.py" "$ST_TMP/notify.sock" "$NOTIFY" 300 &
ST_PIDS+=($!)
for ((i = 0; i < 50; i++)); do
	[[ -S $ST_TMP/notify.sock ]] && break
	sleep 0.1
done

# svc_start [CONF]: the service in rcv's network namespace (pins visible),
# its pid in SVC_PID; output appended to svc.out and svc.err.
svc_start() {
	NOTIFY_SOCKET=$ST_TMP/notify.sock nsenter --net="/run/netns/$(ns rcv)" \
		"$LOADER" --service --config "${1:-$CONF}" >>"$ST_TMP/svc.out" \
		2>>"$ST_TMP/svc.err" &
	SVC_PID=$!
	ST_PIDS+=("$SVC_PID")
}

# ready_count: how many READY=1 the service has sent so far.
ready_count() {
	grep -c '^READY=1$' "$NOTIFY"
}

# svc_up BEFORE: wait (at most 15 s) for a READY=1 past BEFORE ones.
svc_up() {
	local i
	for ((i = 0; i < 150; i++)); do
		(($(ready_count) > $1)) && return 0
		kill -0 "$SVC_PID" 2>/dev/null || break
		sleep 0.1
	done
	WHY="no READY=1 from the service; stderr: $(cat "$ST_TMP/svc.err")"
	return 1
}

# svc_exit: wait (at most 15 s) for the service to end; its status in RC.
# The shell's "Killed" notice of a kill -9 goes to /dev/null with the rest.
svc_exit() {
	local i
	for ((i = 0; i < 150; i++)); do
		kill -0 "$SVC_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$SVC_PID"
	RC=$?
} 2>/dev/null

# svc_kill9: a power cut, as far as the service can tell.
svc_kill9() {
	kill -9 "$SVC_PID"
	svc_exit
} 2>/dev/null

# saved_has TEXT: within 3 s the state file holds TEXT.
saved_has() {
	local i
	for ((i = 0; i < 30; i++)); do
		grep -qF -- "$1" "$STATE/rules.state" 2>/dev/null && return 0
		sleep 0.1
	done
	WHY="$STATE/rules.state does not hold '$1' after 3 s"
	return 1
}

# out_has TEXT: the service said TEXT on standard output.
out_has() {
	grep -qF -- "$1" "$ST_TMP/svc.out" && return 0
	WHY="the service did not say '$1'; it said:
$(cat "$ST_TMP/svc.out")"
	return 1
}

# reboot: what a reboot leaves -- no pins, no XDP program on vb.
reboot() {
	rm -rf "$PIN"
	ip -n "$(ns rcv)" link set dev vb xdpgeneric off 2>/dev/null
	ip -n "$(ns rcv)" link set dev vb xdpdrv off 2>/dev/null
	ip -n "$(ns rcv)" link set dev vb xdp off 2>/dev/null
	! ip -n "$(ns rcv)" link show vb | grep -q xdp
}

# verdicts: one word per source address, as the traffic shows it.
verdicts() {
	local a out=
	for a in 198.18.0.1 198.18.0.3 198.18.0.4 198.18.0.5 198.18.0.6 198.18.0.7 198.18.0.8; do
		out+="$a:$(ping_recv snd 198.18.0.2 "$a") "
	done
	out+="::3:$(ping_recv snd 2001:db8::2 2001:db8::3) ::1:$(ping_recv snd 2001:db8::2 2001:db8::1)"
	echo "$out"
}

# expect_verdicts WANT: the traffic gives WANT (verdicts' words; 3 passes, 0 dropped).
expect_verdicts() {
	local got
	got=$(verdicts)
	[[ $got == "$1" ]] && return 0
	WHY="verdicts: want $1
            got  $got"
	return 1
}

# kernel_rules: what ipblock-rule -S prints, without its header (taking the time).
kernel_rules() {
	rule -S 2>&1 | grep -v '^#'
}

say "the service starts: maps made, the list loaded, vb attached, READY=1"
svc_start
check service_ready svc_up 0
check service_notified_status grep -q '^STATUS=.*rules' "$NOTIFY"
check service_attached eval 'ip -n "$(ns rcv)" link show vb | grep -q xdp'

say "rules of three sources judge traffic"
run_cli rule -a 198.18.0.3 -p deny
check static_deny cli_ok
run_cli rule -a 2001:db8::3 -p deny
check static_deny_v6 cli_ok
run_cli rule -a 198.18.0.6 -p deny -o fail2ban-sshd -t 1h
check jail_ban_1h cli_ok
BEFORE="198.18.0.1:3 198.18.0.3:0 198.18.0.4:0 198.18.0.5:3 198.18.0.6:0 198.18.0.7:3 198.18.0.8:3 ::3:0 ::1:3"
check verdicts_before expect_verdicts "$BEFORE"
check cli_change_saved saved_has "198.18.0.6/32 deny source=fail2ban-sshd expires="

# save_lag: milliseconds from an ipblock-rule change (its return) to the state file holding it.
save_lag() {
	local t0 i host=$1
	rule -a "198.18.200.$host" -p deny -o lag >/dev/null 2>&1
	t0=$(date +%s%N)
	for ((i = 0; i < 300; i++)); do
		grep -q "^198.18.200.$host/32 deny source=lag" "$STATE/rules.state" && break
		sleep 0.01
	done
	echo $((($(date +%s%N) - t0) / 1000000))
}
# Changes at random moments of the save interval; a save lands within 1 s of each.
LAGS=()
for ((k = 1; k <= 6; k++)); do
	sleep "0.$((RANDOM % 10))"
	LAGS+=("$(save_lag "$k")")
done
MAXLAG=$(printf '%s\n' "${LAGS[@]}" | sort -n | tail -n 1)
say "change to state file: ${LAGS[*]} ms"
check cli_change_saved_within_1s eval '((MAXLAG <= 1000)) || { WHY="lags ${LAGS[*]} ms"; false; }'
run_cli rule -F -o lag
EXPIRES6=$(grep -o '198.18.0.6/32 deny source=fail2ban-sshd expires=[^ ]*' "$STATE/rules.state")
# A short ban, judged and saved just before the "power cut", due while "down".
run_cli rule -a 198.18.0.5 -p deny -o fail2ban-sshd -t 4s
check jail_ban_4s cli_ok
check jail_ban_4s_drops ping_dropped snd 198.18.0.2 198.18.0.5
check jail_ban_4s_saved saved_has "198.18.0.5/32 deny source=fail2ban-sshd expires="

say "kill -9, pins removed, XDP detached: a reboot"
svc_kill9
check reboot_leaves_nothing reboot
# The 4 s ban passes its deadline while the machine is "down".
for ((i = 0; i < 80; i++)); do
	(($(date +%s) > $(date -d "$(sed -n 's/.*198.18.0.5.*expires=\([^ ]*\).*/\1/p' \
		"$STATE/rules.state")" +%s))) && break
	sleep 0.1
done

say "started again: the same verdicts, the 1 h ban keeps its time, the 4 s one stays gone"
R0=$(ready_count)
svc_start
check restart_ready svc_up "$R0"
check restore_said out_has 'restored 4 claims from the saved state (1 had expired and stay gone)'
AFTER="198.18.0.1:3 198.18.0.3:0 198.18.0.4:0 198.18.0.5:3 198.18.0.6:0 198.18.0.7:3 198.18.0.8:3 ::3:0 ::1:3"
check verdicts_after_reboot expect_verdicts "$AFTER"
check timed_ban_keeps_deadline saved_has "$EXPIRES6"
check timed_ban_shows_time_left eval 'rule -l | grep -qE "^198.18.0.6/32 deny # fail2ban-sshd deny 59m[0-9]+s left"'
check expired_ban_gone eval '! rule -S | grep -q 198.18.0.5'

say "SIGHUP: the configuration again; lists and interfaces by difference"
conf "$CONF" "[list more]" "file = $ST_TMP/more.netset" "action = deny"
R0=$(ready_count)
kill -HUP "$SVC_PID"
check reload_ready svc_up "$R0"
check reload_notified grep -q '^RELOADING=1$' "$NOTIFY"
check reload_verdicts expect_verdicts \
	"198.18.0.1:3 198.18.0.3:0 198.18.0.4:3 198.18.0.5:3 198.18.0.6:0 198.18.0.7:0 198.18.0.8:3 ::3:0 ::1:3"
# A reload naming an interface that is not there changes nothing.
conf "$ST_TMP/bad.conf" "[list more]" "file = $ST_TMP/more.netset" "action = deny" \
	"[interface nosuch0]"
cp "$ST_TMP/bad.conf" "$CONF"
R0=$(ready_count)
: >"$ST_TMP/svc.err"
kill -HUP "$SVC_PID"
check bad_reload_ready svc_up "$R0"
check bad_reload_one_sentence eval '[[ $(grep -c . "$ST_TMP/svc.err") == 1 ]] &&
	grep -q "ipblock.conf:[0-9]*: there is no interface named .nosuch0.; the reload was not applied" "$ST_TMP/svc.err"'
conf "$CONF" "[list more]" "file = $ST_TMP/more.netset" "action = deny"

say "SIGHUP: an interface added is attached, one taken out detached"
conf "$CONF" "[list more]" "file = $ST_TMP/more.netset" "action = deny" "[interface vc]" "mode = skb"
R0=$(ready_count)
kill -HUP "$SVC_PID"
check reload_vc_ready svc_up "$R0"
check reload_attaches_vc eval 'ip -n "$(ns rcv)" link show vc | grep -q xdpgeneric'
conf "$CONF" "[list more]" "file = $ST_TMP/more.netset" "action = deny"
R0=$(ready_count)
kill -HUP "$SVC_PID"
check reload_novc_ready svc_up "$R0"
check reload_detaches_vc eval '! ip -n "$(ns rcv)" link show vc | grep -q xdp'
check reload_keeps_vb eval 'ip -n "$(ns rcv)" link show vb | grep -q xdp'

say "the previous copy: a corrupt state file is refused, the copy before it restored"
run_cli rule -a 198.18.0.8 -p deny
check add_before_corrupt saved_has "198.18.0.8/32 deny"
sleep 1.2 # the next save is a save-interval later
run_cli rule -a 198.18.0.9 -p deny
check add_after saved_has "198.18.0.9/32 deny"
check prev_copy_kept grep -q "198.18.0.8/32 deny" "$STATE/rules.state.prev"
check prev_copy_older eval '! grep -q "198.18.0.9/32" "$STATE/rules.state.prev"'
svc_kill9
# One changed byte, the line still well-formed: only the checksum tells.
sed -i 's|^198.18.0.9/32 deny|198.18.0.3/32 deny|' "$STATE/rules.state"
reboot
: >"$ST_TMP/svc.err"
R0=$(ready_count)
svc_start
check corrupt_start_ready svc_up "$R0"
check corrupt_named eval 'grep -qE "rules.state:[0-9]+: the checksum .* corrupt; refused." "$ST_TMP/svc.err"'
check corrupt_kept_aside test -s "$STATE/rules.state.refused"
check corrupt_prev_used grep -q "restoring the previous copy" "$ST_TMP/svc.err"
check corrupt_prev_verdicts eval 'rule -S | grep -q "^198.18.0.8/32 deny" && ! rule -S | grep -q 198.18.0.9'

say "SIGTERM: state saved, exit 0, the program stays attached and the rules pinned"
run_cli rule -a 198.18.0.9 -p deny
kill -TERM "$SVC_PID"
svc_exit
check sigterm_exit_0 cli_rc 0
check sigterm_notified grep -q '^STOPPING=1' "$NOTIFY"
check sigterm_saved grep -q "198.18.0.9/32 deny" "$STATE/rules.state"
check still_attached eval 'ip -n "$(ns rcv)" link show vb | grep -q xdp'
check still_dropping ping_dropped snd 198.18.0.2 198.18.0.3
KERNEL=$(kernel_rules)

# fault NAME CONF CODE REGEX: the service refuses to start with one
# sentence matching REGEX and exit CODE, and the kernel's rules stay.
fault() {
	local name=$1 cf=$2 code=$3 re=$4
	: >"$ST_TMP/svc.err"
	svc_start "$cf"
	svc_exit
	ERR=$(cat "$ST_TMP/svc.err")
	check "${name}_exit_$code" cli_rc "$code"
	check "${name}_one_sentence" cli_error "$re"
	check "${name}_rules_untouched" same "$KERNEL" "$(kernel_rules)" "the kernel's rules"
}

say "faults at start: one sentence, the documented exit code, the kernel's rules untouched"
conf "$ST_TMP/nodev.conf" "[interface nosuch0]"
fault unknown_interface "$ST_TMP/nodev.conf" 1 "nodev.conf:[0-9]+: there is no interface named 'nosuch0'; nothing was changed"

mkdir -p "$ST_TMP/ro"
on_exit "umount '$ST_TMP/ro'"
mount -t tmpfs -o ro,size=1m ipbt-ro "$ST_TMP/ro" || setup_fail "cannot mount a tmpfs"
STATE_DIR=$ST_TMP/ro conf "$ST_TMP/ro.conf"
fault read_only_state_dir "$ST_TMP/ro.conf" 5 "cannot write in the state directory .*/ro: Read-only file system"

mkdir -p "$ST_TMP/full"
on_exit "umount '$ST_TMP/full'"
mount -t tmpfs -o size=64k ipbt-full "$ST_TMP/full" || setup_fail "cannot mount a tmpfs"
dd if=/dev/zero of="$ST_TMP/full/fill" bs=4k count=64 2>/dev/null
STATE_DIR=$ST_TMP/full conf "$ST_TMP/full.conf"
fault full_state_dir "$ST_TMP/full.conf" 5 "cannot write in the state directory .*/full: No space left on device"

mkdir -p "$ST_TMP/bad"
printf '# ipblock state 1\n198.18.0.3/32 deny\n' >"$ST_TMP/bad/rules.state"
STATE_DIR=$ST_TMP/bad conf "$ST_TMP/badstate.conf"
: >"$ST_TMP/svc.err"
svc_start "$ST_TMP/badstate.conf"
svc_exit
check no_usable_state_exit_5 cli_rc 5
ERR=$(cat "$ST_TMP/svc.err")
check no_usable_state_one_line cli_error "bad/rules.state:2: the file ends without its end line .*truncated; refused. There is no previous copy"
check no_usable_state_rules_untouched same "$KERNEL" "$(kernel_rules)" "the kernel's rules"

say "a full disk while running: one sentence, the service runs on and saves once there is room"
rm -f "$ST_TMP/full/fill"
: >"$ST_TMP/svc.err"
R0=$(ready_count)
svc_start "$ST_TMP/full.conf"
check full_runtime_ready svc_up "$R0"
dd if=/dev/zero of="$ST_TMP/full/fill" bs=4k count=64 2>/dev/null
run_cli rule -a 198.18.0.8 -p allow
check full_runtime_rule_added cli_ok
for ((i = 0; i < 30; i++)); do
	grep -q . "$ST_TMP/svc.err" && break
	sleep 0.1
done
sleep 1.5 # more save attempts: still one sentence
check full_runtime_one_sentence eval '[[ $(grep -c . "$ST_TMP/svc.err") == 1 ]] &&
	grep -q "cannot write the rule state .*: No space left on device; the copy saved before stays" "$ST_TMP/svc.err"'
check full_runtime_service_alive kill -0 "$SVC_PID"
check full_runtime_kernel_changed eval 'rule -S | grep -q "^198.18.0.8/32 allow"'
check full_runtime_old_copy_intact eval '! grep -q "198.18.0.8/32 allow" "$ST_TMP/full/rules.state" &&
	tail -n 1 "$ST_TMP/full/rules.state" | grep -q "^# end: "'
rm -f "$ST_TMP/full/fill"
STATE=$ST_TMP/full check full_runtime_saved_after saved_has "198.18.0.8/32 allow"
kill -TERM "$SVC_PID"
svc_exit
check full_runtime_exit_0 cli_rc 0

say "a crash: the symbolised stack trace on standard error (the journal), the rules pinned"
KERNEL=$(kernel_rules)
: >"$ST_TMP/svc.err"
R0=$(ready_count)
svc_start "$ST_TMP/full.conf"
check crash_ready svc_up "$R0"
kill -SEGV "$SVC_PID"
svc_exit
check crash_dies_by_its_signal cli_rc $((128 + 11))
check crash_trace_symbolised eval 'grep -q "^\*\*\* SIGSEGV" "$ST_TMP/svc.err" &&
	grep -qE "service_run\+0x[0-9a-f]+ at loader/service.c:[0-9]+" "$ST_TMP/svc.err" ||
	{ WHY=$(cat "$ST_TMP/svc.err"); false; }'
check crash_rules_stay same "$KERNEL" "$(kernel_rules)" "the kernel's rules"

say "[list NAME] refresh: the file read again while the service runs"
echo "198.18.0.7" >"$ST_TMP/refresh.netset"
STATE_DIR=$ST_TMP/full conf "$ST_TMP/refresh.conf" "[list fresh]" "file = $ST_TMP/refresh.netset" \
	"action = deny" "refresh = 1s"
R0=$(ready_count)
svc_start "$ST_TMP/refresh.conf"
check refresh_ready svc_up "$R0"
check refresh_loaded eval 'rule -S -o fresh | grep -qx "198.18.0.7/32 deny"'
echo "198.18.0.4" >"$ST_TMP/refresh.netset"
for ((i = 0; i < 40; i++)); do
	[[ $(rule -S -o fresh | grep -v '^#') == "198.18.0.4/32 deny" ]] && break
	sleep 0.1
done
check refresh_reread eval '[[ $(rule -S -o fresh | grep -v "^#") == "198.18.0.4/32 deny" ]] ||
	{ WHY="source fresh holds: $(rule -S -o fresh)"; false; }'
kill -TERM "$SVC_PID"
svc_exit
check refresh_exit_0 cli_rc 0
run_cli rule -F -o fresh
KERNEL=$(kernel_rules)

say "detach-on-stop = yes: SIGTERM detaches, the rules stay pinned"
DETACH=1 STATE_DIR=$ST_TMP/full conf "$ST_TMP/detach.conf"
R0=$(ready_count)
svc_start "$ST_TMP/detach.conf"
check detach_conf_ready svc_up "$R0"
kill -TERM "$SVC_PID"
svc_exit
check detach_conf_exit_0 cli_rc 0
check detach_conf_detached eval '! ip -n "$(ns rcv)" link show vb | grep -q xdp'
check detach_conf_rules_pinned same "$KERNEL" "$(kernel_rules)" "the kernel's rules"

st_finish
