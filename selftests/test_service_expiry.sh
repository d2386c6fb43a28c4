#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Expiry under load: the service runs attached to vb while a ping stream
# crosses it; 10,000 timed /32 deny rules (EXPIRY_RULES) with deadlines
# spread over 20 s (EXPIRY_SPREAD) are imported; the active trie is read
# again and again (selftests/expiry_watch.py) until all are due: each must
# leave within a second of its deadline and none before it, the stream must
# keep flowing, and the service must have expired them itself (ipblock-rule
# is not run meanwhile: every writer expires what is due first).
#
#   snd (va)  198.18.0.1/24   -- ping stream -->   rcv (vb)  198.18.0.2/24  <- service
#   rules:    198.19.0.0 - 198.19.39.15 /32 deny, expires= spread over 20 s
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init bpftool

RULES=${EXPIRY_RULES:-10000}
SPREAD=${EXPIRY_SPREAD:-20}

ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24
addr rcv vb 198.18.0.2/24

cat >"$ST_TMP/ipblock.conf" <<EOF
[ipblock]
pin-dir = $PIN
state-dir = $ST_TMP/state
[interface vb]
EOF

"$PYTHON" "$ST_DIR/notify_listen.py" "$ST_TMP/notify.sock" "$ST_TMP/notify.log" 120 &
ST_PIDS+=($!)
for ((i = 0; i < 50; i++)); do
	[[ -S $ST_TMP/notify.sock ]] && break
	sleep 0.1
done
NOTIFY_SOCKET=$ST_TMP/notify.sock nsenter --net="/run/netns/$(ns rcv)" \
	"$LOADER" --service --config "$ST_TMP/ipblock.conf" >"$ST_TMP/svc.out" 2>"$ST_TMP/svc.err" &
SVC=$!
ST_PIDS+=("$SVC")
for ((i = 0; i < 150; i++)); do
	grep -q '^READY=1$' "$ST_TMP/notify.log" 2>/dev/null && break
	sleep 0.1
done
grep -q '^READY=1$' "$ST_TMP/notify.log" || setup_fail "the service did not start: $(cat "$ST_TMP/svc.err")"

# The stream: 100 packets a second for the whole run, counted at the end.
STREAM=$(((SPREAD + 12) * 100))
in_ns snd ping -n -q -i 0.01 -c "$STREAM" -w $((SPREAD + 40)) -W 1 198.18.0.2 >"$ST_TMP/stream.out" 2>&1 &
PING=$!
ST_PIDS+=("$PING")

# Deadlines from 3 s to 3 + SPREAD s ahead, as many rules in each second.
T0=$(($(date +%s) + 3))
"$PYTHON" - "$RULES" "$SPREAD" "$T0" >"$ST_TMP/timed.list" <<'EOF'
import sys, time
n, spread, t0 = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    d = t0 + i * spread // n
    print("198.19.%d.%d/32 deny expires=%s" % (i // 256, i % 256,
          time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(d))))
EOF
say "$RULES rules due from $T0 over $SPREAD s, a ping stream of $STREAM packets"
run_cli rule -i "$ST_TMP/timed.list" -o load
((RC)) && setup_fail "import failed: $ERR"
START=$(date +%s.%N)

WATCH=$("$PYTHON" "$ST_DIR/expiry_watch.py" "$PIN" "$ST_TMP/timed.list" $((T0 + SPREAD + 6)) 2>&1)
WRC=$?
echo "# $WATCH" | head -n 1
if ((WRC == 0)); then
	pass each_rule_leaves_within_1s_none_early
else
	fail each_rule_leaves_within_1s_none_early "$WATCH"
fi

EXPIRED=$(awk '/^expired [0-9]+ claim/ { n += $2 } END { print n + 0 }' "$ST_TMP/svc.out")
check service_expired_them_all eval '((EXPIRED == RULES)) ||
	{ WHY="the service says it expired $EXPIRED claims of $RULES"; false; }'
say "the service expired them in $(grep -c '^expired' "$ST_TMP/svc.out") switches"

wait "$PING"
RECV=$(sed -n 's/.* \([0-9]\+\) received.*/\1/p' "$ST_TMP/stream.out")
say "stream: ${RECV:-0} of $STREAM echo requests answered during $(awk -v a="$START" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
check stream_kept_flowing eval '((${RECV:-0} * 100 >= STREAM * 95)) ||
	{ WHY="only ${RECV:-0} of $STREAM answered: $(cat "$ST_TMP/stream.out")"; false; }'
check no_errors_from_service eval '! grep -q . "$ST_TMP/svc.err" ||
	{ WHY=$(cat "$ST_TMP/svc.err"); false; }'

st_finish
