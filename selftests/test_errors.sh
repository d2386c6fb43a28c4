#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# User errors: each gives exactly one line on stderr, a non-zero exit, and
# leaves the rule set (the rule lines of ipblock-rule -l) as it was.  Then
# the notices (host bits, IPv4-mapped), updating a rule's action, and the
# order of -l.
# Helpers run through check() look unreachable to shellcheck; st_init's
# arguments are tool names, not the script's.
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init setpriv

ns_add rcv
# Both ends in one namespace: vb carries ipblock, va stays free.
ip -n "$(ns rcv)" link add va type veth peer name vb || setup_fail "cannot create veth"
ip -n "$(ns rcv)" link set va up
ip -n "$(ns rcv)" link set vb up

run_cli loader rcv -d vb
((RC)) && setup_fail "ipblock-loader -d vb: $ERR"
for r in "198.18.5.0/24 deny" "198.18.6.1 allow" "2001:db8:5::/48 deny"; do
	read -r cidr act <<<"$r"
	run_cli rule -a "$cidr" -p "$act"
	((RC)) && setup_fail "ipblock-rule -a $cidr -p $act: $ERR"
done
BASE=$(rule_lines)
[[ $(grep -c . <<<"$BASE") == 3 ]] || setup_fail "expected 3 rules, got: $BASE"

# xdp_on NS IFACE: some XDP program is attached to IFACE.
xdp_on() {
	ip -n "$(ns "$1")" -d link show "$2" | grep -q 'prog/xdp'
}

# user_error NAME REGEX CMD...: CMD fails with one stderr line matching
# REGEX, and the rule lines of the private pin dir are unchanged.
user_error() {
	local name=$1 re=$2 after
	shift 2
	run_cli "$@"
	WHY=
	if ! cli_error "$re" || { [[ -n ${UE_RC:-} ]] && ! cli_rc "$UE_RC"; }; then
		fail "$name" "command: $*" "$WHY"
		return 1
	fi
	after=$(rule_lines)
	if ! same "$BASE" "$after" "the rule set"; then
		fail "$name" "command: $*" "$WHY"
		return 1
	fi
	pass "$name"
}

# --- not root ------------------------------------------------------------------
say "not root"
NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
if "${NOBODY[@]}" test -x "$RULE" && "${NOBODY[@]}" test -x "$LOADER"; then
	UE_RC=4 user_error not_root_rule_list 'root' "${NOBODY[@]}" "$RULE" --pin-dir "$PIN" -l
	UE_RC=4 user_error not_root_rule_check 'root' "${NOBODY[@]}" "$RULE" --pin-dir "$PIN" --check
	user_error not_root_rule_add 'root' "${NOBODY[@]}" "$RULE" --pin-dir "$PIN" -a 198.18.9.9 -p deny
	user_error not_root_rule_delete 'root' "${NOBODY[@]}" "$RULE" --pin-dir "$PIN" -d 198.18.5.0/24
	user_error not_root_rule_flush 'root' "${NOBODY[@]}" "$RULE" --pin-dir "$PIN" -F
	user_error not_root_loader_attach 'root' \
		net_ns rcv "${NOBODY[@]}" "$LOADER" --pin-dir "$PIN" -d va
	user_error not_root_loader_detach 'root' \
		net_ns rcv "${NOBODY[@]}" "$LOADER" --pin-dir "$PIN" -d vb -u
	user_error not_root_loader_status 'root' \
		net_ns rcv "${NOBODY[@]}" "$LOADER" --pin-dir "$PIN" -s
	check not_root_detach_left_ipblock_attached xdp_on rcv vb
else
	skip not_root "user nobody cannot execute $BUILD's binaries"
fi

