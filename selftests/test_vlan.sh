#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# VLAN-tagged traffic: this machine cannot create VLAN interfaces, so the
# sender crafts frames (untagged, 802.1Q, 802.1ad+802.1Q, IPv4 and IPv6) and
# tcpdump on the receiving veth counts what ipblock let through -- XDP runs
# before tcpdump's tap, so a dropped frame is never seen.  Each kind is sent
# COUNT times from a denied and from an allowed source; ARP always passes.
# Both attach modes are exercised.
# Helpers run through check() look unreachable to shellcheck; st_init's
# arguments are tool names, not the script's.
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

COUNT=20
# The crafted frames' source MAC: tcpdump counts only these.
SMAC=02:1b:00:00:00:01

st_init tcpdump
[[ -x $PYTHON ]] || {
	skip vlan "$PYTHON is not installed"
	st_finish
}

ns_add snd rcv
veth snd va rcv vb
addr rcv vb 198.18.0.2/24 2001:db8::2/64
DMAC=$(mac rcv vb)
[[ -n $DMAC ]] || setup_fail "no MAC address on vb"

# Denied: 198.18.0.1 and 2001:db8::1 (in a deny prefix).  Allowed: .3 and
# ::3, allow rules inside that prefix, so the longest match decides.
DENY4=198.18.0.1 ALLOW4=198.18.0.3 DENY6=2001:db8::1 ALLOW6=2001:db8::3

# The frame kinds: label, VLAN tags (sendframes.py syntax), IP family.
KINDS=(
	"untagged_v4 - 4"
	"dot1q_v4 q10 4"
	"qinq_v4 ad100,q10 4"
	"untagged_v6 - 6"
	"dot1q_v6 q10 6"
	"qinq_v6 ad100,q10 6"
)

# capture_start: tcpdump on vb for the crafted frames, once it listens.
CAP_PID=
capture_start() {
	: >"$ST_TMP/cap.txt"
	: >"$ST_TMP/cap.err"
	# Not through a shell function: $! must be tcpdump itself.
	ip netns exec "$(ns rcv)" tcpdump -i vb -nn -e -l "ether src $SMAC" \
		>"$ST_TMP/cap.txt" 2>"$ST_TMP/cap.err" &
	CAP_PID=$!
	ST_PIDS+=("$CAP_PID")
	for _ in $(seq 50); do
		grep -q listening "$ST_TMP/cap.err" && return 0
		kill -0 "$CAP_PID" 2>/dev/null || break
		sleep 0.1
	done
	WHY="tcpdump did not start: $(cat "$ST_TMP/cap.err")"
	return 1
}

# capture_stop: let the last frames arrive, stop tcpdump so it flushes.
capture_stop() {
	sleep 0.5
	kill -INT "$CAP_PID" 2>/dev/null
	wait "$CAP_PID" 2>/dev/null
}

# seen PATTERN: captured lines containing PATTERN.
seen() {
	grep -cF -- "$1" "$ST_TMP/cap.txt"
}

