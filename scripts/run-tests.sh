#!/usr/bin/env bash
# Run ipblock's tests and print one closing line: "N passed, N failed".
#
#   scripts/run-tests.sh all        build every flavour, run everything
#   scripts/run-tests.sh unit       cmocka tests of $BUILD (plain build)
#   scripts/run-tests.sh selftests  selftests/test_*.sh against $BUILD
#
# cmocka binaries are counted by their own summaries, selftests by their
# "PASS:"/"FAIL:" lines; a program that dies without a summary counts as one
# failure, so a crash can never read as success.
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=${1:-all}
BUILD=${BUILD:-build}
MAKE=${MAKE:-make}
JOBS=${JOBS:-$(nproc)}
LOGDIR=${LOGDIR:-$BUILD/test-logs}
ONLY=${ONLY:-} # optional regex: run only tests whose name matches

passed=0
failed=0
skipped=0
failures=()

mkdir -p "$LOGDIR"

mkvar() { $MAKE --no-print-directory -s print-"$1"; }

# run_cmocka LABEL CMD...: run one cmocka binary, add its counts.
run_cmocka() {
	local label=$1
	shift
	local log="$LOGDIR/${label//\//_}.log"
	echo "=== $label"
	"$@" >"$log" 2>&1
	local rc=$?
	cat "$log"
	local run pass skip
	run=$(sed -n 's/^\[==========\] \([0-9]\+\) test(s) run\.$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	pass=$(sed -n 's/^\[  PASSED  \] \([0-9]\+\) test(s)\.$/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	skip=$(sed -n 's/^\[  SKIPPED \] \([0-9]\+\) test(s).*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	local fail=$((run - pass - skip))
	if ((run == 0 || (rc != 0 && fail == 0))); then
		# Died before or after its summary: count the binary as one failure.
		fail=$((fail + 1))
		echo "!!! $label exited with status $rc without a clean cmocka summary"
	fi
	passed=$((passed + pass))
	skipped=$((skipped + skip))
	failed=$((failed + fail))
	((fail > 0)) && failures+=("$label")
}

# run_selftest SCRIPT: run one selftest script, count its PASS/FAIL lines.
run_selftest() {
	local script=$1 label
	label="selftest/$(basename "$script" .sh)"
	local log="$LOGDIR/${label//\//_}.log"
	echo "=== $label"
	BUILD=$BUILD timeout 900 bash "$script" >"$log" 2>&1
	local rc=$?
	cat "$log"
	local pass fail skip
	pass=$(grep -c '^PASS: ' "$log")
	fail=$(grep -c '^FAIL: ' "$log")
	skip=$(grep -c '^SKIP: ' "$log")
	if ((rc != 0 && fail == 0)); then
		fail=1
		echo "!!! $label exited with status $rc without reporting a failure"
	fi
	if ((pass + fail + skip == 0)); then
		fail=1
		echo "!!! $label reported no result"
	fi
	passed=$((passed + pass))
	failed=$((failed + fail))
	skipped=$((skipped + skip))
	((fail > 0)) && failures+=("$label")
}

want() { [[ -z $ONLY || $1 =~ $ONLY ]]; }

# unit_flavour DIR FLAVOUR LIST...: run the listed test binaries of one build.
unit_flavour() {
	local dir=$1 flavour=$2
	shift 2
	local t
	for t in "$@"; do
		want "$t" || continue
		if [[ $flavour == valgrind ]]; then
			run_cmocka "valgrind/$t" valgrind -q --error-exitcode=99 --leak-check=full \
				--errors-for-leak-kinds=definite,indirect --trace-children=yes \
				"$dir/tests/$t"
		else
			run_cmocka "$flavour/$t" env TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
				ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
				UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" "$dir/tests/$t"
		fi
	done
}

all_tests() {
	local t
	for t in tests/test_*.c; do
		basename "$t" .c
	done
}

build_flavour() {
	local dir=$1 san=$2
	echo "=== build ($dir${san:+, $san})"
	if ! $MAKE --no-print-directory -j"$JOBS" BUILD="$dir" SAN="$san" test-build >"$LOGDIR/build-${san:-plain}.log" 2>&1; then
		cat "$LOGDIR/build-${san:-plain}.log"
		echo "!!! build failed ($dir${san:+, $san})"
		failed=$((failed + 1))
		failures+=("build${san:+-$san}")
		return 1
	fi
}

mode_unit() {
	mapfile -t tests < <(all_tests)
	unit_flavour "$BUILD" plain "${tests[@]}"
}

mode_selftests() {
	local s
	for s in selftests/test_*.sh; do
		[[ -e $s ]] || continue
		want "$(basename "$s" .sh)" || continue
		run_selftest "$s"
	done
}

mode_all() {
	mapfile -t tests < <(all_tests)
	local skip tsan vg t asan_list=()
	read -r -a skip <<<"$(mkvar ASAN_SKIP)"
	read -r -a tsan <<<"$(mkvar TSAN_TESTS)"
	read -r -a vg <<<"$(mkvar VALGRIND_TESTS)"
	for t in "${tests[@]}"; do
		[[ " ${skip[*]} " == *" $t "* ]] || asan_list+=("$t")
	done

	if build_flavour "$BUILD" ""; then
		unit_flavour "$BUILD" plain "${tests[@]}"
		command -v valgrind >/dev/null && unit_flavour "$BUILD" valgrind "${vg[@]}"
		mode_selftests
	fi
	if build_flavour "$BUILD/asan" asan; then
		unit_flavour "$BUILD/asan" asan "${asan_list[@]}"
	fi
	if build_flavour "$BUILD/tsan" tsan; then
		unit_flavour "$BUILD/tsan" tsan "${tsan[@]}"
	fi
}

case $MODE in
all) mode_all ;;
unit) mode_unit ;;
selftests) mode_selftests ;;
*)
	echo "usage: $0 all|unit|selftests" >&2
	exit 2
	;;
esac

echo
if ((${#failures[@]})); then
	echo "failed: ${failures[*]}"
fi
if ((skipped)); then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
((failed == 0))
