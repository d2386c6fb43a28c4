#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Atomic replace over real traffic.  A sender namespace streams UDP from six
# source addresses to a receiver namespace whose veth runs ipblock, while
# this script switches the rule set back and forth between two lists with
# ipblock-rule -R.  The lists share prefixes with different actions and
# reach the same verdict through different rules, so a switch that ever
# showed a half-changed set would let an always-denied frame through or drop
# an always-allowed one:
#
#   source          list X                  list Y                  verdict
#   198.18.0.10     198.18.0.0/24 allow     198.18.0.0/25 allow     always allowed
#   198.19.1.20     198.19.1.0/24 deny      198.19.1.0/25 deny      always denied
#   198.19.2.30     198.19.2.0/24 deny      198.19.2.0/24 allow     flips
#   2001:db8:a::10  2001:db8:a::/48 allow   2001:db8:a::/64 allow   always allowed
#   2001:db8:1b::20 2001:db8:1b::/48 deny   2001:db8:1b::/64 deny   always denied
#   2001:db8:2c::30 2001:db8:2c::/48 deny   2001:db8:2c::/48 allow  flips
#
# Both lists also hold 198.18.0.0/16 and 2001:db8::/44 deny (where an allowed
# source falls when its rule is missing), 2001:db8:10::/44 allow (where the
# denied IPv6 source falls), and a few thousand /32 fillers that differ, so
# that every switch has real work to do.
#
# Frames are counted by nftables counters in the receiver (kernel counters,
# no user-space receiver that could miss any) against what the sender's
# kernel accepted.  veth loses nothing as long as its XDP ring never fills:
# the sender is paced, and the sender veth's TX drop counter is checked, so
# an exact "sent == received" for the allowed sources is meaningful.
#
# Uses selftests/lib.sh for namespaces, pins, results and clean-up.

# shellcheck source=selftests/lib.sh
. "$(dirname "$0")/lib.sh"

REPLACES=${REPLACES:-40}
FILLERS=${FILLERS:-3000}
PORT=9999
SOURCES=(198.18.0.10 198.19.1.20 198.19.2.30 2001:db8:a::10 2001:db8:1b::20 2001:db8:2c::30)

st_init nft "$PYTHON"

ns_add snd rcv
veth snd vs rcv vr
addr rcv vr 198.18.0.1/15 2001:db8::1/32
addr snd vs 198.18.0.10/15 198.19.1.20/15 198.19.2.30/15 \
	2001:db8:a::10/32 2001:db8:1b::20/32 2001:db8:2c::30/32
# Static neighbours: no resolution traffic, no first frames held back.
ip -n "$(ns snd)" neigh replace 198.18.0.1 lladdr "$(mac rcv vr)" dev vs nud permanent
ip -n "$(ns snd)" neigh replace 2001:db8::1 lladdr "$(mac rcv vr)" dev vs nud permanent
# Count per source in the receiver, then drop (no ICMP back).
in_ns rcv nft -f - <<EOF || setup_fail "cannot install the nftables counters"
table inet ipbrep {
	chain input {
		type filter hook input priority 0; policy accept;
		ip saddr 198.18.0.10 udp dport $PORT counter drop
		ip saddr 198.19.1.20 udp dport $PORT counter drop
		ip saddr 198.19.2.30 udp dport $PORT counter drop
		ip6 saddr 2001:db8:a::10 udp dport $PORT counter drop
		ip6 saddr 2001:db8:1b::20 udp dport $PORT counter drop
		ip6 saddr 2001:db8:2c::30 udp dport $PORT counter drop
	}
}
EOF

# counted SRC: frames from SRC that got past XDP into the receiver's stack.
counted() {
	in_ns rcv nft list chain inet ipbrep input |
		awk -v s="$1" '$0 ~ ("saddr " s " ") { for (i = 1; i < NF; i++) if ($i == "packets") print $(i + 1) }'
}