# --- no pins / no bpffs --------------------------------------------------------
say "ipblock not loaded, or no BPF filesystem"
NOPINS=/sys/fs/bpf/$ST_ID-nopins
NOTBPF=$(mktemp -d "$ST_TMP/notbpf.XXXXXX")
UE_RC=2 user_error no_pins_rule_list 'not loaded' "$RULE" --pin-dir "$NOPINS" -l
UE_RC=2 user_error no_pins_rule_check 'not loaded' "$RULE" --pin-dir "$NOPINS" --check
UE_RC=2 user_error no_pins_rule_delete_idempotent_still_not_loaded 'not loaded' "$RULE" --pin-dir "$NOPINS" -d 198.18.9.9
run_cli "$LOADER" --pin-dir "$NOPINS" -s
check no_pins_loader_status_exit_2 cli_rc 2
user_error no_pins_rule_add 'not loaded' "$RULE" --pin-dir "$NOPINS" -a 198.18.9.9 -p deny
user_error no_pins_rule_delete 'not loaded' "$RULE" --pin-dir "$NOPINS" -d 198.18.5.0/24
user_error no_pins_rule_flush 'not loaded' "$RULE" --pin-dir "$NOPINS" -F
user_error not_bpffs_rule_list 'not loaded|BPF filesystem' "$RULE" --pin-dir "$NOTBPF" -l
user_error not_bpffs_rule_add 'not loaded|BPF filesystem' "$RULE" --pin-dir "$NOTBPF" -a 198.18.9.9 -p deny
user_error not_bpffs_loader_attach 'BPF filesystem' net_ns rcv "$LOADER" --pin-dir "$NOTBPF" -d va
if xdp_on rcv va; then
	fail not_bpffs_loader_attach_left_nothing "ipblock got attached to va despite the error"
	net_ns rcv "$LOADER" --pin-dir "$NOTBPF" -d va -u >/dev/null 2>&1
elif [[ -n $(ls -A "$NOTBPF") ]]; then
	fail not_bpffs_loader_attach_left_nothing "files left in $NOTBPF: $(ls -A "$NOTBPF")"
else
	pass not_bpffs_loader_attach_left_nothing
fi
user_error pin_dir_parent_missing_loader_attach 'pin directory' \
	net_ns rcv "$LOADER" --pin-dir "$NOTBPF/no/such" -d va
if xdp_on rcv va; then
	fail pin_dir_parent_missing_left_nothing "ipblock got attached to va despite the error"
	net_ns rcv "$LOADER" --pin-dir "$NOTBPF/no/such" -d va -u >/dev/null 2>&1
else
	pass pin_dir_parent_missing_left_nothing
fi

# A failed attach leaves no pins behind (lo has no native XDP).
FAILED=/sys/fs/bpf/$ST_ID-failed
ST_PINS+=("$FAILED")
user_error native_unsupported_attach_fails 'native' \
	net_ns rcv "$LOADER" --pin-dir "$FAILED" -d lo -m native
if [[ -e $FAILED ]]; then
	fail native_unsupported_attach_leaves_no_pins "left behind: $FAILED: $(ls "$FAILED")"
else
	pass native_unsupported_attach_leaves_no_pins
fi
# Some of the maps missing: the loader says what to do.
PARTIAL=/sys/fs/bpf/$ST_ID-partial
ST_PINS+=("$PARTIAL")
run_cli net_ns rcv "$LOADER" --pin-dir "$PARTIAL" -d va
if ((RC)); then
	fail partial_pins_setup "attach: $ERR"
else
	net_ns rcv "$LOADER" --pin-dir "$PARTIAL" -d va -u >/dev/null 2>&1
	rm -f "$PARTIAL/stats_map"
	user_error partial_pins_loader_refuses 'remove' net_ns rcv "$LOADER" --pin-dir "$PARTIAL" -d va
	check partial_pins_loader_left_va_alone eval '! xdp_on rcv va'
	user_error partial_pins_rule_list '' "$RULE" --pin-dir "$PARTIAL" -l
fi

# --- maps without an attachment, readiness, status codes ------------------------
say "--create, --check, the exit codes of -s"
run_cli loader rcv -s
check status_attached_exit_0 cli_rc 0
CREATED=/sys/fs/bpf/$ST_ID-created
ST_PINS+=("$CREATED")
run_cli "$LOADER" --pin-dir "$CREATED" --create --max-rules 1000
check create_maps cli_ok
check create_attached_nothing eval '! xdp_on rcv va'
run_cli "$LOADER" --pin-dir "$CREATED" --create
check create_again_keeps_them cli_ok
UE_RC=1 user_error create_other_capacity 'at most 1000 rules' "$LOADER" --pin-dir "$CREATED" --create --max-rules 5
run_cli "$RULE" --pin-dir "$CREATED" --check
check check_ready_after_create cli_ok
run_cli "$LOADER" --pin-dir "$CREATED" -s
check status_created_not_attached_exit_2 cli_rc 2
run_cli "$RULE" --pin-dir "$CREATED" -a 198.18.9.9 -p deny
check create_then_stage_a_rule cli_ok
run_cli net_ns rcv "$LOADER" --pin-dir "$CREATED" -d va
if cli_ok && [[ $OUT == *"kept rules: 1 IPv4"* ]]; then
	pass attach_after_create_keeps_staged_rule
