#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside a guest (scripts/run-tests.sh kernels boots it): each argument
# is KIND:NAME, a cmocka binary ($BUILD/tests/NAME), a selftest
# (selftests/NAME.sh), load:load, the gate: does this kernel's verifier
# accept $BUILD/ipblock.bpf.o at all?, or check:repo_untouched: did the
# tests write into the repository?  Around each one's output it prints
#
#   @@ipbk-test begin NAME
#   @@ipbk-test end NAME STATUS SECONDS
#
# which the host splits into one log per test and counts as it counts its
# own runs.  When the gate fails, the tests after it are not run (each
# would wait for the same rejection, under TCG about 40 s a load) and
#
#   @@ipbk-test abort REASON
#
# says why.  The repository is read-only here (an overlay whose writes
# vanish); the tests write only under /tmp, /run and /sys/fs/bpf.
set -u
cd "$(dirname "$0")/../.." || exit 1
REPO=$(pwd -P)

BUILD=${BUILD:-build}
export BUILD
# One test that hangs must not eat the other tests' time.
TEST_TIMEOUT=${TEST_TIMEOUT:-600}

KSERIES=$(uname -r | cut -d. -f1,2)

# load_gate: one PASS or FAIL line; on FAIL the verifier's reason under it.
load_gate() {
	local pin=/sys/fs/bpf/ipbk-load-gate out rc
	if ! command -v bpftool >/dev/null; then
		echo "SKIP: program_loads (bpftool is not installed)"
		return 0
	fi
	out=$(timeout -k 10 "$TEST_TIMEOUT" bpftool prog load "$BUILD/ipblock.bpf.o" "$pin" 2>&1)
	rc=$?
	rm -f "$pin"
	if ((rc == 0)); then
		echo "PASS: program_loads ($BUILD/ipblock.bpf.o on $(uname -r), $((SECONDS - start)) s under TCG)"
		return 0
	fi
	echo "FAIL: program_loads"
	echo "    bpftool prog load $BUILD/ipblock.bpf.o exited $rc on $(uname -r); the verifier said:"
	grep -E 'too large|processed [0-9]+ insns|invalid|not allowed|unreachable|back-edge|failed to load|Error' <<<"$out" |
		tail -n 6 | sed 's/^/    /'
	return 1
}

# repo_untouched: nothing was written under the repository: the overlay's
# upper layer (init.sh shows it at /.ipbk/upper) holds no file below it.
repo_untouched() {
	local upper=/.ipbk/upper/data written
	if [[ ! -d $upper ]]; then
		echo "SKIP: repository_untouched (the overlay's upper layer is not visible)"
		return 0
	fi
	written=$(cd "$upper" && find ".$REPO" ! -type d 2>/dev/null | sed 's/^\.//' | head -n 20)
	if [[ -z $written ]]; then
		echo "PASS: repository_untouched (the tests wrote nothing under $REPO)"
		return 0
	fi
	echo "FAIL: repository_untouched"
	echo "    written into the repository (a read-only share on the host; write under /tmp):"
	while IFS= read -r f; do
		echo "    $f"
	done <<<"$written"
	return 1
}

echo "# guest kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo)"
for spec; do
	kind=${spec%%:*}
	name=${spec#*:}
	echo "@@ipbk-test begin $name"
	start=$SECONDS
	case $kind in
	load)
		load_gate
		rc=$?
		echo
		echo "@@ipbk-test end $name $rc $((SECONDS - start))"
		if ((rc)); then
			echo "@@ipbk-test abort the kernel's verifier rejects $BUILD/ipblock.bpf.o (see kernel-$KSERIES/load)"
			exit 0
		fi
		continue
		;;
	check) repo_untouched ;;
	cmocka) timeout -k 10 "$TEST_TIMEOUT" "$BUILD/tests/$name" 2>&1 ;;
	selftest) timeout -k 10 "$TEST_TIMEOUT" bash "selftests/$name.sh" 2>&1 ;;
	*)
		echo "in-guest: unknown kind '$kind' in '$spec'"
		false
		;;
	esac
	rc=$?
	((rc == 124)) && echo "!!! $name killed after ${TEST_TIMEOUT}s (TEST_TIMEOUT) inside the guest"
	echo
	echo "@@ipbk-test end $name $rc $((SECONDS - start))"
done
