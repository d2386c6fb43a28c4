#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Rule sources over real traffic: an admin's static allow survives a jail's
# ban and unban; two sources banning one address keep it dropped until the
# second releases it; a replace or flush of one source leaves the others;
# timed bans expire (through --expire, or any writer) and a refreshed one
# stays; deleting what is not there exits 0; a batch of changes (-b) applies
# in one process; "not loaded" has its own exit code.
#
#   snd (va)  198.18.0.1 .3 .4/24, 2001:db8::1 ::3/64
#   rcv (vb)  198.18.0.2/24,        2001:db8::2/64        <- ipblock
# Helpers run through check() look unreachable to shellcheck; st_init's
# arguments are tool names, not the script's.
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init

ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24 198.18.0.3/24 198.18.0.4/24 2001:db8::1/64 2001:db8::3/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64

# "Not loaded" before anything is: the documented code 2, one sentence.
run_cli rule -a 198.18.0.3 -p deny -o fail2ban-sshd
if cli_error 'not loaded' && cli_rc 2; then
	pass not_loaded_exit_2
else
	fail not_loaded_exit_2 "$WHY"
fi
run_cli rule --check
check not_loaded_check_exit_2 cli_rc 2

run_cli loader rcv -d vb
((RC)) && setup_fail "ipblock-loader -d vb failed ($RC): $ERR"
run_cli rule --check
check ready_check_exit_0 cli_ok

# rule_ok ARGS...: an ipblock-rule call the test relies on.
rule_ok() {
	run_cli rule "$@"
	cli_ok && return 0
	WHY="ipblock-rule $*: $WHY"
	return 1
}


say "an admin's allow survives a jail's ban and unban"
check admin_allow rule_ok -a 198.18.0.3 -p allow
check admin_allow_v6 rule_ok -a 2001:db8::3 -p allow
check jail_ban rule_ok -a 198.18.0.3 -p deny -o fail2ban-sshd
check jail_ban_v6 rule_ok -a 2001:db8::3 -p deny -o fail2ban-sshd
check jail_ban_notes_the_allow_wins eval '[[ $ERR == *"allow from any source beats a deny"* ]]'
check allowed_address_passes_during_ban ping_passes snd 198.18.0.2 198.18.0.3
check allowed_v6_passes_during_ban ping_passes snd 2001:db8::2 2001:db8::3
check listing_names_both_sources has_line "$(rule_lines)" \
	"198.18.0.3/32 allow # static allow, fail2ban-sshd deny"
# The same as JSON Lines: one object a rule, the summary last.
JSON=$(rule -l --json)
check json_lists_both_claims "$PYTHON" -c '
import json, sys
lines = [json.loads(l) for l in sys.argv[1].splitlines()]
r = [x for x in lines if x["type"] == "rule" and x["prefix"] == "198.18.0.3/32"][0]
assert r["action"] == "allow", r
assert [(c["source"], c["action"]) for c in r["claims"]] == \
	[("static", "allow"), ("fail2ban-sshd", "deny")], r
s = lines[-1]
assert s["type"] == "summary" and (s["rules"], s["ipv4"], s["ipv6"]) == (2, 1, 1), s
assert {x["name"]: x["claims"] for x in s["sources"]} == {"static": 2, "fail2ban-sshd": 2}, s
assert s["counters"]["passed_allow"]["packets"] >= 3, s
' "$JSON"
run_cli loader rcv -s --json
check status_json_exit_0 cli_ok
check status_json_names_vb "$PYTHON" -c '
import json, sys
s = json.loads(sys.argv[1])
assert s["loaded"] and s["maps_pinned"], s
assert [i["name"] for i in s["interfaces"]] == ["vb"], s
assert s["rules"]["ipv4"] == 1 and s["rules"]["ipv6"] == 1, s
' "$OUT"
check jail_unban rule_ok -d 198.18.0.3 -o fail2ban-sshd
check jail_unban_v6 rule_ok -d 2001:db8::3 -o fail2ban-sshd
check allow_kept_after_unban has_line "$(rule_lines)" "198.18.0.3/32 allow"
check allow_v6_kept_after_unban has_line "$(rule_lines)" "2001:db8::3/128 allow"
check allowed_address_passes_after_unban ping_passes snd 198.18.0.2 198.18.0.3
# A wide ban of the jail: the admin's /32 allow still passes, the rest drops.
check jail_ban_prefix rule_ok -a 198.18.0.0/24 -p deny -o fail2ban-sshd
check longest_prefix_allow_passes ping_passes snd 198.18.0.2 198.18.0.3
check longest_prefix_deny_drops ping_dropped snd 198.18.0.2 198.18.0.4
check jail_unban_prefix rule_ok -d 198.18.0.0/24 -o fail2ban-sshd
check prefix_unbanned_passes ping_passes snd 198.18.0.2 198.18.0.4

