#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# make demo DEMO=flood: a simulated flood between two network namespaces,
# watched by the service's drop log, and plotted.  The service runs with
# [drop-log] writing JSON Lines; three senders flood from denied sources
# (198.18.0.200, 198.18.1.7, 2001:db8:bad::66), overlapping in time; the
# live view (ipblock-loader -s --watch, one line a second) records the
# dropped packets a second from the counters.  The drop log's per-second
# reports and those lines become docs/droplog-flood.png (gnuplot,
# selftests/demo_flood.gp; DEMO_PNG=FILE writes it elsewhere), the data
# stays in $BUILD/demo-flood/.  About 30 seconds; everything it creates
# (namespaces, veth pair, pins, the service) is removed at exit, and it
# exits non-zero when a step did not behave as expected.
#
#   snd (va)  198.18.0.1/24 2001:db8::1/64   -- raw frames from denied sources -->
#   rcv (vb)  198.18.0.2/24 2001:db8::2/64   <- ipblock service, [drop-log] to JSON Lines
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

ST_ID=ipblock-flood-$$
PIN=/sys/fs/bpf/$ST_ID
if ! command -v gnuplot >/dev/null; then
	echo "The flood demo plots with gnuplot: apt-get install gnuplot-nox (make deps)." >&2
	exit 1
fi
st_init
OUT_DIR=$BUILD/demo-flood
PNG=${DEMO_PNG:-$ST_REPO/docs/droplog-flood.png}
RATE=100   # drop-log events a second per CPU ...
SAMPLE=10  # ... then 1 drop in 10
SECONDS_RUN=24
PROBLEMS=0

# expect WHAT CONDITION...: report a step that did not behave as expected.
expect() {
	local what=$1
	shift
	"$@" && return 0
	echo "!! unexpected: $what"
	PROBLEMS=$((PROBLEMS + 1))
	return 1
}

step() {
	printf '\n== %s\n' "$*"
}

step "1. Two namespaces joined by a veth pair; the service on the receiver's end"
ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24 2001:db8::1/64
addr rcv vb 198.18.0.2/24 2001:db8::2/64
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*
CONF=$ST_TMP/ipblock.conf
cat >"$CONF" <<CONF
[ipblock]
pin-dir = $PIN
state-dir = $ST_TMP/state
[interface vb]
[drop-log]
rate = $RATE
sample = $SAMPLE
output = $OUT_DIR/drops.jsonl
CONF
sed 's/^/    /' "$CONF"
# nsenter execs the loader: $! is the service itself, for the TERM at the end.
nsenter --net="/run/netns/$(ns rcv)" "$LOADER" --service --config "$CONF" \
	>"$OUT_DIR/service.out" 2>&1 &
SVC_PID=$!
ST_PIDS+=("$SVC_PID")
for ((i = 0; i < 100; i++)); do
	grep -q 'ipblock service ready' "$OUT_DIR/service.out" && break
	sleep 0.1
done
if ! grep -q 'ipblock service ready' "$OUT_DIR/service.out"; then
	echo "!! the service did not start:"
	sed 's/^/    /' "$OUT_DIR/service.out"
	exit 1
fi
sed 's/^/    /' "$OUT_DIR/service.out"

step "2. Deny three prefixes"
for p in 198.18.0.128/25 198.18.1.0/24 2001:db8:bad::/48; do
	printf '$ ipblock-rule -a %s -p deny\n' "$p"
	expect "adding $p should succeed" rule -a "$p" -p deny
done

step "3. Flood for ${SECONDS_RUN}s: three senders, overlapping; the live view records each second"
RCV_MAC=$(mac rcv vb)
SND_MAC=$(mac snd va)
# sender START STOP SOURCE DESTINATION: raw UDP frames as fast as Python sends them.
sender() {
	sleep "$1"
	in_ns snd timeout "$(($2 - $1))" "$PYTHON" "$ST_DIR/sendframes.py" va "$RCV_MAC" \
		"$SND_MAC" 100000000 "-:udp/$3/$4/9" >/dev/null 2>&1
}
T0=$(date +%s)
"$LOADER" --pin-dir "$PIN" -s --watch --count "$SECONDS_RUN" >"$OUT_DIR/watch.lines" 2>&1 &
WATCH_PID=$!
ST_PIDS+=("$WATCH_PID")
sender 2 20 198.18.0.200 198.18.0.2 &
ST_PIDS+=($!)
sender 6 16 198.18.1.7 198.18.0.2 &
ST_PIDS+=($!)
sender 10 22 2001:db8:bad::66 2001:db8::2 &
ST_PIDS+=($!)
echo "    198.18.0.200       from  2 s to 20 s   (rule 198.18.0.128/25)"
echo "    198.18.1.7         from  6 s to 16 s   (rule 198.18.1.0/24)"
echo "    2001:db8:bad::66   from 10 s to 22 s   (rule 2001:db8:bad::/48; the log names its /64)"
wait "$WATCH_PID"
sleep 1.5 # the last window's report
echo "    the live view's last lines:"
tail -n 3 "$OUT_DIR/watch.lines" | sed 's/^/      /'
REPORTS=$(wc -l <"$OUT_DIR/drops.jsonl")
echo "    the drop log's JSON Lines: $REPORTS reports; the middle one:"
sed -n "$(((REPORTS + 1) / 2))p" "$OUT_DIR/drops.jsonl" | cut -c1-400 | sed 's/^/      /'

