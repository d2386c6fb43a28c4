#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Attach modes and the shared rule set: native and skb (generic) mode both
# drop, -s reports the mode, detaching restores traffic, re-attaching brings
# the pinned rules back into force, and two interfaces share one rule set.
#
#   snd1 (va1) 198.18.0.1/24 2001:db8::1/64   --  rcv (vb1) .0.2 ::2    <- ipblock
#   snd2 (va2) 198.18.1.1/24 2001:db8:1::1/64 --  rcv (vb2) .1.2 1::2   <- ipblock
# Helpers run through check() look unreachable to shellcheck; st_init's
# arguments are tool names, not the script's.
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init

ns_add snd1 snd2 rcv
veth snd1 va1 rcv vb1
veth snd2 va2 rcv vb2
addr snd1 va1 198.18.0.1/24 2001:db8::1/64
addr snd2 va2 198.18.1.1/24 2001:db8:1::1/64
addr rcv vb1 198.18.0.2/24 2001:db8::2/64
addr rcv vb2 198.18.1.2/24 2001:db8:1::2/64

# status_mode IFACE: the mode ipblock-loader -s reports for IFACE, or "".
status_mode() {
	loader rcv -s 2>/dev/null | awk -v d="$1" '$1 == d && $3 == "program" { print $2 }'
}

# mode_is IFACE MODE: -s shows IFACE attached in MODE.
mode_is() {
	local got
	got=$(status_mode "$1")
	[[ $got == "$2" ]] && return 0
	WHY="ipblock-loader -s: expected $1 in ${2:-no} mode, got '${got:-not attached}'
$(loader rcv -s 2>&1)"
	return 1
}

# attach_ok NAME IFACE [ARGS...]: attach, as a test of its own.
attach_ok() {
	local name=$1 dev=$2
	shift 2
	run_cli loader rcv -d "$dev" "$@"
	if ((RC)); then
		fail "$name" "ipblock-loader -d $dev $*: exit $RC: $ERR"
		return 1
	fi
	pass "$name"
}

# rule_ok ARGS...: an ipblock-rule call the test relies on; a failure is
# reported as a test of its own (rule[-a_198.18.0.1_-p_deny]).
rule_ok() {
	local args="$*"
	run_cli rule "$@"
	((RC == 0)) && return 0
	fail "rule[${args// /_}]" "ipblock-rule $*: exit $RC: $ERR"
	return 1
}

say "native mode"
check traffic_passes_before_attach ping_passes snd1 198.18.0.2
if attach_ok native_attach vb1 -m native; then
	check native_attach_message_names_mode has_line "$(grep -o 'native mode' <<<"$OUT")" "native mode"
	check native_status_shows_mode mode_is vb1 native
	rule_ok -a 198.18.0.1 -p deny
	rule_ok -a 2001:db8::1 -p deny
	check native_mode_drops_v4 ping_dropped snd1 198.18.0.2
	check native_mode_drops_v6 ping_dropped snd1 2001:db8::2
	HITS=$(rule_packets 198.18.0.1/32)
	check rule_counter_counts_the_drops eval '((HITS > 0))'
fi

say "detach restores traffic, the rules stay pinned"
run_cli loader rcv -d vb1 -u
if ((RC == 0)); then
	pass detach
	check detach_status_shows_not_attached mode_is vb1 ""
	check detach_restores_v4 ping_passes snd1 198.18.0.2
	check detach_restores_v6 ping_passes snd1 2001:db8::2
	check rules_listed_after_detach has_line "$(rule_lines)" "198.18.0.1/32 deny"
	[[ -n ${HITS-} ]] &&
		check rule_counter_kept_after_detach eval '(($(rule_packets 198.18.0.1/32) == HITS))'
else
	fail detach "ipblock-loader -d vb1 -u: exit $RC: $ERR"
fi

say "skb mode: re-attaching brings the rules back into force"
if attach_ok skb_attach vb1 -m skb; then
	check skb_attach_keeps_rules has_line "$(grep -o 'kept rules: 1 IPv4, 1 IPv6' <<<"$OUT")" \
		"kept rules: 1 IPv4, 1 IPv6"
	check skb_status_shows_mode mode_is vb1 skb
	check skb_mode_drops_v4 ping_dropped snd1 198.18.0.2
	check skb_mode_drops_v6 ping_dropped snd1 2001:db8::2
	[[ -n ${HITS-} ]] &&
		check rule_counter_grows_after_reattach eval '(($(rule_packets 198.18.0.1/32) > HITS))'
	run_cli loader rcv -d vb1 -u
	((RC)) && fail skb_detach "exit $RC: $ERR"
	check skb_detach_restores_v4 ping_passes snd1 198.18.0.2
fi
if attach_ok reattach_default_mode vb1; then
	check reattach_status_shows_native mode_is vb1 native
	check reattach_lists_rules has_line "$(rule_lines)" "2001:db8::1/128 deny"
	check reattach_still_drops_v4 ping_dropped snd1 198.18.0.2
	check reattach_still_drops_v6 ping_dropped snd1 2001:db8::2
fi

say "two interfaces share one rule set (vb1 native, vb2 skb)"
rule_ok -F
if attach_ok second_interface_attach vb2 -m skb; then
	check second_interface_status mode_is vb2 skb
	check first_interface_still_native mode_is vb1 native
	check both_pass_v4_snd1 ping_passes snd1 198.18.0.2
	check both_pass_v4_snd2 ping_passes snd2 198.18.1.2
	# One rule covering both senders.
	rule_ok -a 198.18.0.0/23 -p deny
	check one_rule_drops_on_vb1_v4 ping_dropped snd1 198.18.0.2
	BEFORE=$(net_ns rcv "$LOADER" --pin-dir "$PIN" -s --json)
	check one_rule_drops_on_vb2_v4 ping_dropped snd2 198.18.1.2
	AFTER=$(net_ns rcv "$LOADER" --pin-dir "$PIN" -s --json)
	# Each interface counts its own packets; the totals are their sum.
	check counters_per_interface "$PYTHON" -c '
import json, sys
b, a = (json.loads(x) for x in sys.argv[1:3])
def drops(s, name):
    return [i for i in s["interfaces"] if i["name"] == name][0]["counters"]["dropped"]["packets"]
assert drops(a, "vb2") - drops(b, "vb2") >= 3, (drops(b, "vb2"), drops(a, "vb2"))
assert drops(a, "vb1") == drops(b, "vb1"), (drops(b, "vb1"), drops(a, "vb1"))
assert drops(a, "vb1") + drops(a, "vb2") == a["counters"]["dropped"]["packets"], a
' "$BEFORE" "$AFTER"
	rule_ok -a 2001:db8::/47 -p deny
	check one_rule_drops_on_vb1_v6 ping_dropped snd1 2001:db8::2
	check one_rule_drops_on_vb2_v6 ping_dropped snd2 2001:db8:1::2
	rule_ok -d 198.18.0.0/23
	check one_delete_restores_vb1 ping_passes snd1 198.18.0.2
	check one_delete_restores_vb2 ping_passes snd2 198.18.1.2

	run_cli loader rcv -d vb1 -u
	((RC)) && fail detach_vb1 "exit $RC: $ERR"
	check detach_one_leaves_other_attached mode_is vb2 skb
	check detach_one_restores_it ping_passes snd1 2001:db8::2
	check detach_one_other_still_drops ping_dropped snd2 2001:db8:1::2
	run_cli loader rcv -d vb2 -u
	((RC)) && fail detach_vb2 "exit $RC: $ERR"
	check detach_all_restores ping_passes snd2 2001:db8:1::2
fi

st_finish