say "two sources ban one address: it stays dropped until the last unban"
check sshd_ban rule_ok -a 198.18.0.4 -p deny -o fail2ban-sshd
check crowdsec_ban rule_ok -a 198.18.0.4 -p deny -o crowdsec
check two_bans_drop ping_dropped snd 198.18.0.2 198.18.0.4
check first_unban rule_ok -d 198.18.0.4 -o fail2ban-sshd
check first_unban_says_it_stays eval '[[ $OUT == *"stays deny"* ]]'
check still_dropped_after_first_unban ping_dropped snd 198.18.0.2 198.18.0.4
check second_unban rule_ok -d 198.18.0.4 -o crowdsec
check passes_after_second_unban ping_passes snd 198.18.0.2 198.18.0.4

say "deleting what is not there is done"
run_cli rule -d 198.18.0.4 -o crowdsec
if cli_ok && [[ -z $OUT ]] && [[ $ERR == *"no rule for 198.18.0.4/32 for crowdsec"* ]]; then
	pass unban_again_exit_0
else
	fail unban_again_exit_0 "${WHY:-stdout: $OUT; stderr: $ERR}"
fi
run_cli rule -d 198.18.0.4 -o never-seen
check unban_from_unknown_source_exit_0 cli_ok
run_cli rule -d 198.18.0.4 -o crowdsec --strict
if cli_error 'no rule for' && cli_rc 1; then
	pass strict_unban_exit_1
else
	fail strict_unban_exit_1 "$WHY"
fi
run_cli rule -a 198.18.0.4 -p deny -o 'bad/name'
if cli_error "bad source name" && cli_rc 1; then
	pass bad_source_name_exit_1
else
	fail bad_source_name_exit_1 "$WHY"
fi

say "timeouts: a ban expires, a refreshed one stays"
t0=$(date +%s.%N)
check timed_ban rule_ok -a 198.18.0.4 -p deny -o crowdsec -t 3
check timed_ban_listed_with_time_left eval \
	'rule -l | grep -qE "^198\.18\.0\.4/32 deny # crowdsec deny [1-4]s left(;.*)?$"'
check timed_ban_drops ping_dropped snd 198.18.0.2 198.18.0.4
check refreshed_ban rule_ok -a 198.18.0.1 -p deny -o crowdsec -t 2
check refreshed_ban_again rule_ok -a 198.18.0.1 -p deny -o crowdsec -t 1h
check refresh_says_so eval '[[ $OUT == "refreshed 198.18.0.1/32 deny for crowdsec, expires in 1h" ]]'
# A cron job (or the coming service) runs --expire; here every 0.2 s, for at most 5 s.
elapsed=
while :; do
	run_cli rule --expire
	now=$(date +%s.%N)
	if ((RC)); then
		fail expire_runs "$WHY"
		break
	fi
	if [[ $OUT == "expired 1 claim" ]]; then
		elapsed=$("$PYTHON" -c "print('%.1f' % ($now - $t0))")
		break
	fi
	"$PYTHON" -c "import sys; sys.exit($now - $t0 > 5)" || break
	sleep 0.2
done
# Never before its 3 s, and within a second (plus a polling step) after.
if [[ -n $elapsed ]] && "$PYTHON" -c "import sys; sys.exit(not 3.0 <= $elapsed <= 4.3)"; then
	pass timed_ban_expired_after_3s