# received SRC: the same since the stream started.
declare -A BASE
received() {
	echo $(($(counted "$1") - ${BASE[$1]:-0}))
}

# The two lists; see the table at the top.
write_lists() {
	local i
	{
		printf '%s\n' "# list X" "198.18.0.0/16 deny" "198.18.0.0/24 allow" \
			"198.19.1.0/24 deny" "198.19.2.0/24 deny" "2001:db8::/44 deny" \
			"2001:db8:10::/44 allow" "2001:db8:a::/48 allow" "2001:db8:1b::/48 deny" \
			"2001:db8:2c::/48 deny"
		for ((i = 0; i < FILLERS; i++)); do
			echo "198.18.$((128 + i / 256)).$((i % 256)) deny"
		done
	} >"$ST_TMP/x.rules"
	{
		printf '%s\n' "# list Y" "198.18.0.0/16 deny" "198.18.0.0/25 allow" \
			"198.19.1.0/25 deny" "198.19.2.0/24 allow" "2001:db8::/44 deny" \
			"2001:db8:10::/44 allow" "2001:db8:a::/64 allow" "2001:db8:1b::/64 deny" \
			"2001:db8:2c::/48 allow"
		for ((i = 0; i < FILLERS; i++)); do
			echo "198.18.$((192 + i / 256)).$((i % 256)) deny"
		done
	} >"$ST_TMP/y.rules"
}

tx_dropped() {
	ip -n "$(ns snd)" -s link show vs | awk '/TX:/ { getline; print $4 }'
}

loader rcv -d vr >"$ST_TMP/load.log" 2>&1 || setup_fail "cannot attach: $(cat "$ST_TMP/load.log")"
write_lists
run_cli rule -R "$ST_TMP/x.rules"
cli_ok || setup_fail "the first replace failed: $ERR"

# Quick sanity before the stream: each kind judged as list X says.
probe_ok=1
for src in 198.18.0.10 198.19.1.20; do
	in_ns snd "$PYTHON" -c "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('$src', 0)); s.sendto(b'x', ('198.18.0.1', $PORT))"
done
sleep 0.2
[[ $(received 198.18.0.10) == 1 && $(received 198.19.1.20) == 0 ]] || probe_ok=0
if ((probe_ok)); then
	pass traffic_judged_by_list_x
else
	fail traffic_judged_by_list_x "a frame from 198.18.0.10 should arrive and one from 198.19.1.20 should not"
fi

# --- the stream and the switches -------------------------------------------------
for src in "${SOURCES[@]}"; do
	BASE[$src]=$(counted "$src")
done
drops_before=$(counter dropped)
txdrop_before=$(tx_dropped)
touch "$ST_TMP/run"
in_ns snd "$PYTHON" "$ST_DIR/replace_send.py" 198.18.0.1 2001:db8::1 "$PORT" "$ST_TMP/run" 120 \
	"${SOURCES[@]}" >"$ST_TMP/sent" 2>"$ST_TMP/sender.err" &
sender=$!
ST_PIDS+=("$sender")
sleep 0.5

bad=0
start=$(date +%s.%N)
for ((i = 0; i < REPLACES; i++)); do
	list=$ST_TMP/y.rules
	((i % 2)) && list=$ST_TMP/x.rules
	if ! out=$(rule -R "$list" 2>&1); then
		bad=$((bad + 1))
		echo "$out" >>"$ST_TMP/replace.err"
	fi
done
end=$(date +%s.%N)
sleep 0.5
rm -f "$ST_TMP/run"
wait "$sender"
sleep 0.3

if ((bad == 0)); then
	pass "replaces_succeed ($REPLACES x ipblock-rule -R of $((FILLERS + 9)) rules in $(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }') s)"
else
	fail replaces_succeed "$bad of $REPLACES failed:" "$(head -3 "$ST_TMP/replace.err")"
fi