else
	fail attach_after_create_keeps_staged_rule "${WHY:-stdout: $OUT}"
fi
net_ns rcv "$LOADER" --pin-dir "$CREATED" -d va -u >/dev/null 2>&1
UE_RC=1 user_error create_with_dev 'goes alone' loader rcv --create -d va

# --- interfaces ----------------------------------------------------------------
say "interfaces"
user_error unknown_interface_attach "no interface named 'ipbt-nosuch0'" loader rcv -d ipbt-nosuch0
user_error unknown_interface_detach "no interface named 'ipbt-nosuch0'" loader rcv -d ipbt-nosuch0 -u
user_error already_attached 'already attached' loader rcv -d vb
check already_attached_left_it_attached xdp_on rcv vb
user_error not_attached_detach 'not attached' loader rcv -d va -u
user_error unknown_mode "unknown mode 'turbo'" loader rcv -d va -m turbo
user_error bad_max_rules "max-rules" loader rcv -d va --max-rules lots
user_error loader_nothing_to_do 'nothing to do' loader rcv
user_error loader_status_and_detach 'cannot be combined' loader rcv -s -u -d vb
printf '[ipblock]\ncapacity = 10q\n' >"$ST_TMP/bad.conf"
user_error bad_config "$ST_TMP/bad.conf:2: bad capacity '10q'" loader rcv --check-config "$ST_TMP/bad.conf"
user_error missing_config "$ST_TMP/none.conf: No such file" loader rcv --check-config "$ST_TMP/none.conf"
check loader_errors_left_va_alone eval '! xdp_on rcv va'
# The shipped example is fine; checking needs no root (where nobody can
# reach the build, root checks it).
good_config() {
	local who=("${NOBODY[@]}")
	"${who[@]}" test -r "$ST_REPO/etc/ipblock.conf" -a -x "$LOADER" || who=()
	"${who[@]}" "$LOADER" --check-config "$ST_REPO/etc/ipblock.conf" | grep -q ': fine: '
}
check example_config_checks_fine good_config