else
	fail timed_ban_expired_after_3s "expired after ${elapsed:-more than 5} s; last: $OUT"
fi
check expired_ban_passes ping_passes snd 198.18.0.2 198.18.0.4
check refreshed_ban_still_drops ping_dropped snd 198.18.0.2 198.18.0.1
check refreshed_ban_listed has_line "$(rule -l -o crowdsec | grep -v '^#' | strip_hits | sed 's/ [0-9hms]* left$//')" \
	"198.18.0.1/32 deny # crowdsec deny"
# A save of the source keeps its deadlines; a restore puts them back.
rule -S -o crowdsec >"$ST_TMP/crowdsec.save"
check save_has_the_deadline grep -qE '^198\.18\.0\.1/32 deny expires=[0-9T:-]+Z$' "$ST_TMP/crowdsec.save"
check flush_crowdsec rule_ok -F -o crowdsec
check restore_crowdsec rule_ok -R "$ST_TMP/crowdsec.save" -o crowdsec
check restored_ban_drops ping_dropped snd 198.18.0.2 198.18.0.1
check restored_ban_keeps_time_left eval \
	'rule -l | grep -qE "^198\.18\.0\.1/32 deny # crowdsec deny (59m[0-9]+s|1h) left(;.*)?$"'
# Any writer expires first: a 1 s ban is gone after the next change of anything.
check short_ban rule_ok -a 198.18.0.3 -p deny -o crowdsec -t 1
# -t 1 lasts until the second whole second from now: at most 2 s.
sleep 2.1
check another_change rule_ok -a 2001:db8::1 -p deny -o other
check short_ban_expired_by_the_next_writer ping_passes snd 198.18.0.2 198.18.0.3
check other_unban rule_ok -d 2001:db8::1 -o other
check unban_timed rule_ok -d 198.18.0.1 -o crowdsec
run_cli rule -a 198.18.0.4 -p deny -t 5x
if cli_error "bad timeout '5x'" && cli_rc 1; then
	pass bad_timeout_exit_1
else
	fail bad_timeout_exit_1 "$WHY"
fi

say "replace and flush touch one source only"
LIST=$ST_TMP/list
printf '198.18.0.4\n2001:db8::3/128\n' >"$LIST"
check jail_ban_for_replace rule_ok -a 198.18.0.1 -p deny -o fail2ban-sshd
check list_replace rule_ok -R "$LIST" -p deny -o firehol_level1
check list_drops ping_dropped snd 198.18.0.2 198.18.0.4
check list_v6_allow_still_wins ping_passes snd 2001:db8::2 2001:db8::3
check jail_ban_kept_by_list_replace ping_dropped snd 198.18.0.2 198.18.0.1
check list_source_listed has_line "$(rule -l -o firehol_level1 | grep -v '^#' | strip_hits)" \
	"198.18.0.4/32 deny # firehol_level1 deny"
check list_save_of_one_source eval \
	'[[ $(rule -S -o firehol_level1 | grep -v "^#") == "198.18.0.4/32 deny
2001:db8::3/128 deny" ]]'
# The static rule set replaced: the jail's and the list's stay.
printf '198.18.0.3 allow\n' >"$ST_TMP/static"
check static_replace rule_ok -R "$ST_TMP/static"
check jail_ban_kept_by_static_replace ping_dropped snd 198.18.0.2 198.18.0.1
check list_kept_by_static_replace ping_dropped snd 198.18.0.2 198.18.0.4
check static_v6_allow_replaced_away ping_dropped snd 2001:db8::2 2001:db8::3
check list_flush rule_ok -F -o firehol_level1
check list_flushed_passes ping_passes snd 198.18.0.2 198.18.0.4
check jail_ban_kept_by_list_flush ping_dropped snd 198.18.0.2 198.18.0.1
check static_allow_kept_by_list_flush has_line "$(rule_lines)" "198.18.0.3/32 allow"
check flush_all rule_ok -F
check flush_all_empties same "" "$(rule_lines)" "the rule set"
check flush_all_passes ping_passes snd 198.18.0.2 198.18.0.1

