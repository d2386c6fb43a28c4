#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Run one command inside a Debian 12 stock kernel under qemu, on this
# machine's own files (read-only 9p share of /, tmpfs overlay).
#
#   selftests/kernels/guest.sh [options] SERIES -- CMD [ARG...]
#
# SERIES is 5.10, 6.1 or 6.12: the newest linux-image package of that series
# in Debian's archive (5.10: bullseye's, the oldest kernel ipblock supports),
# fetched and unpacked into $BUILD/kernels on first use.
# CMD runs as root in the current directory (or -C DIR), with bash, with
# /tmp, /run, /sys/fs/bpf and the overlay writable (writes vanish with the
# guest).  Its output is streamed to stdout; the kernel's console goes to a
# log file, printed in part if the guest fails to start.
#
# Options:
#   -C DIR      working directory inside the guest (default: the current one)
#   -e VAR=VAL  set VAR for CMD (repeatable)
#   -m MEM      guest memory (default $GUEST_MEM or 3G)
#   -t SECONDS  hard timeout of the whole run (default $GUEST_TIMEOUT or 900)
#   -c FILE     keep the kernel console log in FILE
#   -q          no progress lines on stderr
#
# Exit status: CMD's own; 124 when the run timed out (qemu killed);
# 125 when the guest did not run CMD (boot failure, harness error);
# 77 when it cannot run here (no qemu, no kernel package): the reason is on
# stderr as "guest: unavailable: REASON".
#
# GUEST_ACCEL=kvm|tcg overrides the choice of accelerator (see kg_accel).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

usage() {
	sed -n '5,/^set -e/p' "$0" | sed -e '/^set -e/d' -e 's/^# \{0,1\}//' >&2
	exit 2
}

WORKDIR=$PWD
MEM=${GUEST_MEM:-3G}
TIMEOUT=${GUEST_TIMEOUT:-900}
CONSOLE_KEEP=
QUIET=0
ENVS=()
while getopts "C:e:m:t:c:qh" o; do
	case $o in
	C) WORKDIR=$(cd "$OPTARG" && pwd) ;;
	e) ENVS+=("$OPTARG") ;;
	m) MEM=$OPTARG ;;
	t) TIMEOUT=$OPTARG ;;
	c) CONSOLE_KEEP=$OPTARG ;;
	q) QUIET=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
