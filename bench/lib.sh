# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers of the bench scripts (bench/run.sh, bench/bench_droprate.sh,
# bench/bench_memory.sh, bench/bench_import.sh).
#
# Everything a script makes -- namespaces, pins, temporary files, background
# processes -- is registered here and removed on exit, also on an error or
# an interrupt.  Names carry $BL_ID (ipblock-bench-PID) so that two runs, or
# a run and the selftests, never meet.

set -u

BL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BL_REPO=$(cd "$BL_DIR/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$BL_REPO/$BUILD
LOADER=$BUILD/ipblock-loader
RULE=$BUILD/ipblock-rule
TG=$BUILD/bench/trafficgen
GNU_TIME=/usr/bin/time

BL_ID=ipblock-bench-$$
BL_TMP=
BL_NS=()
BL_PINS=()
BL_PIDS=()
BL_CLEANUP=()
BL_T0=${EPOCHREALTIME/./}

# --- messages ----------------------------------------------------------------

# log MSG: progress on stderr, with the seconds since the script started.
log() {
	local now=${EPOCHREALTIME/./}
	printf '[%6.1fs] %s\n' "$(((now - BL_T0) / 100000))e-1" "$*" >&2
}

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# usage LINES OPT: the script's header comment LINES (sed's "3,12") as help
# for getopts' OPT; exits 0 for -h, 2 for a bad option.
usage() {
	sed -n "$1p" "$0" | sed 's/^# \{0,1\}//'
	[[ $2 == h ]] && exit 0
	exit 2
}

# --- clean-up ----------------------------------------------------------------

# on_exit CMD: run CMD (a string) at clean-up, newest first, before the
# namespaces go.
on_exit() {
	BL_CLEANUP+=("$1")
}

bl_cleanup() {
	local i pid ns
	set +e
	trap - EXIT INT TERM
	for pid in "${BL_PIDS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	for ((i = ${#BL_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${BL_CLEANUP[i]}" >/dev/null 2>&1
	done
	for ns in "${BL_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	for i in "${BL_PINS[@]}"; do
		rm -rf "$i"
	done
	[[ -n $BL_TMP ]] && rm -rf "$BL_TMP"
}

# bl_init TOOL...: root and TOOLs, a temporary directory; arm the
# clean-up.  The programs the bench builds are checked by bl_need_built,
# after bench/run.sh has built them.
bl_init() {
	local t
	((EUID == 0)) || die "needs root (namespaces, XDP, BPF maps, netfilter)"
	for t in ip nsenter taskset "$@"; do
		command -v "$t" >/dev/null || die "$t is not installed (make deps installs it)"
	done
	trap bl_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	BL_TMP=$(mktemp -d "/tmp/$BL_ID.XXXXXX")
}

# bl_need_built PROGRAM...: each built program is there.  A script run on
# its own says how to build them; `make bench` builds them before it runs.
bl_need_built() {
	local t missing=()
	for t in "$@"; do
		[[ -x $t ]] || missing+=("${t#"$BL_REPO"/}")
	done
	((${#missing[@]} == 0)) && return 0
	die "${missing[*]} not built: run 'make BUILD=${BUILD#"$BL_REPO"/} bench-build' first ('make bench' builds them itself)"
}

# bl_bg CMD...: start CMD in the background; its pid is in BL_BG.
BL_BG=
bl_bg() {
	"$@" &
	BL_BG=$!
	BL_PIDS+=("$BL_BG")
}

# bl_wait PID: wait for a background command and forget it.
bl_wait() {
	local pid=$1 i rc=0
	wait "$pid" || rc=$?
	for i in "${!BL_PIDS[@]}"; do
		[[ ${BL_PIDS[i]} == "$pid" ]] && unset 'BL_PIDS[i]'
	done
	return $rc
}

# --- namespaces --------------------------------------------------------------

# ns NAME: the full name of the run's namespace NAME.
ns() {
	echo "$BL_ID-$1"
}

# ns_add NAME: a namespace with loopback up.
ns_add() {
	ip netns add "$BL_ID-$1" || die "cannot create namespace $BL_ID-$1"
	BL_NS+=("$BL_ID-$1")
	ip -n "$BL_ID-$1" link set lo up
}

# ns_path NAME: the namespace's file, for nsenter --net= in commands that
# must be programs (under GNU time, timeout, or in the background).
ns_path() {
	echo "/run/netns/$BL_ID-$1"
}

# net NAME CMD...: CMD in NAME's network namespace only, so the pins
# under /sys/fs/bpf stay visible.
net() {
	local n=$1
	shift
	nsenter --net="/run/netns/$BL_ID-$n" "$@"
}

# sysfs NAME CMD...: CMD with NAME's own /sys (for /sys/class/net/*).
sysfs() {
	local n=$1
	shift
	ip netns exec "$BL_ID-$n" "$@"
}

# pin_dir NAME: a private pin directory, removed on exit, in PIN (not
# printed: a command substitution would lose the registration).
PIN=
pin_dir() {
	PIN=/sys/fs/bpf/$BL_ID-$1
	BL_PINS+=("$PIN")
}

# rx_packets NS DEV: the interface's received-packets counter.
rx_packets() {
	ip -n "$BL_ID-$1" -s link show dev "$2" 2>/dev/null |
		awk '/RX:/ { getline; print $2; exit }'
}

# --- numbers -----------------------------------------------------------------

# now_us: microseconds, without a fork.
now_us() {
	echo "${EPOCHREALTIME/./}"
}

# stats N...: "median min max" of the numbers.
stats() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
		END {
			if (!NR) { print "nan nan nan"; exit }
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			print m, v[1], v[NR]
		}'
}

# ratio A B [DIGITS]: A / B, or "–" when B is 0 or missing.
ratio() {
	awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN {
		if (b + 0 == 0 || a == "" || a == "nan") print "–"; else printf "%.*f\n", d, a / b }'
}

# fmt N [DIGITS]: a number with fixed decimals ("–" if missing).
fmt() {
	awk -v a="$1" -v d="${2:-2}" 'BEGIN { if (a == "" || a == "nan") print "–"; else printf "%.*f\n", d, a }'
}

# timed_run OUT CMD...: run CMD (output discarded) under GNU time; OUT
# gets "wall_s peak_rss_kb".  Fails as CMD fails.
timed_run() {
	local out=$1
	shift
	"$GNU_TIME" -f '%e %M' -o "$out" "$@" >/dev/null 2>"$out.err"
}