# run_matrix MODE: attach in MODE (native, skb; "control": the control run,
# ipblock detached, where every frame must be seen), send every kind from
# both sources, check what tcpdump saw.
run_matrix() {
	local mode=$1 specs=() k label tags fam i=0 src port n want verdict
	local drops0 drops1 other0 other1
	if [[ $mode != control ]]; then
		run_cli loader rcv -d vb -m "$mode"
		if ((RC)); then
			fail "${mode}_attach" "ipblock-loader -d vb -m $mode: $ERR"
			return
		fi
	fi
	for k in "${KINDS[@]}"; do
		read -r label tags fam <<<"$k"
		if [[ $fam == 4 ]]; then
			specs+=("$tags:udp/$DENY4/198.18.0.2/$((41100 + i))")
			specs+=("$tags:udp/$ALLOW4/198.18.0.2/$((41200 + i))")
		else
			specs+=("$tags:udp/$DENY6/2001:db8::2/$((41100 + i))")
			specs+=("$tags:udp/$ALLOW6/2001:db8::2/$((41200 + i))")
		fi
		i=$((i + 1))
	done
	# ARP from the denied address, untagged and tagged: never judged.
	specs+=("-:arp/$DENY4/198.18.0.98" "q10:arp/$DENY4/198.18.0.99")

	drops0=$(counter dropped)
	other0=$(counter "passed (not IP")
	if ! capture_start; then
		fail "${mode}_capture" "$WHY"
		loader rcv -d vb -u >/dev/null 2>&1
		return
	fi
	if ! in_ns snd "$PYTHON" "$ST_DIR/sendframes.py" va "$DMAC" "$SMAC" "$COUNT" \
		"${specs[@]}" 2>"$ST_TMP/send.err"; then
		capture_stop
		fail "${mode}_send_frames" "$(cat "$ST_TMP/send.err")"
		loader rcv -d vb -u >/dev/null 2>&1
		return
	fi
	capture_stop
	drops1=$(counter dropped)
	other1=$(counter "passed (not IP")

	i=0
	for k in "${KINDS[@]}"; do
		read -r label tags fam <<<"$k"
		for src in denied allowed; do
			if [[ $src == denied && $mode != control ]]; then
				port=$((41100 + i))
				want=0
				verdict=dropped
			else
				port=$((41200 + i))
				[[ $src == denied ]] && port=$((41100 + i))
				want=$COUNT
				verdict=passes
			fi
			n=$(seen ".$port: UDP")
			if ((n == want)); then
				pass "${mode}_${label}_${src}_source_$verdict"
			else
				fail "${mode}_${label}_${src}_source_$verdict" \
					"tags '$tags', UDP port $port: sent $COUNT, expected $want seen on vb, saw $n"
			fi
		done
		i=$((i + 1))
	done
	for k in "who-has 198.18.0.98 tell $DENY4" "who-has 198.18.0.99 tell $DENY4"; do
		n=$(seen "$k")
		label=untagged
		[[ $k == *0.99* ]] && label=dot1q
		if ((n == COUNT)); then
			pass "${mode}_${label}_arp_from_denied_source_passes"
		else
			fail "${mode}_${label}_arp_from_denied_source_passes" \
				"ARP '$k': sent $COUNT, saw $n"
		fi
	done
	if [[ $mode == control ]]; then
		return
	fi
	if ((drops1 - drops0 == 6 * COUNT)); then
		pass "${mode}_drop_counter_counts_every_tagged_frame"
	else
		fail "${mode}_drop_counter_counts_every_tagged_frame" \
			"dropped went from $drops0 to $drops1; expected a rise of $((6 * COUNT))"
	fi
	if ((other1 - other0 >= 2 * COUNT)); then
		pass "${mode}_arp_counted_as_not_ip"
	else
		fail "${mode}_arp_counted_as_not_ip" \
			"passed (not IP) went from $other0 to $other1; expected a rise >= $((2 * COUNT))"
	fi
	run_cli loader rcv -d vb -u
	((RC)) && fail "${mode}_detach" "$ERR"
}

run_cli loader rcv -d vb
((RC)) && setup_fail "ipblock-loader -d vb: $ERR"
for r in "198.18.0.0/24 deny" "$ALLOW4 allow" "2001:db8::/64 deny" "$ALLOW6 allow"; do
	read -r cidr act <<<"$r"
	run_cli rule -a "$cidr" -p "$act"
	((RC)) && setup_fail "ipblock-rule -a $cidr -p $act: $ERR"
done
run_cli loader rcv -d vb -u

say "control: ipblock detached, tcpdump must see every crafted frame"
run_matrix control
say "crafted frames, native mode"
run_matrix native
say "crafted frames, skb (generic) mode"
run_matrix skb

say "real ARP resolution while the sender is denied"
addr snd va 198.18.0.1/24
run_cli loader rcv -d vb
if ((RC)); then
	fail "arp_resolution_with_sender_denied" "attach: $ERR"
else
	ip -n "$(ns snd)" neigh flush dev va
	ip -n "$(ns rcv)" neigh flush dev vb
	check ping_from_denied_sender_dropped ping_dropped snd 198.18.0.2 198.18.0.1
	# The sender knows the receiver's MAC only if its ARP request got in.
	arp_resolved() {
		local n
		n=$(ip -n "$(ns snd)" neigh show 198.18.0.2 dev va)
		grep -qi "lladdr $DMAC" <<<"$n" && return 0
		WHY="sender's neighbour entry for 198.18.0.2: '${n:-none}', expected lladdr $DMAC"
		return 1
	}
	check arp_resolution_with_sender_denied arp_resolved
fi

st_finish
