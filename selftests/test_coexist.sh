#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# ipblock beside another XDP program (xdp-tools' xdp-filter) on the same
# interface.  With libxdp's multi-program dispatcher both must keep working.
# Kernels that refuse freplace programs (BPF_PROG_TYPE_EXT) cannot load the
# dispatcher: libxdp then attaches single "legacy" programs, and ipblock must
# refuse with one clear line, leaving xdp-filter filtering and the rule set
# untouched; the coexistence proper is then reported as SKIP, never as PASS.
# COEXIST_DISPATCHER=required (set by the kernel matrix, whose kernels
# accept freplace) turns that SKIP into a FAIL: there the dispatcher path
# must really run.
#
# xdp-filter pins its maps at a fixed path (/sys/fs/bpf/xdp-filter) and
# libxdp keeps its state under /sys/fs/bpf/xdp, so the test runs in a private
# mount namespace with a bpffs of its own: a real xdp-filter or ipblock
# installation on this machine is never touched, parallel runs never meet.
#
#   snd (va) 198.18.0.1 .3 .4/24, 2001:db8::1 ::3 ::4/64  -- rcv (vb) .2, ::2
#   .3 / ::3: xdp-filter's source, .4 / ::4: ipblock's deny, .1 / ::1: clean
# Helpers run through check() look unreachable to shellcheck; st_init's
# arguments are tool names, not the script's.
# shellcheck disable=SC2317,SC2119
set -u

# Re-run in a new mount namespace whose /sys/fs/bpf is a fresh bpffs.  The
# mount is made by the wrapper, inside that namespace, so no path through
# this script mounts over the machine's own /sys/fs/bpf; the wrapper marks
# success in IPBT_PRIVATE_BPFFS.
if [[ -z ${IPBT_PRIVATE_BPFFS:-} ]] && ((EUID == 0)) && command -v unshare >/dev/null; then
	IPBT_OUTER_MNTNS=$(readlink /proc/self/ns/mnt)
	# shellcheck disable=SC2016 # expanded by the wrapper's sh
	exec env IPBT_OUTER_MNTNS="$IPBT_OUTER_MNTNS" IPBT_PRIVATE_BPFFS=tried \
		unshare --mount --propagation private -- sh -c \
		'mount -t bpf bpf /sys/fs/bpf && export IPBT_PRIVATE_BPFFS=mounted; exec bash "$0" "$@"' \
		"$0" "$@"
fi

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init xdp-filter xdp-loader
# Go on only in the wrapper's namespace, on its fresh bpffs (nothing there
# but the kernel's debug files); otherwise xdp-filter's pins would not be
# isolated from a real installation.
bpffs_fresh() {
	local f
	for f in /sys/fs/bpf/* /sys/fs/bpf/.[!.]*; do
		[[ -e $f ]] || continue
		[[ ${f##*/} == maps.debug || ${f##*/} == progs.debug ]] || return 1
	done
}
ST_MNTNS=$(readlink /proc/self/ns/mnt)
if [[ ${IPBT_PRIVATE_BPFFS:-} != mounted || -z $ST_MNTNS ||
	$ST_MNTNS == "${IPBT_OUTER_MNTNS:-}" ]] || ! bpffs_fresh; then
	skip coexist "no private mount namespace with a fresh bpffs (unshare or mount failed)"
	st_finish
fi

ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24 198.18.0.3/24 198.18.0.4/24 \
	2001:db8::1/64 2001:db8::3/64 2001:db8::4/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64
on_exit "net_ns rcv xdp-filter unload --all"
on_exit "rm -rf /sys/fs/bpf/xdp-filter"

# xdp_progs: the XDP programs xdp-loader reports on vb.
xdp_progs() {
	net_ns rcv xdp-loader status vb 2>&1
}

# ipblock_on_vb: ipblock-loader -s lists vb.
ipblock_on_vb() {
	loader rcv -s 2>/dev/null | awk '$1 == "vb" && $3 == "program"' | grep -q . && return 0
	WHY="ipblock-loader -s does not list vb:
$(loader rcv -s 2>&1)"
	return 1
}

ipblock_not_on_vb() {
	ipblock_on_vb || return 0
	WHY="ipblock-loader -s lists vb as attached:
$(loader rcv -s 2>&1)"
	return 1
}

# xdp_filter_works NAME: xdp-filter drops .3 / ::3, passes .1 / ::1.
xdp_filter_works() {
	local name=$1
	check "${name}_xdp_filter_drops_v4" ping_dropped snd 198.18.0.2 198.18.0.3
	check "${name}_xdp_filter_drops_v6" ping_dropped snd 2001:db8::2 2001:db8::3
	check "${name}_clean_source_passes" ping_passes snd 198.18.0.2 198.18.0.1
}

# ipblock_works NAME: ipblock drops .4 / ::4.
ipblock_works() {
	local name=$1
	check "${name}_ipblock_drops_v4" ping_dropped snd 198.18.0.2 198.18.0.4
	check "${name}_ipblock_drops_v6" ping_dropped snd 2001:db8::2 2001:db8::4
}

say "ipblock alone: pin the rule set, then detach"
run_cli loader rcv -d vb
((RC)) && setup_fail "ipblock-loader -d vb: $ERR"
for c in 198.18.0.4 2001:db8::4; do
	run_cli rule -a "$c" -p deny
	((RC)) && setup_fail "ipblock-rule -a $c -p deny: $ERR"
done
ipblock_works alone
run_cli loader rcv -d vb -u
((RC)) && setup_fail "ipblock-loader -d vb -u: $ERR"
BASE=$(rule_lines)