say "a save of every source restores every source"
check save_all_setup_static rule_ok -a 198.18.0.3 -p allow
check save_all_setup_jail rule_ok -a 198.18.0.3 -p deny -o fail2ban-sshd -t 1h
check save_all_setup_list rule_ok -a 198.18.0.4 -p deny -o firehol_level1
check save_all_setup_v6 rule_ok -a 2001:db8::3 -p deny -o crowdsec -t 2h
rule -S >"$ST_TMP/all.save"
check save_all_names_the_sources grep -qx '198.18.0.3/32 deny source=fail2ban-sshd expires=[0-9T:-]*Z' "$ST_TMP/all.save"
check save_all_keeps_static_lines_plain grep -qx '198.18.0.3/32 allow' "$ST_TMP/all.save"
LISTED=$(rule_lines | sed 's/ [0-9hms]* left//')
check save_all_flush rule_ok -F
check save_all_flushed_passes ping_passes snd 198.18.0.2 198.18.0.4
check save_all_restore rule_ok -R "$ST_TMP/all.save"
check save_all_restore_says_which eval '[[ $OUT == "replaced the rules of sources static, fail2ban-sshd, firehol_level1, crowdsec with "* ]]'
check save_all_same_listing same "$LISTED" "$(rule_lines | sed 's/ [0-9hms]* left//')" "the listing"
check save_all_restored_allow_passes ping_passes snd 198.18.0.2 198.18.0.3
check save_all_restored_ban_drops ping_dropped snd 198.18.0.2 198.18.0.4
run_cli rule -R "$ST_TMP/all.save" -o crowdsec
if cli_error "names source .*but -o crowdsec was given" && cli_rc 1 &&
	same "$LISTED" "$(rule_lines | sed 's/ [0-9hms]* left//')" "the listing"; then
	pass save_all_with_other_o_refused
else
	fail save_all_with_other_o_refused "$WHY"
fi
check save_all_cleanup rule_ok -F

say "a batch of changes from one process, in one switch"
printf '%s\n' 'add 198.18.0.4 deny source=fail2ban-sshd timeout=1h' \
	'add 198.18.0.1 deny source=crowdsec' 'del 198.18.0.9 source=fail2ban-sshd' \
	'add 2001:db8::3 deny source=crowdsec timeout=10m' >"$ST_TMP/batch"
run_cli rule -b - <"$ST_TMP/batch"
check batch_from_stdin cli_ok
check batch_counts_the_release_not_held eval '[[ $OUT == *"1 not held"* ]]'
check batch_ban_drops ping_dropped snd 198.18.0.2 198.18.0.4
check batch_ban_v6_drops ping_dropped snd 2001:db8::2 2001:db8::3
BATCHED=$(rule_lines | sed 's/ [0-9hms]* left//')
printf '%s\n' 'del 198.18.0.4 source=fail2ban-sshd' 'ban 198.18.0.1' >"$ST_TMP/bad-batch"
run_cli rule -b "$ST_TMP/bad-batch"
if cli_error "bad-batch:2: 'ban' is not a change" && cli_rc 1 &&
	same "$BATCHED" "$(rule_lines | sed 's/ [0-9hms]* left//')" "the rules"; then
	pass bad_batch_exit_1_nothing_changed
else
	fail bad_batch_exit_1_nothing_changed "$WHY"
