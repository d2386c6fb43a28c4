#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The flat tables on real traffic: a /32 (/128) allow inside a /24 (/64)
# deny exercises the one-load blocks, the chunks and the hashed long rules;
# a crowded IPv6 region is split into a tree; memory grows with 100,000
# rules and falls back after a flush, verdicts right all along.  A rule
# written into the tries behind the tools' back is not seen by the flat
# tables -- proof that the live program reads them -- until a writer finds
# the dirty mark a dead writer would leave and recompiles them.
#
#   snd (va) 198.18.0.1, .0.3 /24  2001:db8::1, ::3 /64  --  rcv (vb) .0.2 ::2  <- ipblock
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init bpftool

ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24 198.18.0.3/24 2001:db8::1/64 2001:db8::3/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64

# status_has TEXT: ipblock-loader -s prints a line containing TEXT.
status_has() {
	local s
	s=$(loader rcv -s 2>&1)
	grep -qF -- "$1" <<<"$s" && return 0
	WHY="ipblock-loader -s has no line with '$1':
$s"
	return 1
}

# nested_rules: /24 and /64 denied, .0.1 and ::1 allowed inside them.
nested_rules() {
	rule -a 198.18.0.0/24 -p deny && rule -a 198.18.0.1/32 -p allow &&
		rule -a 2001:db8::/64 -p deny && rule -a 2001:db8::1/128 -p allow
}

# nested_verdicts PREFIX: what nested_rules implies, on real traffic.
nested_verdicts() {
	local p=$1
	check "${p}_allow_inside_deny_v4" ping_passes snd 198.18.0.2 198.18.0.1
	check "${p}_deny_v4" ping_dropped snd 198.18.0.2 198.18.0.3
	check "${p}_allow_inside_deny_v6" ping_passes snd 2001:db8::2 2001:db8::1
	check "${p}_deny_v6" ping_dropped snd 2001:db8::2 2001:db8::3
}

# memory_mib: the "memory:" figure of ipblock-loader -s, in whole MiB (rounded down).
memory_mib() {
	loader rcv -s 2>/dev/null | sed -n 's/^  memory: \([0-9]*\)\.[0-9] MiB.*/\1/p'
}

# below N M: N < M (numbers), else WHY.
below() {
	[[ -n $1 && -n $2 ]] && (($1 < $2)) && return 0
	WHY="expected ${1:-?} < ${2:-?}"
	return 1
}

say "--lookup trie is no more; --lookup flat is accepted"
run_cli loader rcv -d vb --lookup trie
check trie_lookup_refused cli_error "--lookup trie is no more"
check trie_lookup_left_detached ping_passes snd 198.18.0.2 198.18.0.3
run_cli loader rcv -d vb --lookup flat --max-rules 400000
check flat_attach cli_ok
check flat_attach_names_memory has_line "$(grep -o 'MiB of kernel memory' <<<"$OUT")" "MiB of kernel memory"
check no_rules_under_4_mib below "$(memory_mib)" 4
if nested_rules >/dev/null; then
	nested_verdicts flat
	# One /16 block per family holds rules; every other answers from its block entry.
	check flat_status_v4_long_rule status_has "IPv4: 1 rules longer than /24 in 1 regions (0 crowded, split into 0 nodes); 1 of 65536 /16 blocks mixed"
	check flat_status_v6_long_rules status_has "IPv6: 2 rules longer than /24 in 1 regions (0 crowded, split into 0 nodes); 1 of 65536 /16 blocks mixed"
else
	fail flat_rules "ipblock-rule refused the nested rules"
fi

say "a crowded IPv6 region (more than 8 long lengths) is split into a tree"
# Nine more lengths in 2001:d00::/24, away from the hosts: 11 in all.
crowd=(2001:db8:f000::/36 2001:db8:e000::/40 2001:db8:d000::/44 2001:db8:c000::/48
	2001:db8:b000::/56 2001:db8:a000::/72 2001:db8:9000::/80 2001:db8:8000::/96
	2001:db8:7000::/112)