say "xdp-filter first, then ipblock"
run_cli net_ns rcv xdp-filter load -v vb
if ((RC)); then
	fail xdp_filter_loads "xdp-filter load vb: exit $RC: $ERR"
	st_finish
fi
pass xdp_filter_loads
FILTER_LOAD_LOG=$ERR
for c in 198.18.0.3 2001:db8::3; do
	run_cli net_ns rcv xdp-filter ip -m src "$c"
	((RC)) && fail "xdp_filter_ip_$c" "xdp-filter ip -m src $c: exit $RC: $ERR"
done
xdp_filter_works xdp_filter_alone

# no_dispatcher NAME: the coexistence proper could not be checked.
no_dispatcher() {
	if [[ ${COEXIST_DISPATCHER:-} == required ]]; then
		fail "$1" "libxdp's dispatcher is unavailable on $(uname -r), where it is required" \
			"(COEXIST_DISPATCHER=required); xdp-filter load said:" \
			"$(grep -iE 'dispatcher|falling back|freplace' <<<"$FILTER_LOAD_LOG")"
	else
		skip "$1" "kernel refuses freplace: libxdp dispatcher unavailable"
	fi
}

# The dispatcher is there if xdp-loader shows it on vb.
DISPATCHER=0
grep -q xdp_dispatcher <<<"$(xdp_progs)" && DISPATCHER=1
if ((DISPATCHER)); then
	say "libxdp's dispatcher works here: both programs must run"
else
	say "libxdp fell back to a single legacy program (dispatcher unavailable):"
	grep -iE 'dispatcher|falling back' <<<"$FILTER_LOAD_LOG" | sed 's/^/#   /'
fi

run_cli loader rcv -d vb
if ((DISPATCHER)); then
	if cli_ok; then
		pass ipblock_attaches_beside_xdp_filter
		check both_programs_listed eval 'xdp_progs | grep -q ipblock_xdp && xdp_progs | grep -q xdpfilt'
		check ipblock_status_lists_vb ipblock_on_vb
		xdp_filter_works together
		ipblock_works together
		check together_rules_unchanged same "$BASE" "$(rule_lines)" "the rule set"
		run_cli loader rcv -d vb -u
		if cli_ok; then
			pass ipblock_detaches_from_dispatcher
		else
			fail ipblock_detaches_from_dispatcher "$WHY"
		fi
		xdp_filter_works after_ipblock_detach
		check after_ipblock_detach_its_source_passes ping_passes snd 198.18.0.2 198.18.0.4
	else
		fail ipblock_attaches_beside_xdp_filter "$WHY"
	fi
else
	check ipblock_refuses_with_one_clear_line \
		cli_error "already runs XDP program 'xdpfilt[a-z_]*'.*dispatcher"
	check refusal_leaves_ipblock_detached ipblock_not_on_vb
	check refusal_leaves_xdp_filter_attached eval 'xdp_progs | grep -q xdpfilt'
	xdp_filter_works after_refusal
	check refusal_leaves_rules_unchanged same "$BASE" "$(rule_lines)" "the rule set"
	# Detaching ipblock must not take xdp-filter's program with it.
	run_cli loader rcv -d vb -u
	check detach_refuses_other_program cli_error "ipblock is not attached to vb"
	check detach_leaves_xdp_filter_attached eval 'xdp_progs | grep -q xdpfilt'
	xdp_filter_works after_detach_attempt
	no_dispatcher coexistence
fi

say "ipblock first, then xdp-filter"
run_cli net_ns rcv xdp-filter unload vb
if cli_ok && ! xdp_progs | grep -q xdpfilt; then
	pass xdp_filter_unloads
else
	fail xdp_filter_unloads "${WHY:-still attached: $(xdp_progs)}"
fi
run_cli loader rcv -d vb
if ((RC)); then
	fail ipblock_attaches_alone "exit $RC: $ERR"
	st_finish
fi
pass ipblock_attaches_alone
run_cli net_ns rcv xdp-filter load vb
if ((DISPATCHER)); then
	if ((RC == 0)); then
		pass xdp_filter_loads_beside_ipblock
		net_ns rcv xdp-filter ip -m src 198.18.0.3 >/dev/null 2>&1
		net_ns rcv xdp-filter ip -m src 2001:db8::3 >/dev/null 2>&1
		xdp_filter_works second_together
		check second_together_both_in_the_dispatcher eval \
			'xdp_progs | grep -q xdp_dispatcher && xdp_progs | grep -q ipblock_xdp && xdp_progs | grep -q xdpfilt'
	else
		fail xdp_filter_loads_beside_ipblock "exit $RC: $ERR"
	fi
	check second_together_ipblock_listed ipblock_on_vb
	ipblock_works second_together
else
	# Whatever xdp-filter does without a dispatcher, ipblock keeps working.
	if ((RC == 0)); then
		say "xdp-filter load succeeded without a dispatcher: $(xdp_progs | grep vb)"
	else
		say "xdp-filter load refused (exit $RC): $(tail -n 1 <<<"$ERR")"
	fi
	check ipblock_survives_xdp_filter_load ipblock_on_vb
	ipblock_works after_xdp_filter_attempt
	check ipblock_rules_unchanged_after_xdp_filter_attempt same "$BASE" "$(rule_lines)" "the rule set"
	no_dispatcher coexistence_reverse_order
fi
net_ns rcv xdp-filter unload vb >/dev/null 2>&1
run_cli loader rcv -d vb -u
check ipblock_detaches cli_ok

st_finish