if [[ ! -s $ST_TMP/sent ]]; then
	fail sender "the sender reported nothing" "$(cat "$ST_TMP/sender.err")"
	st_finish
fi
declare -A SENT
while read -r src n; do SENT[$src]=$n; done <"$ST_TMP/sent"
txdrop=$(($(tx_dropped) - txdrop_before))
echo "sent / received per source (sender veth TX drops: $txdrop):"
total_sent=0
total_recv=0
for src in "${SOURCES[@]}"; do
	r=$(received "$src")
	printf '    %-16s %8s sent %8s received\n' "$src" "${SENT[$src]}" "$r"
	total_sent=$((total_sent + SENT[$src]))
	total_recv=$((total_recv + r))
done

check_denied() {
	local src=$1 r
	r=$(received "$src")
	if ((SENT[$src] > 0 && r == 0)); then
		pass "always_denied_never_arrives ($src, ${SENT[$src]} sent)"
	else
		fail "always_denied_never_arrives ($src)" "${SENT[$src]} sent, $r got through"
	fi
}

check_allowed() {
	local src=$1 r
	r=$(received "$src")
	if ((txdrop != 0)); then
		# Frames lost on the veth before XDP: the count cannot be exact.
		if ((r > 0)); then
			skip "always_allowed_all_arrive ($src)" "veth dropped $txdrop frames on TX; $r of ${SENT[$src]} arrived"
		else
			fail "always_allowed_all_arrive ($src)" "none of ${SENT[$src]} arrived"
		fi
	elif ((SENT[$src] > 0 && r == SENT[$src])); then
		pass "always_allowed_all_arrive ($src, $r of ${SENT[$src]})"
	else
		fail "always_allowed_all_arrive ($src)" "${SENT[$src]} sent, $r arrived"
	fi
}

check_flipping() {
	local src=$1 r
	r=$(received "$src")
	if ((r > 0 && r < SENT[$src])); then
		pass "flipping_source_sees_both_lists ($src, $r of ${SENT[$src]} passed)"
	else
		fail "flipping_source_sees_both_lists ($src)" "${SENT[$src]} sent, $r arrived: expected some but not all"
	fi
}

check_allowed 198.18.0.10
check_denied 198.19.1.20
check_flipping 198.19.2.30
check_allowed 2001:db8:a::10
check_denied 2001:db8:1b::20
check_flipping 2001:db8:2c::30

# Every frame the receiver did not count was dropped by ipblock, none elsewhere.
drops=$(($(counter dropped) - drops_before))
if ((txdrop == 0 && drops == total_sent - total_recv)); then
	pass "ipblock_drops_account_for_every_missing_frame ($drops)"
elif ((txdrop != 0)); then
	skip ipblock_drops_account_for_every_missing_frame "veth dropped $txdrop frames on TX"
else
	fail ipblock_drops_account_for_every_missing_frame \
		"ipblock dropped $drops, sent - received = $((total_sent - total_recv))"
fi

# The switches ended on a complete list: replacing with it again changes nothing.
last=$ST_TMP/x.rules
((REPLACES % 2)) && last=$ST_TMP/y.rules
out=$(rule -R "$last" 2>&1)
if [[ $out == *": 0 added, 0 updated, 0 deleted;"* ]]; then
	pass ends_on_the_last_list
else
	fail ends_on_the_last_list "$out"
fi

# -S then -R is an exact round trip.
rule -S >"$ST_TMP/save1" 2>&1
out=$(rule -R "$ST_TMP/save1" 2>&1)
rule -S >"$ST_TMP/save2" 2>&1
if [[ $out == *": 0 added, 0 updated, 0 deleted;"* ]] &&
	diff <(grep -v '^#' "$ST_TMP/save1") <(grep -v '^#' "$ST_TMP/save2") >/dev/null; then
	pass save_restore_round_trip
else
	fail save_restore_round_trip "$out"
fi

st_finish