for p in "${crowd[@]}"; do rule -a "$p" -p deny >/dev/null; done
check crowded_region_split status_has "IPv6: 11 rules longer than /24 in 1 regions (1 crowded, split into"
check crowded_allow_inside_deny_v6 ping_passes snd 2001:db8::2 2001:db8::1
check crowded_deny_v6 ping_dropped snd 2001:db8::2 2001:db8::3
rule -a 2001:db8::3/128 -p allow >/dev/null
check crowded_new_allow_v6 ping_passes snd 2001:db8::2 2001:db8::3
rule -d 2001:db8::3/128 >/dev/null
check crowded_deleted_allow_v6 ping_dropped snd 2001:db8::2 2001:db8::3
for p in "${crowd[@]}"; do rule -d "$p" >/dev/null; done
check uncrowded_region_plain status_has "IPv6: 2 rules longer than /24 in 1 regions (0 crowded, split into 0 nodes)"

rule -d 198.18.0.1/32 >/dev/null
check flat_delete_long_rule_v4 ping_dropped snd 198.18.0.2 198.18.0.1
rule -d 198.18.0.0/24 >/dev/null
check flat_delete_short_rule_v4 ping_passes snd 198.18.0.2 198.18.0.3
check flat_status_v4_no_mixed_block status_has "IPv4: 0 rules longer than /24 in 0 regions (0 crowded, split into 0 nodes); 0 of 65536 /16 blocks mixed"

say "memory grows with 100,000 rules and falls back after they go"
nested_rules >/dev/null
before=$(memory_mib)
# 100,000 /32 hosts in 10.0.0.0/8 (never traffic here), then the nested pair again.
python3 -c 'import sys
for i in range(100000): sys.stdout.write("10.%d.%d.%d\n" % (i >> 16, (i >> 8) & 255, i & 255))' >"$ST_TMP/hosts"
run_cli rule -i "$ST_TMP/hosts" -p deny
check grow_import_100k cli_ok
grown=$(memory_mib)
check grow_memory_rises below "$before" "$grown"
check grow_slots_grew status_has "IPv4: 100001 rules longer than /24"
check grow_deny_v4 ping_dropped snd 198.18.0.2 198.18.0.3
check grow_allow_v4 ping_passes snd 198.18.0.2 198.18.0.1
check grow_allow_v6 ping_passes snd 2001:db8::2 2001:db8::1
check grow_deny_v6 ping_dropped snd 2001:db8::2 2001:db8::3
run_cli rule -R "$ST_TMP/hosts" -p allow
check grow_replace_100k cli_ok
check grow_replace_dropped_the_rest ping_passes snd 198.18.0.2 198.18.0.3
run_cli rule -F
check shrink_flush cli_ok
check shrink_memory_falls below "$(memory_mib)" "$grown"
check shrink_back_under_4_mib below "$(memory_mib)" 4
nested_rules >/dev/null
rule -d 198.18.0.0/24 >/dev/null

say "the live program reads the tables; a dirty mark recompiles them"
# 198.18.0.3/32 deny into both tries directly: key {32, addr}, value
# {deny, 32, flags 0, rule id 0}.  The tables do not know it.
for m in ipv4_map ipv4_map_b; do
	bpftool map update pinned "$PIN/$m" key 32 0 0 0 198 18 0 3 \
		value 2 32 0 0 0 0 0 0 >/dev/null 2>&1
done
check bypassed_rule_is_not_in_the_tables ping_passes snd 198.18.0.2 198.18.0.3
# What a writer that died half-way leaves: the dirty mark, on the active set.
active=$(bpftool map lookup pinned "$PIN/config_map" key 0 0 0 0 2>/dev/null | tr -d '\n' |
	grep -o '"active_set": [0-9]*' | grep -o '[0-9]*$')
bpftool map update pinned "$PIN/config_map" key 0 0 0 0 value "${active:-0}" 0 0 0 1 0 0 0 0 0 0 0 0 0 0 0 \
	>/dev/null 2>&1
run_cli rule -a 198.18.0.200/32 -p deny
check writer_after_dirty_mark cli_ok
check recompiled_tables_have_the_rule ping_dropped snd 198.18.0.2 198.18.0.3
check recompiled_tables_keep_the_rest ping_passes snd 198.18.0.2 198.18.0.1
check recompiled_v6_rules_kept ping_dropped snd 2001:db8::2 2001:db8::3
check recompiled_rule_listed has_line "$(rule_lines)" "198.18.0.3/32 deny"
dirty=$(bpftool map lookup pinned "$PIN/config_map" key 0 0 0 0 2>/dev/null | tr -d '\n' |
	grep -o '"flags": [0-9]*' | grep -o '[0-9]*$')
check dirty_mark_cleared same "${dirty:-?}" 0 "config_map flags"

run_cli loader rcv -d vb -u
check flat_detach cli_ok

st_finish
