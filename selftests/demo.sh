#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo: ipblock dropping real traffic between two network namespaces.
# Every command is shown before it runs; every step checks that it behaved
# as expected, and the demo exits non-zero if one did not.  Everything it
# creates (namespaces, veth pair, pinned maps) is removed at exit.
# Helpers run through check() look unreachable to shellcheck; st_init's
# arguments are tool names, not the script's.
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

ST_ID=ipblock-demo-$$
PIN=/sys/fs/bpf/$ST_ID
SND=$ST_ID-snd
RCV=$ST_ID-rcv
PROBLEMS=0

if ((EUID != 0)); then
	echo "The demo needs root (network namespaces, XDP, BPF maps): run sudo make demo." >&2
	exit 1
fi
for tool in "$LOADER" "$RULE"; do
	if [[ ! -x $tool ]]; then
		echo "$tool is missing: run make first." >&2
		exit 1
	fi
done
st_init >/dev/null

step() {
	printf '\n== %s\n' "$*"
}

# shown WHERE CMD...: print the command as the user would type it (WHERE is
# "" or "[sender] " / "[receiver] "), run it, indent its output.  The
# ipblock commands run with --pin-dir $PIN; the loader in the receiver's
# network namespace.
shown() {
	local where=$1 rc
	shift
	printf '%s$ %s\n' "$where" "$*"
	case $1 in
	ipblock-loader)
		shift
		loader rcv "$@"
		;;
	ipblock-rule)
		shift
		rule "$@"
		;;
	*)
		"$@"
		;;
	esac > >(sed 's/^/    /') 2>&1
	rc=$?
	# Let the indenting sed finish before the next line is printed.
	wait $! 2>/dev/null
	return $rc
}

# expect WHAT CONDITION...: report a step that did not behave as expected.
expect() {
	local what=$1
	shift
	if "$@"; then
		return 0
	fi
	echo "!! unexpected: $what"
	PROBLEMS=$((PROBLEMS + 1))
	return 1
}

# demo_ping DESTINATION: ping from the sender, quietly.
demo_ping() {
	local got
	printf '$ ip netns exec %s ping -c 3 -q %s\n' "$SND" "$1"
	got=$(in_ns snd ping -n -q -c 3 -W 1 -i 0.2 "$1" 2>&1)
	grep -E 'transmitted' <<<"$got" | sed 's/^/    /'
	LAST_RECEIVED=$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' <<<"$got")
	LAST_RECEIVED=${LAST_RECEIVED:-0}
}
LAST_RECEIVED=0

cat <<EOF
ipblock demo: an XDP firewall dropping real traffic between two namespaces

  sender    $SND   veth-snd  198.18.0.1  2001:db8::1
  receiver  $RCV   veth-rcv  198.18.0.2  2001:db8::2   <- ipblock

The ipblock commands below run with --pin-dir $PIN, a private
pin directory, so the demo never touches a real installation; the loader runs
in the receiver's network namespace (nsenter --net=/run/netns/$RCV).
EOF

step "1. Two namespaces joined by a veth pair"
ST_NS+=("$SND" "$RCV")
if ! { shown "" ip netns add "$SND" &&
	shown "" ip netns add "$RCV" &&
	shown "" ip -n "$SND" link add veth-snd type veth peer name veth-rcv netns "$RCV" &&
	shown "" ip -n "$SND" addr add 198.18.0.1/24 dev veth-snd &&
	shown "" ip -n "$SND" addr add 2001:db8::1/64 dev veth-snd nodad &&
	shown "" ip -n "$RCV" addr add 198.18.0.2/24 dev veth-rcv &&
	shown "" ip -n "$RCV" addr add 2001:db8::2/64 dev veth-rcv nodad &&
	shown "" ip -n "$SND" link set veth-snd up &&
	shown "" ip -n "$RCV" link set veth-rcv up; }; then
	echo "!! could not set up the namespaces"
	exit 1
fi

step "2. Attach ipblock to the receiver's interface"
if ! shown "[receiver] " ipblock-loader -d veth-rcv; then
	echo "!! ipblock-loader could not attach; see the message above"
	exit 1
fi

step "3. No rules yet: ping passes"
demo_ping 198.18.0.2
expect "IPv4 ping should pass with no rules" test "$LAST_RECEIVED" = 3
demo_ping 2001:db8::2
expect "IPv6 ping should pass with no rules" test "$LAST_RECEIVED" = 3

step "4. Deny the sender's addresses"
DROPPED_BEFORE=$(counter dropped)
expect "adding the IPv4 rule should succeed" shown "" ipblock-rule -a 198.18.0.1 -p deny
expect "adding the IPv6 rule should succeed" shown "" ipblock-rule -a 2001:db8::1 -p deny

step "5. Ping is now dropped by XDP, before the kernel's network stack sees it"
demo_ping 198.18.0.2
expect "IPv4 ping should be dropped" test "$LAST_RECEIVED" = 0
demo_ping 2001:db8::2
expect "IPv6 ping should be dropped" test "$LAST_RECEIVED" = 0
echo
echo "The rules and the counters ('dropped (deny rule)' has risen):"
shown "" ipblock-rule -l
shown "[receiver] " ipblock-loader -s
DROPPED_AFTER=$(counter dropped)
echo "dropped: $DROPPED_BEFORE packets before the rules, $DROPPED_AFTER now"
expect "the dropped counter should rise by at least 6" \
	test "$((${DROPPED_AFTER:-0} - ${DROPPED_BEFORE:-0}))" -ge 6

step "6. Delete the rules: ping passes again"
expect "deleting the IPv4 rule should succeed" shown "" ipblock-rule -d 198.18.0.1
expect "deleting the IPv6 rule should succeed" shown "" ipblock-rule -d 2001:db8::1
demo_ping 198.18.0.2
expect "IPv4 ping should pass again" test "$LAST_RECEIVED" = 3
demo_ping 2001:db8::2
expect "IPv6 ping should pass again" test "$LAST_RECEIVED" = 3

step "7. Detach and clean up"
expect "detaching should succeed" shown "[receiver] " ipblock-loader -d veth-rcv -u
shown "" ip netns del "$SND"
shown "" ip netns del "$RCV"
shown "" rm -r "$PIN"
ST_NS=()

echo
if ((PROBLEMS)); then
	echo "demo FAILED: $PROBLEMS step(s) did not behave as expected (marked !! above)."
	exit 1
fi
echo "demo OK: ipblock passed, dropped, counted and passed again as expected."
echo "Next: ipblock-loader --help, ipblock-rule --help; make selftest runs the full selftests."
exit 0