fi
# 10,000 bans and then their 10,000 unbans, each batch one process.
"$PYTHON" -c '
for i in range(10000):
    print("add 198.19.%d.%d deny source=fail2ban-sshd timeout=600" % (i // 256, i % 256))
' >"$ST_TMP/bans"
sed 's/^add \(\S*\) deny \(\S*\).*/del \1 \2/' "$ST_TMP/bans" >"$ST_TMP/unbans"
T0=$(date +%s%N)
run_cli rule -b "$ST_TMP/bans"
T1=$(date +%s%N)
check batch_10k_bans cli_ok
check batch_10k_bans_listed eval '[[ $(rule -l -o fail2ban-sshd | grep -c "^198\.19\.") == 10000 ]]'
run_cli rule -b "$ST_TMP/unbans"
T2=$(date +%s%N)
check batch_10k_unbans cli_ok
say "10,000 bans in $(((T1 - T0) / 1000000)) ms, 10,000 unbans in $(((T2 - T1) / 1000000)) ms"
check batch_10k_under_a_second eval '(((T1 - T0) < 1000000000 && (T2 - T1) < 1000000000))'
check batch_unbans_leave_the_rest same "$BATCHED" "$(rule_lines | sed 's/ [0-9hms]* left//')" "the rules"
check batch_cleanup rule_ok -F

say "claims full (--max-rules 2: 4 claims)"
SMALL=/sys/fs/bpf/$ST_ID-small
ST_PINS+=("$SMALL")
run_cli "$LOADER" --pin-dir "$SMALL" --create --max-rules 2
check small_setup cli_ok
for c in "198.18.0.1 a" "198.18.0.1 b" "198.18.0.2 a" "198.18.0.2 b"; do
	read -r pfx s <<<"$c"
	run_cli "$RULE" --pin-dir "$SMALL" -a "$pfx" -p deny -o "$s"
	((RC)) && fail "small_claim_${pfx}_$s" "$WHY"
done
SMALLBASE=$("$RULE" --pin-dir "$SMALL" -l | grep -v '^#')
run_cli "$RULE" --pin-dir "$SMALL" -a 198.18.0.1 -p deny -o c
if cli_error "claims is full \(4 claims\)" && cli_rc 3 &&
	same "$SMALLBASE" "$("$RULE" --pin-dir "$SMALL" -l | grep -v '^#')" "the rules"; then
	pass claims_full_exit_3_nothing_changed
else
	fail claims_full_exit_3_nothing_changed "$WHY"
fi
printf '198.18.0.1\n198.18.0.2\n' >"$ST_TMP/two"
run_cli "$RULE" --pin-dir "$SMALL" -R "$ST_TMP/two" -p deny -o c
if cli_error "holds at most 4 claims" && cli_rc 3 &&
	same "$SMALLBASE" "$("$RULE" --pin-dir "$SMALL" -l | grep -v '^#')" "the rules"; then
	pass claims_full_replace_exit_3_nothing_changed
else
	fail claims_full_replace_exit_3_nothing_changed "$WHY"
fi
printf 'add 198.18.0.1 deny source=c\n' >"$ST_TMP/full-batch"
run_cli "$RULE" --pin-dir "$SMALL" -b "$ST_TMP/full-batch"
if cli_error "claims is full \(4 claims\); nothing was changed" && cli_rc 3 &&
	same "$SMALLBASE" "$("$RULE" --pin-dir "$SMALL" -l | grep -v '^#')" "the rules"; then
	pass claims_full_batch_exit_3_nothing_changed
else
	fail claims_full_batch_exit_3_nothing_changed "$WHY"
fi

say "maps of an ipblock without sources are refused, with what to do"
OLD=/sys/fs/bpf/$ST_ID-old
ST_PINS+=("$OLD")
run_cli "$LOADER" --pin-dir "$OLD" --create --max-rules 100
check old_layout_setup cli_ok
rm -f "$OLD/owners_map" "$OLD/sources_map"
run_cli "$RULE" --pin-dir "$OLD" -l
if cli_error 'only some of ipblock.s maps' && cli_rc 2; then
	pass old_layout_rule_refused_exit_2
else
	fail old_layout_rule_refused_exit_2 "$WHY"
fi
ip -n "$(ns rcv)" link add vc type veth peer name vd || setup_fail "cannot create veth vc"
ip -n "$(ns rcv)" link set vc up
run_cli net_ns rcv "$LOADER" --pin-dir "$OLD" -d vc
if cli_error 'another version of ipblock.*save the rules' && cli_rc 5; then
	pass old_layout_loader_refused
else
	fail old_layout_loader_refused "$WHY"
fi

st_finish
