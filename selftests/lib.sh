# shellcheck shell=bash
# SPDX-License-Identifier: GPL-2.0
#
# Shared helpers of ipblock's selftests (selftests/test_*.sh, demo.sh).
#
# A test sources this file, calls st_init, runs checks that print one line
# each -- "PASS: name", "FAIL: name" (followed by indented details) or
# "SKIP: name (reason)" -- and ends with st_finish, which exits non-zero if
# anything failed.  Everything a test creates (namespaces, pins, temporary
# files, background processes) carries the prefix $ST_ID and is removed on
# exit, also when the test fails or is interrupted.

set -u

ST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ST_REPO=$(cd "$ST_DIR/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$ST_REPO/$BUILD
LOADER=$BUILD/ipblock-loader
RULE=$BUILD/ipblock-rule
# The python3 on PATH may be a pyenv without the system's modules.
# shellcheck disable=SC2034 # used by the tests that source this file
PYTHON=/usr/bin/python3

ST_ID=ipbt-$$
# The private pin directory: tests never touch a real installation.
PIN=/sys/fs/bpf/$ST_ID
ST_TMP=
ST_PASS=0
ST_FAIL=0
ST_SKIP=0
ST_NS=()
ST_PINS=()
ST_PIDS=()
ST_CLEANUP=()
# Why the last helper returned false; printed under a FAIL line.
WHY=

# --- results -----------------------------------------------------------------

pass() {
	ST_PASS=$((ST_PASS + 1))
	echo "PASS: $1"
}

# fail NAME [DETAIL...]: one FAIL line, then each detail indented.
fail() {
	local name=$1 line
	shift
	ST_FAIL=$((ST_FAIL + 1))
	echo "FAIL: $name"
	for line in "$@"; do
		[[ -n $line ]] && printf '%s\n' "$line" | sed 's/^/    /'
	done
	return 0
}

skip() {
	ST_SKIP=$((ST_SKIP + 1))
	echo "SKIP: $1 ($2)"
}

# check NAME CMD...: PASS if CMD succeeds, else FAIL with $WHY.
check() {
	local name=$1
	shift
	WHY=
	if "$@"; then
		pass "$name"
	else
		fail "$name" "$WHY"
	fi
}

# A section heading (not counted by the runner).
say() {
	echo "# $*"
}

st_finish() {
	echo "# $ST_PASS passed, $ST_FAIL failed, $ST_SKIP skipped"
	if ((ST_FAIL)); then
		exit 1
	fi
	exit 0
}

# --- set-up and clean-up -----------------------------------------------------

st_cleanup() {
	local i pid ns
	set +e
	trap - EXIT INT TERM
	for ((i = ${#ST_CLEANUP[@]} - 1; i >= 0; i--)); do
		eval "${ST_CLEANUP[i]}" >/dev/null 2>&1
	done
	for pid in "${ST_PIDS[@]}"; do
		kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	done
	for ns in "${ST_NS[@]}"; do
		# Deleting the namespace destroys its veths and so detaches XDP.
		ip netns del "$ns" 2>/dev/null
	done
	for i in "${ST_PINS[@]}"; do
		rm -rf "$i"
	done
	[[ -n $ST_TMP ]] && rm -rf "$ST_TMP"
}

# on_exit CMD: run CMD (a string) at clean-up, before namespaces go.
on_exit() {
	ST_CLEANUP+=("$1")
}

# st_init: check the prerequisites and arm the clean-up.  Without root the
# whole test is one SKIP; without the built CLIs it is one FAIL.
st_init() {
	local tool
	if ((EUID != 0)); then
		skip "$(basename "$0" .sh)" "needs root: network namespaces, XDP and BPF maps"
		exit 0
	fi
	for tool in "$LOADER" "$RULE"; do
		if [[ ! -x $tool ]]; then
			fail "$(basename "$0" .sh)" "$tool is missing: run make first"
			exit 1
		fi
	done
	for tool in ip nsenter ping "$@"; do
		if ! command -v "$tool" >/dev/null; then
			skip "$(basename "$0" .sh)" "$tool is not installed"
			exit 0
		fi
	done
	trap st_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	ST_TMP=$(mktemp -d "/tmp/$ST_ID.XXXXXX")
	ST_PINS+=("$PIN")
}

# setup_fail WHAT: set-up went wrong; report it and stop.
setup_fail() {
	fail "setup" "$1"
	st_finish
}

# --- namespaces and links ----------------------------------------------------

# ns NAME: the real name of the test's namespace NAME.
ns() {
	echo "$ST_ID-$1"
}

# stop_pid PID: SIGTERM, up to 15 s for it to exit, then SIGKILL; returns
# its exit status (a service that had to be killed fails its check).
stop_pid() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
}

# ns_add NAME...: create namespaces with loopback up and no IPv6 DAD.
ns_add() {
	local n
	for n in "$@"; do
		ip netns add "$ST_ID-$n" || setup_fail "cannot create namespace $ST_ID-$n"
		ST_NS+=("$ST_ID-$n")
		ip -n "$ST_ID-$n" link set lo up
		ip netns exec "$ST_ID-$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 \
			net.ipv6.conf.default.accept_dad=0 >/dev/null
	done
}

# in_ns NAME CMD...: run CMD in namespace NAME (fresh /sys: pins not visible).
in_ns() {
	local n=$1
	shift
	ip netns exec "$ST_ID-$n" "$@"
}

# net_ns NAME CMD...: run CMD in NAME's network namespace only, so the pins
# under /sys/fs/bpf stay visible (the CLIs need this).
net_ns() {
	local n=$1
	shift
	nsenter --net="/run/netns/$ST_ID-$n" "$@"
}

# veth NS1 IF1 NS2 IF2: a veth pair between two namespaces, both ends up.
veth() {
	ip -n "$ST_ID-$1" link add "$2" type veth peer name "$4" netns "$ST_ID-$3" ||
		setup_fail "cannot create veth $2 <-> $4"
	ip -n "$ST_ID-$1" link set "$2" up
	ip -n "$ST_ID-$3" link set "$4" up
}

# addr NS IF ADDR/LEN...: add addresses (IPv6 without DAD).
addr() {
	local n=$1 dev=$2 a
	shift 2
	for a in "$@"; do
		if [[ $a == *:* ]]; then
			ip -n "$ST_ID-$n" addr add "$a" dev "$dev" nodad
		else
			ip -n "$ST_ID-$n" addr add "$a" dev "$dev"
		fi || setup_fail "cannot add $a to $dev"
	done
}

# mac NS IF: the interface's MAC address.
mac() {
	ip -n "$ST_ID-$1" -o link show "$2" | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'
}

# --- the CLIs ----------------------------------------------------------------

# loader NS ARGS...: ipblock-loader in NS's network namespace, private pins.
loader() {
	local n=$1
	shift
	net_ns "$n" "$LOADER" --pin-dir "$PIN" "$@"
}

# rule ARGS...: ipblock-rule on the private pins.
rule() {
	"$RULE" --pin-dir "$PIN" "$@"
}

# strip_hits: the lines of ipblock-rule -l without the per-rule counters it
# appends to a rule that has judged packets (they move with every packet).
strip_hits() {
	sed -E -e 's/;? [0-9]+ packets?, [0-9]+ bytes, last hit [0-9TZ:-]+$//' -e 's/ #$//'
}

# rule_lines: the "CIDR action" lines of ipblock-rule -l, without comments
# and counters.
rule_lines() {
	rule -l 2>&1 | grep -v '^#' | strip_hits
}

# rule_packets CIDR: the packets rule CIDR has judged, from its -l counters (0: none).
rule_packets() {
	local n
	n=$(rule -l 2>/dev/null | awk -v c="$1" '$1 == c' | grep -oE '[0-9]+ packets?,' |
		grep -oE '^[0-9]+')
	echo "${n:-0}"
}

# counter NAME: packets in the counter line starting with NAME ("dropped",
# "passed (allow rule)", "passed (no rule)", "passed (not IP").
counter() {
	rule -l 2>/dev/null | awk -v k="#   $1" 'index($0, k) == 1 {
		for (i = 1; i <= NF; i++) if ($i == "packets") { print $(i - 1); exit }
	}'
}

# run_cli CMD...: run a command, keep stdout, stderr and status in OUT, ERR, RC.
OUT=
ERR=
RC=0
run_cli() {
	local o="$ST_TMP/out" e="$ST_TMP/err"
	"$@" >"$o" 2>"$e"
	RC=$?
	OUT=$(cat "$o")
	ERR=$(cat "$e")
}

# --- traffic -----------------------------------------------------------------

# ping_recv NS DST [SRC]: how many of 3 echo requests were answered.
ping_recv() {
	local n=$1 dst=$2 src=${3:-} out
	out=$(in_ns "$n" ping -n -q -c 3 -W 1 -i 0.2 ${src:+-I "$src"} "$dst" 2>&1)
	sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$out" | head -n 1 | grep . || echo 0
}

# ping_passes NS DST [SRC]: every echo request answered.
ping_passes() {
	local got
	got=$(ping_recv "$@")
	[[ $got == 3 ]] && return 0
	WHY="ping ${3:+-I $3 }$2 from $(ns "$1"): expected 3 of 3 replies, got $got"
	return 1
}

# ping_dropped NS DST [SRC]: no echo request answered.
ping_dropped() {
	local got
	got=$(ping_recv "$@")
	[[ $got == 0 ]] && return 0
	WHY="ping ${3:+-I $3 }$2 from $(ns "$1"): expected 0 of 3 replies, got $got"
	return 1
}

# --- assertions --------------------------------------------------------------

# cli_ok: the last run_cli exited 0.
cli_ok() {
	((RC == 0)) && return 0
	WHY="expected exit 0, got $RC; stderr: ${ERR:-(empty)}"
	return 1
}

# cli_rc CODE: the last run_cli exited with CODE (the README's exit-code table).
cli_rc() {
	((RC == $1)) && return 0
	WHY="expected exit $1, got $RC; stderr: ${ERR:-(empty)}"
	return 1
}

# cli_error [REGEX]: the last run_cli failed with exactly one stderr line,
# matching REGEX (extended, case-insensitive) when given.
cli_error() {
	local re=${1:-} lines
	lines=$(grep -c . <<<"$ERR")
	if ((RC == 0)); then
		WHY="expected a non-zero exit, got 0; stdout: ${OUT:-(empty)}; stderr: ${ERR:-(empty)}"
		return 1
	fi
	if ((lines != 1)); then
		WHY="expected exactly one line on stderr, got $lines:
$ERR"
		return 1
	fi
	if [[ -n $re ]] && ! grep -qiE -- "$re" <<<"$ERR"; then
		WHY="stderr does not match /$re/: $ERR"
		return 1
	fi
	return 0
}

# same TEXT1 TEXT2 WHAT: equal, or say how they differ.
same() {
	[[ $1 == "$2" ]] && return 0
	WHY="$3 changed:
--- before
$1
--- after
$2"
	return 1
}

# has_line TEXT LINE: TEXT holds exactly LINE.
has_line() {
	grep -qxF -- "$2" <<<"$1" && return 0
	WHY="expected a line '$2' in:
$1"
	return 1
}