# --- rule syntax ---------------------------------------------------------------
say "bad prefixes, policies, options"
for c in 300.1.1.1 1.2.3 1.2.3.4/33 ::/129 2001:db8:::1 abc 1.2.3.4/-1 '' 198.18.0.1/ \
	'198.18.0.1 ' 198.18.0.1/24/1 2001:db8::/64x; do
	n=${c:-empty}
	n=${n// /_}
	user_error "bad_cidr_add[$n]" "'$c'" rule -a "$c" -p deny
	user_error "bad_cidr_delete[$n]" "'$c'" rule -d "$c"
done
UE_RC=1 user_error unknown_policy "unknown policy 'block'" rule -a 198.18.9.9 -p block
user_error add_without_policy '-p' rule -a 198.18.9.9
user_error policy_without_add '-p' rule -d 198.18.5.0/24 -p deny
# Deleting an absent rule is done (exit 0, a note); --strict makes it an error.
UE_RC=1 user_error delete_missing_prefix_strict 'no rule for 198.18.9.0/24' rule -d 198.18.9.0/24 --strict
UE_RC=1 user_error delete_missing_v6_prefix_strict 'no rule for 2001:db8:9::/48' rule -d 2001:db8:9::/48 --strict
# Inside a rule's prefix is not the rule: delete is exact.
user_error delete_covered_address_not_exact 'no rule for 198.18.5.7/32' rule -d 198.18.5.7 --strict
user_error delete_longer_prefix_not_exact 'no rule for 198.18.5.0/25' rule -d 198.18.5.0/25 --strict
user_error delete_shorter_prefix_not_exact 'no rule for 198.18.4.0/23' rule -d 198.18.4.0/23 --strict
for c in 198.18.9.0/24 2001:db8:9::/48 198.18.5.7; do
	run_cli rule -d "$c"
	if cli_ok && [[ -z $OUT ]] && [[ $ERR == *"note: there is no rule for"* ]] &&
		same "$BASE" "$(rule_lines)" "the rule set"; then
		pass "delete_absent_is_done[$c]"
	else
		fail "delete_absent_is_done[$c]" "${WHY:-stdout: $OUT; stderr: $ERR}"
	fi
done
UE_RC=1 user_error strict_without_delete '--strict goes with -d' rule -l --strict
user_error rule_nothing_to_do 'nothing to do' rule
# A list that holds no rule (a failed download, say) must not empty the firewall.
EMPTY_LIST=$(mktemp "$ST_TMP/empty.XXXXXX")
printf '# nothing but a comment\n\n' >"$EMPTY_LIST"
user_error replace_with_empty_list 'holds no rules' rule -R "$EMPTY_LIST" -p deny
user_error two_commands 'one of' rule -l -F
UE_RC=1 user_error unknown_option "unknown option" rule -x
user_error missing_argument "needs an argument" rule -a
user_error unexpected_argument "unexpected argument 'extra'" rule -a 198.18.9.9 -p deny extra

# --- map full --------------------------------------------------------------------
say "map full (--max-rules 2)"
FULL=/sys/fs/bpf/$ST_ID-full
ST_PINS+=("$FULL")
run_cli net_ns rcv "$LOADER" --pin-dir "$FULL" -d va --max-rules 2
if ((RC)); then
	fail map_full_attach "ipblock-loader --max-rules 2: exit $RC: $ERR"
else
	ok=1
	for c in 198.18.0.1 198.18.0.2 2001:db8::1 2001:db8::2; do
		run_cli "$RULE" --pin-dir "$FULL" -a "$c" -p deny
		((RC)) && ok=0 && fail map_full_first_two_fit "-a $c: exit $RC: $ERR"
	done
	((ok)) && pass map_full_first_two_fit
	FULLBASE=$("$RULE" --pin-dir "$FULL" -l | grep -v '^#')
	for c in 198.18.0.3 2001:db8::3; do
		fam=IPv4
		[[ $c == *:* ]] && fam=IPv6
		run_cli "$RULE" --pin-dir "$FULL" -a "$c" -p deny
		if ! cli_error "$fam rule map is full \(2 rules\)" || ! cli_rc 3; then
			fail "map_full_${fam}_third_fails" "$WHY"
		elif ! same "$FULLBASE" "$("$RULE" --pin-dir "$FULL" -l | grep -v '^#')" "the rule set"; then
			fail "map_full_${fam}_third_fails" "$WHY"
		else
			pass "map_full_${fam}_third_fails"
		fi
	done
	# Changing an existing rule needs no new slot.
	run_cli "$RULE" --pin-dir "$FULL" -a 198.18.0.2 -p allow
	if cli_ok && has_line "$("$RULE" --pin-dir "$FULL" -l)" "198.18.0.2/32 allow"; then
		pass map_full_update_existing_works
	else
		fail map_full_update_existing_works "$WHY"
	fi
	net_ns rcv "$LOADER" --pin-dir "$FULL" -d va -u >/dev/null 2>&1
	user_error max_rules_differs_from_pinned 'at most 2 rules' \
		net_ns rcv "$LOADER" --pin-dir "$FULL" -d va --max-rules 5
	check max_rules_refusal_left_va_alone eval '! xdp_on rcv va'
fi

# --- pinned map of the wrong layout ----------------------------------------------
say "a pinned map of the wrong layout"
WRONG=/sys/fs/bpf/$ST_ID-wrong
ST_PINS+=("$WRONG")
mkdir -p "$WRONG"
if ! command -v bpftool >/dev/null; then
	skip wrong_layout "bpftool is not installed"
elif ! bpftool map create "$WRONG/ipv4_map" type hash key 4 value 4 entries 4 name ipv4_map; then
	fail wrong_layout_setup "bpftool map create failed"
else
	# The sentence must say what to do about it, not only what is wrong.
	user_error wrong_layout_loader_refuses 'remove .*attach again' \
		net_ns rcv "$LOADER" --pin-dir "$WRONG" -d va
	check wrong_layout_loader_left_va_alone eval '! xdp_on rcv va'
	if [[ $(ls "$WRONG") == ipv4_map ]]; then
		pass wrong_layout_pins_untouched
	else
		fail wrong_layout_pins_untouched "expected only ipv4_map in $WRONG, got: $(ls "$WRONG")"
	fi
	user_error wrong_layout_rule_list 'remove .*attach again' "$RULE" --pin-dir "$WRONG" -l
	user_error wrong_layout_rule_add 'remove .*attach again' "$RULE" --pin-dir "$WRONG" -a 198.18.9.9 -p deny
fi

# --- notices, updates, order ------------------------------------------------------
say "notices, updating a rule, the order of -l"
# note_ok NAME WANT_LINE REGEX CMD...: succeeds, one "note:" on stderr
# matching REGEX, and -l then holds WANT_LINE.
note_ok() {
	local name=$1 want=$2 re=$3
	shift 3
	run_cli "$@"
	if ((RC)); then
		fail "$name" "exit $RC: $ERR"
	elif [[ $(grep -c . <<<"$ERR") != 1 ]] || ! grep -qE -- "note: .*$re" <<<"$ERR"; then
		fail "$name" "expected one note matching /$re/ on stderr, got: ${ERR:-(nothing)}"
	elif ! has_line "$(rule_lines)" "$want"; then
		fail "$name" "$WHY"
	else
		pass "$name"
	fi
}
note_ok host_bits_note_and_stored_as_network "198.18.7.0/24 deny" 'stored as 198.18.7.0/24' \
	rule -a 198.18.7.7/24 -p deny
note_ok v6_host_bits_note "2001:db8:7::/48 deny" 'stored as 2001:db8:7::/48' \
	rule -a 2001:db8:7::1/48 -p deny
note_ok v4_mapped_note_and_stored_as_v4 "198.18.0.9/32 deny" '198.18.0.9/32' \
	rule -a ::ffff:198.18.0.9 -p deny
if grep -qi ffff <<<"$(rule_lines)"; then
	fail v4_mapped_not_stored_as_v6 "-l shows an IPv6 rule for it: $(rule_lines)"
else
	pass v4_mapped_not_stored_as_v6
fi
before=$(rule_lines | wc -l)
run_cli rule -a 198.18.7.0/24 -p allow
if cli_ok && has_line "$(rule_lines)" "198.18.7.0/24 allow" &&
	[[ $(rule_lines | wc -l) == "$before" ]] && [[ $OUT == *updated* ]]; then
	pass update_changes_action
else
	fail update_changes_action "${WHY:-rules: $(rule_lines); stdout: $OUT}"
fi
run_cli rule -a 198.18.7.0/24 -p allow
if cli_ok && [[ $(rule_lines | wc -l) == "$before" ]]; then
	pass same_rule_again_is_no_change
else
	fail same_rule_again_is_no_change "${WHY:-rules: $(rule_lines)}"
fi

for r in 2001:db8::/32 198.18.200.0/24 2001:db8:5::1 198.18.0.0/15 198.18.1.0/24 \
	2001:db8::/33 198.18.200.0/23 198.19.255.255; do
	run_cli rule -a "$r" -p deny
	((RC)) && fail "sorted_setup_$r" "$ERR"
done
LIST=$(rule_lines)
SORTED=$("$PYTHON" -c '
import ipaddress, sys
rules = [l.split() for l in sys.stdin.read().splitlines() if l.strip()]
key = lambda r: (ipaddress.ip_network(r[0]).version,
                 int(ipaddress.ip_network(r[0]).network_address),
                 ipaddress.ip_network(r[0]).prefixlen)
print("\n".join(" ".join(r) for r in sorted(rules, key=key)))' <<<"$LIST")
check list_sorted_ipv4_before_ipv6 same "$SORTED" "$LIST" "sorted order (expected first, got second)"

st_finish
