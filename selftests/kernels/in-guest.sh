#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Runs inside a guest (scripts/run-tests.sh kernels boots it): each argument
# is KIND:NAME, a cmocka binary ($BUILD/tests/NAME) or a selftest
# (selftests/NAME.sh).  Around each one's output it prints
#
#   @@ipbk-test begin NAME
#   @@ipbk-test end NAME STATUS SECONDS
#
# which the host splits into one log per test and counts as it counts its
# own runs.  The repository is read-only here (an overlay whose writes
# vanish); the tests write only under /tmp, /run and /sys/fs/bpf.
set -u
cd "$(dirname "$0")/../.."

BUILD=${BUILD:-build}
export BUILD
# One test that hangs must not eat the other tests' time.
TEST_TIMEOUT=${TEST_TIMEOUT:-600}

echo "# guest kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print int($2 / 1024) " MiB" }' /proc/meminfo)"
for spec; do
	kind=${spec%%:*}
	name=${spec#*:}
	echo "@@ipbk-test begin $name"
	start=$SECONDS
	case $kind in
	cmocka) timeout -k 10 "$TEST_TIMEOUT" "$BUILD/tests/$name" 2>&1 ;;
	selftest) timeout -k 10 "$TEST_TIMEOUT" bash "selftests/$name.sh" 2>&1 ;;
	*) echo "in-guest: unknown kind '$kind' in '$spec'" ;;
	esac
	rc=$?
	((rc == 124)) && echo "!!! $name killed after ${TEST_TIMEOUT}s (TEST_TIMEOUT) inside the guest"
	echo
	echo "@@ipbk-test end $name $rc $((SECONDS - start))"
done
