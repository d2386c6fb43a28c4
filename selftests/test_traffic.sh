#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Real traffic through ipblock: a sender namespace pings a receiver namespace
# over a veth pair; ipblock sits on the receiver's end.  Deny rules on the
# sender's address or prefix drop the pings and count them, deleting a rule
# restores traffic, an allow inside a deny prefix wins (longest prefix), and
# a catch-all deny plus allow rules makes an allowlist.
#
#   snd (va)  198.18.0.1 .3 .4/24, 2001:db8::1 ::3 ::4/64
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
addr snd va 198.18.0.1/24 198.18.0.3/24 198.18.0.4/24 \
	2001:db8::1/64 2001:db8::3/64 2001:db8::4/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64

run_cli loader rcv -d vb
((RC)) && setup_fail "ipblock-loader -d vb failed ($RC): $ERR"

# rule_ok ARGS...: an ipblock-rule call the test relies on.
rule_ok() {
	run_cli rule "$@"
	cli_ok && return 0
	WHY="ipblock-rule $*: $WHY"
	return 1
}

# A deny rule for SRC-or-prefix drops SRC's pings to DST, and the dropped
# counter grows by the number of pings; deleting the rule lets them through.
# deny_cycle NAME RULE DST SRC
deny_cycle() {
	local name=$1 cidr=$2 dst=$3 src=$4 before after
	before=$(counter dropped)
	if ! rule_ok -a "$cidr" -p deny; then
		fail "${name}_drops" "$WHY"
		return
	fi
	check "${name}_drops" ping_dropped snd "$dst" "$src"
	after=$(counter dropped)
	# Three echo requests, no retransmission: three drops.  IPv6 may add
	# the sender's neighbour solicitations, which the rule drops too.
	local rise=$((after - before)) ok=0 want="of 3"
	if [[ $cidr == *:* ]]; then
		want="of at least 3"
		((rise >= 3)) && ok=1
	else
		((rise == 3)) && ok=1
	fi
	if ((ok)); then
		pass "${name}_counts_drops"
	else
		fail "${name}_counts_drops" "dropped counter went from $before to $after; expected a rise $want"
	fi
	if rule_ok -d "$cidr"; then
		check "${name}_delete_restores" ping_passes snd "$dst" "$src"
	else
		fail "${name}_delete_restores" "$WHY"
	fi
}

say "no rules: everything passes"
check v4_ping_passes_without_rules ping_passes snd 198.18.0.2 198.18.0.1
check v6_ping_passes_without_rules ping_passes snd 2001:db8::2 2001:db8::1
nomatch=$(counter "passed (no rule)")
if ((nomatch >= 6)); then
	pass "passed_no_rule_counter_counts"
else
	fail "passed_no_rule_counter_counts" "expected at least 6 packets, got '$nomatch'"
fi

say "deny rules on the sender drop its pings"
deny_cycle deny_v4_host 198.18.0.1 198.18.0.2 198.18.0.1
deny_cycle deny_v4_prefix 198.18.0.0/24 198.18.0.2 198.18.0.1
deny_cycle deny_v6_host 2001:db8::1 2001:db8::2 2001:db8::1
deny_cycle deny_v6_prefix 2001:db8::/64 2001:db8::2 2001:db8::1

# The drop counter as ipblock-loader -s reports it agrees with -l.
status_drops() {
	local s l
	s=$(loader rcv -s | awk '/dropped \(deny rule\)/ { for (i = 1; i <= NF; i++) if ($i == "packets") print $(i - 1) }')
	l=$(counter dropped)
	[[ -n $s && $s == "$l" ]] && ((s >= 12)) && return 0
	WHY="dropped: ipblock-loader -s says '$s', ipblock-rule -l says '$l' (expected >= 12, equal)"
	return 1
}
check status_shows_drop_counter status_drops

say "allow /32 (/128) inside a deny /24 (/64): longest prefix wins"
if ! { rule_ok -a 198.18.0.0/24 -p deny && rule_ok -a 198.18.0.1/32 -p allow &&
	rule_ok -a 2001:db8::/64 -p deny && rule_ok -a 2001:db8::1/128 -p allow; }; then
	fail "allow_inside_deny_rules_added" "$WHY"
fi
allow_before=$(counter "passed (allow rule)")
check v4_allow_host_inside_deny_prefix_passes ping_passes snd 198.18.0.2 198.18.0.1
check v4_other_host_of_deny_prefix_dropped ping_dropped snd 198.18.0.2 198.18.0.3
check v6_allow_host_inside_deny_prefix_passes ping_passes snd 2001:db8::2 2001:db8::1
check v6_other_host_of_deny_prefix_dropped ping_dropped snd 2001:db8::2 2001:db8::3
allow_after=$(counter "passed (allow rule)")
if ((allow_after - allow_before >= 6)); then
	pass "allow_counter_counts"
else
	fail "allow_counter_counts" "passed (allow rule): expected $allow_before + >= 6, got $allow_after"
fi
rule_ok -F || fail "flush" "$WHY"
if [[ -z $(rule_lines) ]]; then
	check flush_restores_v4 ping_passes snd 198.18.0.2 198.18.0.3
	check flush_restores_v6 ping_passes snd 2001:db8::2 2001:db8::3
else
	fail "flush_empties_rules" "rules left after -F: $(rule_lines)"
fi

say "allowlist: 0.0.0.0/0 and ::/0 denied, a few sources allowed"
# An IPv6 allowlist must let link-local neighbour discovery through.
if ! { rule_ok -a 0.0.0.0/0 -p deny && rule_ok -a 198.18.0.1 -p allow &&
	rule_ok -a ::/0 -p deny && rule_ok -a 2001:db8::1 -p allow &&
	rule_ok -a fe80::/10 -p allow; }; then
	fail "allowlist_rules_added" "$WHY"
fi
check allowlist_v4_allowed_passes ping_passes snd 198.18.0.2 198.18.0.1
check allowlist_v4_other_dropped ping_dropped snd 198.18.0.2 198.18.0.4
check allowlist_v6_allowed_passes ping_passes snd 2001:db8::2 2001:db8::1
check allowlist_v6_other_dropped ping_dropped snd 2001:db8::2 2001:db8::4

st_finish