step "4. Stop the service (logging off), and plot"
stop_pid "$SVC_PID"
expect "the service should stop with 0" test $? = 0
# One row a second: t dropped/s events/s lost/s, then events/s of the top sources.
expect "the drop log and the view should make a table" "$PYTHON" - "$T0" \
	"$OUT_DIR/watch.lines" "$OUT_DIR/drops.jsonl" "$OUT_DIR" <<'PY'
import calendar, json, sys, time
t0, watch, drops, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
epoch = lambda s: calendar.timegm(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ"))
dropped = {}
for line in open(watch):
    f = line.split()
    if len(f) > 1 and f[1].startswith("dropped="):
        dropped[epoch(f[0]) - t0] = float(f[1][8:-2])
reports, total, rule = {}, {}, {}
for line in open(drops):
    r = json.loads(line)
    t = epoch(r["time"]) - t0
    # Times are whole seconds: a window ending just after a second and the next
    # ending just before the following one share a second, and leave one empty.
    if t in reports:
        t += 1
    reports[t] = r
    for s in r["sources"]:
        total[s["source"]] = total.get(s["source"], 0) + s["drops"]
        rule[s["source"]] = s["rule"]
top = sorted(total, key=total.get, reverse=True)[:4]
assert dropped and reports and top, (dropped, reports, top)
with open(out + "/flood.dat", "w") as f:
    f.write("# t dropped/s events/s lost/s " + " ".join(top) + "\n")
    for t in range(0, max(max(dropped), max(reports)) + 1):
        r = reports.get(t)
        w = r["seconds"] if r else 1.0
        per = {s["source"]: s["drops"] / w for s in r["sources"]} if r else {}
        f.write("%d %s %.1f %.1f %s\n" % (
            t, "%.0f" % dropped[t] if t in dropped else "-",
            r["drops"] / w if r else 0, r["lost"] / w if r else 0,
            " ".join("%.1f" % per.get(s, 0) for s in top)))
with open(out + "/sources.dat", "w") as f:
    for s in top:
        f.write("%s %s %d\n" % (s, rule[s], total[s]))
print("    %d seconds of counters, %d drop-log reports; the top sources: %s" % (
    len(dropped), len(reports), ", ".join("%s (%d events)" % (s, total[s]) for s in top)))
PY
peak() { awk -v c="$1" '!/^#/ && $c != "-" && $c > m { m = $c } END { print m + 0 }' "$OUT_DIR/flood.dat"; }
PEAK_DROPPED=$(peak 2)
PEAK_EVENTS=$(peak 3)
echo "    peak: $PEAK_DROPPED packets dropped a second, $PEAK_EVENTS drop-log events a second"
expect "the flood should drop at least 500 packets a second" test "${PEAK_DROPPED%.*}" -ge 500
expect "the log should stay far below the drops (rate $RATE/s per CPU, then 1 in $SAMPLE)" \
	test "${PEAK_EVENTS%.*}" -lt "${PEAK_DROPPED%.*}"
expect "all three sources should be in the log" test "$(wc -l <"$OUT_DIR/sources.dat")" -ge 3
printf '$ gnuplot -e "dir=%s; out=%s; ..." selftests/demo_flood.gp\n' "$OUT_DIR" "$PNG"
expect "gnuplot should draw the plot" gnuplot -e "dir='$OUT_DIR'; out='$PNG'; rate=$RATE; sample=$SAMPLE; ncpu=$(nproc)" \
	"$ST_DIR/demo_flood.gp"
expect "the plot should be a PNG" grep -q PNG <(head -c 8 "$PNG")
echo "    wrote $PNG; its data: $OUT_DIR/flood.dat"

echo
if ((PROBLEMS)); then
	echo "flood demo FAILED: $PROBLEMS step(s) did not behave as expected (marked !! above)."
	exit 1
fi
echo "flood demo OK: the drop log followed the flood, bounded, and $PNG shows it."
exit 0