(($# >= 1)) || usage
SERIES=$1
shift
[[ ${1:-} == -- ]] && shift
(($# >= 1)) || usage

note() { ((QUIET)) || echo "guest: $*" >&2; }
unavailable() {
	echo "guest: unavailable: $*" >&2
	exit 77
}
harness_fail() {
	echo "guest: $*" >&2
	exit 125
}

[[ $WORKDIR != *[[:space:]]* ]] || harness_fail "the working directory must not contain spaces: $WORKDIR"
QEMU=$(command -v qemu-system-x86_64) || unavailable "qemu-system-x86_64 is not installed (Debian package qemu-system-x86; make deps)"
command -v busybox >/dev/null || unavailable "busybox is not installed (Debian package busybox-static; make deps)"
((EUID == 0)) || unavailable "needs root (9p share of /, apt-get download into $KERNEL_CACHE)"

# One fetch or initramfs build at a time per cache; runs share the result.
mkdir -p "$KERNEL_CACHE"
exec 9>"$KERNEL_CACHE/.lock"
flock 9
if [[ $SERIES =~ ^(5\.10|6\.1|6\.12)$ ]]; then
	kg_fetch "$SERIES" || unavailable "$KG_WHY"
	REL=$KG_REL
elif [[ -f $KERNEL_CACHE/$SERIES/.unpacked ]]; then
	REL=$SERIES
else
	harness_fail "unknown kernel '$SERIES': give 5.10, 6.1, 6.12 or a release unpacked in $KERNEL_CACHE"
fi
KDIR=$KERNEL_CACHE/$REL
kg_initramfs "$REL" || harness_fail "initramfs for $REL: $KG_WHY"
INITRD=$KG_INITRD
exec 9>&-
ACCEL=$(kg_accel) || harness_fail "GUEST_ACCEL must be kvm or tcg"
read -r -a ACCEL_ARGS <<<"$ACCEL"

TMP=$(mktemp -d /tmp/ipbk-guest.XXXXXX)
QPID=
cleanup() {
	local pid
	trap - EXIT INT TERM
	[[ -n $QPID ]] && kill "$QPID" 2>/dev/null
	pid=$(cat "$TMP/qemu.pid" 2>/dev/null || true)
	[[ -n $pid ]] && kill "$pid" 2>/dev/null
	[[ -n $QPID ]] && wait "$QPID" 2>/dev/null
	[[ -n ${TAILPID:-} ]] && kill "$TAILPID" 2>/dev/null
	if [[ -n $CONSOLE_KEEP && -f $TMP/console ]]; then
		cp "$TMP/console" "$CONSOLE_KEEP" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir "$TMP/job"
{
	printf 'VER=%q\n' "$REL"
	printf 'MODDIR=%q\n' "$KDIR/modules"
	printf 'WORKDIR=%q\n' "$WORKDIR"
} >"$TMP/job/env"
{
	echo "set -e"
	for e in "${ENVS[@]}"; do
		[[ $e == [A-Za-z_]*=* ]] || harness_fail "-e wants VAR=VALUE, got '$e'"
		printf 'export %s=%q\n' "${e%%=*}" "${e#*=}"
	done
	echo "set +e"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$TMP/job/cmd"
: >"$TMP/out"
: >"$TMP/console"

note "booting $REL ($(sed 's/ .*//' "$KDIR/package")) with ${ACCEL%% -cpu*}, $MEM, timeout ${TIMEOUT}s"
START=$(date +%s.%N)
# timeout(1) forwards INT/TERM to qemu, which then exits; -k makes sure.
timeout -k 10 "$TIMEOUT" "$QEMU" -nodefaults -no-user-config -display none -no-reboot \
	"${ACCEL_ARGS[@]}" -smp 2 -m "$MEM" \
	-kernel "$KDIR/vmlinuz" -initrd "$INITRD" \
	-append "console=ttyS0 loglevel=4 panic=-1 mitigations=off ipbk.share=hostroot ipbk.job=$TMP/job" \
	-serial "file:$TMP/console" -serial "file:$TMP/out" \
	-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
	-nic none -pidfile "$TMP/qemu.pid" </dev/null >"$TMP/qemu.log" 2>&1 &
QPID=$!

# Stream the command's output, without the exit marker (sed -u: line by
# line; mawk would wait for a full input buffer).
tail -n +1 -s 0.2 -f --pid="$QPID" "$TMP/out" |
	sed -u -E -e '/^@@ipbk-exit [0-9]+$/d' -e 's/@@ipbk-exit [0-9]+$//' &
TAILPID=$!
set +e
wait "$QPID"
QRC=$?
QPID=
wait "$TAILPID"
TAILPID=
set -e
SECS=$(awk -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')

RC=$(sed -n 's/.*@@ipbk-exit \([0-9]\+\)$/\1/p' "$TMP/out" | tail -n 1)
if ((QRC == 124 || QRC == 137)); then
	echo "guest: TIMEOUT: $REL did not finish within ${TIMEOUT}s; qemu was killed (console: last lines below)" >&2
	tail -n 15 "$TMP/console" | sed 's/^/guest:   /' >&2
	exit 124
fi
if [[ -z $RC ]]; then
	echo "guest: $REL did not run the command (qemu exit $QRC after ${SECS}s); console and qemu messages:" >&2
	tail -n 30 "$TMP/console" | sed 's/^/guest:   /' >&2
	sed 's/^/guest:   /' "$TMP/qemu.log" >&2
	exit 125
fi
note "$REL: exit $RC after ${SECS}s (boot to power-off)"
exit "$RC"
