#!/usr/bin/env bash
# Run ipblock's tests and print one closing line: "N passed, N failed".
#
#   scripts/run-tests.sh all        build every flavour, run everything
#   scripts/run-tests.sh unit       cmocka tests of $BUILD (plain build)
#   scripts/run-tests.sh selftests  selftests/test_*.sh against $BUILD
#   scripts/run-tests.sh kernels    the kernel matrix: the tests that load the
#                                   program, inside Debian 12's 6.1 and 6.12
#                                   under qemu (KERNELS="6.1 6.12")
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
	count_cmocka "$label" "$log" "$rc"
}

# count_cmocka LABEL LOG STATUS: add the counts of a cmocka run's log.
count_cmocka() {
	local label=$1 log=$2 rc=$3
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
	count_selftest "$label" "$log" "$rc"
}

# count_selftest LABEL LOG STATUS: add the PASS/FAIL/SKIP lines of a log.
count_selftest() {
	local label=$1 log=$2 rc=$3
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

# --- the kernel matrix ---------------------------------------------------------
# The tests that load the program run again inside Debian 12's stock kernels,
# booted under qemu by selftests/kernels/guest.sh on this build (read-only).
# Labels name the kernel: kernel-6.1/test_prog.
KERNELS=${KERNELS-5.10 6.1 6.12}
GUEST_TESTS=(cmocka:test_verifier cmocka:test_prog cmocka:test_droplog cmocka:test_lookup cmocka:test_bulk
	selftest:test_replace selftest:test_traffic selftest:test_vlan selftest:test_coexist)
# Debian 11's 5.10, the oldest kernel ipblock supports: that the verifier
# takes the program and it judges (the verdict table, the bulk paths of
# the tries without batch operations, real traffic); the rest is the same
# code as on 6.1.
GUEST_TESTS_5_10=(cmocka:test_verifier cmocka:test_prog cmocka:test_droplog cmocka:test_lookup
	selftest:test_traffic)
# Cut for the guest, where TCG makes CPU work 10-40x slower (measured on
# 6.12 under TCG, uncut: test_lookup 259 s, test_bulk 109 s, test_replace
# 152 s).  test_lookup: three of its tests (a set loaded whole; import,
# replace and flush; a crowded region's tree), a quarter of its sizes
# (random sets still with split regions; every boundary probed; the
# counters are checked in every round); test_bulk: the A/B switch under concurrent
# traffic alone; test_replace: 10 switches of 1,009 rules instead of 40 of
# 3,009.  Each prints what it was given.  Both kernels accept freplace, so
# test_coexist must find libxdp's dispatcher there: no SKIP.
GUEST_ENV=(
	LOOKUP_SCALE=4
	"LOOKUP_ONLY=test_replaced_set*,test_import_replace*,test_crowded*"
	"BULK_ONLY=test_replace_is_atomic*"
	REPLACES=10 FILLERS=1000
	COEXIST_DISPATCHER=required
)
# The whole guest run, boot to power-off; inside it each test gets
# TEST_TIMEOUT seconds (selftests/kernels/in-guest.sh).
KERNEL_TIMEOUT=${KERNEL_TIMEOUT:-1500}

mode_kernels() {
	local k reason
	# guest.sh stops its qemu on TERM; so must an interrupted run.
	trap '[[ -n $GUEST_PID ]] && kill "$GUEST_PID" 2>/dev/null; exit 130' INT
	trap '[[ -n $GUEST_PID ]] && kill "$GUEST_PID" 2>/dev/null; exit 143' TERM
	[[ -n $KERNELS ]] || return 0
	if ! command -v qemu-system-x86_64 >/dev/null; then
		reason="qemu-system-x86_64 is not installed (make deps)"
	elif ((EUID != 0)); then
		reason="needs root"
	fi
	if [[ -n ${reason:-} ]]; then
		kernel_unavailable "kernel matrix ($KERNELS)" "$reason"
		return 0
	fi
	for k in $KERNELS; do
		run_kernel "$k"
	done
}

# kernel_unavailable LABEL REASON: one SKIP line; in CI a failure instead,
# because CI must really run the guests.
kernel_unavailable() {
	if [[ ${CI:-} == true ]]; then
		echo "FAIL: $1 cannot run in CI: $2"
		failed=$((failed + 1))
		failures+=("$1")
	else
		echo "SKIP: $1 ($2)"
		skipped=$((skipped + 1))
	fi
}

# guest_stream LABEL LOG: what the guest prints, as it comes: the markers of
# in-guest.sh turned into the runner's headings, libbpf's verifier logs cut
# to their last lines (LOG keeps them whole).
guest_stream() {
	local l=$1 log=$2 line in_log=0 n=0 keep=() w
	while IFS= read -r line; do
		case $line in
		"@@ipbk-test begin "*) echo "=== $l/${line#@@ipbk-test begin }" ;;
		"@@ipbk-test end "*)
			read -r -a w <<<"$line"
			echo "--- $l/${w[2]}: exit ${w[3]}, ${w[4]} s in the guest"
			;;
		"@@ipbk-test abort "*) echo "!!! $l: ${line#@@ipbk-test abort }" ;;
		*"-- BEGIN PROG LOAD LOG --"*)
			echo "$line"
			in_log=1 n=0 keep=()
			;;
		*"-- END PROG LOAD LOG --"*)
			((n > ${#keep[@]})) &&
				echo "    [$((n - ${#keep[@]})) lines of the verifier's log left out here: $log]"
			((${#keep[@]})) && printf '%s\n' "${keep[@]}"
			echo "$line"
			in_log=0
			;;
		*)
			if ((in_log)); then
				n=$((n + 1))
				keep=("${keep[@]: -3}" "$line")
			else
				printf '%s\n' "$line"
			fi
			;;
		esac
	done
}

GUEST_PID=
# run_kernel SERIES: one guest boot running the load gate, every wanted
# GUEST_TESTS entry and a check that they wrote nothing into the repository;
# each test's log is counted as on the host, under kernel-SERIES/NAME.
run_kernel() {
	local k=$1 label=kernel-$1 spec name kind specs=() envs=(-e "BUILD=$BUILD") e
	local tests=GUEST_TESTS
	[[ $k == 5.10 ]] && tests=GUEST_TESTS_5_10
	local -n list=$tests
	for spec in "${list[@]}"; do
		want "$label/${spec#*:}" && specs+=("$spec")
	done
	((${#specs[@]})) || return 0
	# The gate first, whatever ONLY says: without it a kernel that rejects
	# the program costs every test a slow rejection.
	specs=(load:load "${specs[@]}" check:repo_untouched)
	for e in "${GUEST_ENV[@]}"; do
		envs+=(-e "$e")
	done
	local log=$LOGDIR/$label.log err=$LOGDIR/$label.err start=$SECONDS rc
	echo "=== $label: ${specs[*]#*:} inside Debian's $k kernel (qemu)${GUEST_ENV[*]:+, guest sizes: ${GUEST_ENV[*]}}"
	: >"$log"
	selftests/kernels/guest.sh -q -t "$KERNEL_TIMEOUT" "${envs[@]}" "$k" -- \
		selftests/kernels/in-guest.sh "${specs[@]}" >"$log" 2>"$err" &
	GUEST_PID=$!
	guest_stream "$label" "$log" < <(tail -n +1 -s 0.5 -f --pid="$GUEST_PID" "$log")
	wait "$GUEST_PID"
	rc=$?
	GUEST_PID=
	if ((rc == 77)); then
		kernel_unavailable "$label" "$(sed -n 's/^guest: unavailable: //p' "$err" | head -n 1)"
		return 0
	fi
	[[ -s $err ]] && cat "$err"

	# One log per test; "NAME STATUS SECONDS" for each that ended.
	rm -f "$LOGDIR/${label}_"*.log "$LOGDIR/$label.ends"
	awk -v dir="$LOGDIR" -v l="$label" -v ends="$LOGDIR/$label.ends" '
		$1 == "@@ipbk-test" && $2 == "begin" { out = dir "/" l "_" $3 ".log"; printf "" > out; next }
		$1 == "@@ipbk-test" && $2 == "end" { print $3, $4, $5 > ends; close(out); out = ""; next }
		out != "" { print > out }' "$log"
	touch "$LOGDIR/$label.ends"
	local why="the guest ended (guest.sh exit $rc)" abort
	((rc == 124)) && why="the guest timed out after ${KERNEL_TIMEOUT}s (KERNEL_TIMEOUT)"
	abort=$(sed -n 's/^@@ipbk-test abort //p' "$log" | head -n 1)
	[[ -n $abort ]] && why=$abort
	for spec in "${specs[@]}"; do
		kind=${spec%%:*}
		name=${spec#*:}
		local tlog=$LOGDIR/${label}_$name.log end
		end=$(awk -v n="$name" '$1 == n { print $2; exit }' "$LOGDIR/$label.ends")
		if [[ ! -f $tlog ]]; then
			echo "!!! $label/$name not run: $why"
			failed=$((failed + 1))
			failures+=("$label/$name")
			continue
		fi
		if [[ -z $end ]]; then
			echo "!!! $label/$name did not finish: $why"
			end=124
		fi
		if [[ $kind == cmocka ]]; then
			count_cmocka "$label/$name" "$tlog" "$end"
		else
			count_selftest "$label/$name" "$tlog" "$end"
		fi
	done
	echo "--- $label: $((SECONDS - start)) s from boot to power-off"
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

	local plain=0
	if build_flavour "$BUILD" ""; then
		plain=1
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
	# The guests run the plain build, after everything on this kernel.
	((plain)) && mode_kernels
}

case $MODE in
all) mode_all ;;
unit) mode_unit ;;
selftests) mode_selftests ;;
kernels) mode_kernels ;;
*)
	echo "usage: $0 all|unit|selftests|kernels" >&2
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
