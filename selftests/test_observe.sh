#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Seeing what is dropped, over real traffic: the service's drop log
# ([drop-log]) during a flood from a denied source -- lines naming the
# source and the rule, at most one summary a second, bounded by the
# configured rate, every event the program emitted accounted for; a reload
# to a JSON Lines file; the Prometheus endpoint ([metrics]) scraped during a
# flood, checked by promtool and against the maps' counters; the live view
# (ipblock-loader -s --watch) as lines and in a real terminal (tmux), with
# the top dropped sources from the report the service publishes; stop
# turning the program's logging off, and the view saying so, or that no
# service publishes.
#
#   snd (va)  198.18.0.1 .3/24
#   rcv (vb)  198.18.0.2/24        <- ipblock service
# shellcheck disable=SC2317,SC2119
set -u
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

st_init tmux curl

ns_add snd rcv
veth snd va rcv vb
addr snd va 198.18.0.1/24 198.18.0.3/24
addr rcv vb 198.18.0.2/24

CONF=$ST_TMP/ipblock.conf
# The drop log's report for the live view (common/droptop.h), named after the pin dir.
TOP_FILE=/run/ipblock/droplog${PIN//\//-}.json
on_exit "rm -f '$TOP_FILE'"
SVC_PID=
RATE=5
NCPU=$(nproc)

# conf EXTRA...: a configuration on the private pins, attaching to vb.
conf() {
	{
		echo "[ipblock]"
		echo "pin-dir = $PIN"
		echo "state-dir = $ST_TMP/state"
		echo "[interface vb]"
		printf '%s\n' "$@"
	} >"$CONF"
}

svc_start() {
	touch "$ST_TMP/svc.out" "$ST_TMP/svc.err"
	nsenter --net="/run/netns/$(ns rcv)" "$LOADER" --service --config "$CONF" \
		>>"$ST_TMP/svc.out" 2>>"$ST_TMP/svc.err" &
	SVC_PID=$!
	ST_PIDS+=("$SVC_PID")
}

# svc_said TEXT [N]: within 15 s the service said TEXT on stdout N times (default 1).
svc_said() {
	local i
	for ((i = 0; i < 150; i++)); do
		(($(grep -cF -- "$1" "$ST_TMP/svc.out") >= ${2:-1})) && return 0
		kill -0 "$SVC_PID" 2>/dev/null || break
		sleep 0.1
	done
	WHY="the service did not say '$1'; stdout: $(cat "$ST_TMP/svc.out"); stderr: $(cat "$ST_TMP/svc.err")"
	return 1
}

# eq GOT WANT: the two are equal.
eq() {
	[[ $1 == "$2" ]] && return 0
	WHY="expected '$2', got '$1'"
	return 1
}

# file_has FILE REGEX: a line of FILE matches REGEX (extended).
file_has() {
	grep -qE -- "$2" "$1" && return 0
	WHY="no line matching '$2' in $1:
$(head -n 30 "$1")"
	return 1
}

# flood SECONDS: UDP frames from 198.18.0.1 (denied) as fast as a raw socket
# sends them, for that long (ping -f waits 10 ms for each reply that never comes).
flood() {
	in_ns snd timeout "$1" "$PYTHON" "$ST_DIR/sendframes.py" va "$(mac rcv vb)" \
		"$(mac snd va)" 100000000 "-:udp/198.18.0.1/198.18.0.2/9" >/dev/null 2>&1
}

# status_json EXPR: a value of ipblock-loader -s --json, by a python expression on d.
status_json() {
	loader rcv -s --json 2>/dev/null | "$PYTHON" -c "import json,sys; d=json.load(sys.stdin); print($1)"
}

conf "[drop-log]" "rate = $RATE" "sample = 0" "output = stderr"
svc_start
check service_up svc_said "ipblock service ready"
run_cli rule -a 198.18.0.0/25 -p deny
cli_ok || setup_fail "ipblock-rule -a failed: $ERR"
check drop_log_set_in_program eq "$(status_json 'd["drop_log"]["rate"]')" "$RATE"

# --- the drop log on stderr during a flood -----------------------------------
FLOOD_S=4
before=$(counter dropped)
t0=$(date +%s.%N)
flood $FLOOD_S
t1=$(date +%s.%N)
sleep 1.5 # the last window's report
after=$(counter dropped)
dropped=$((after - before))
grep '^drop-log:' "$ST_TMP/svc.err" >"$ST_TMP/log1"
say "flood of ${FLOOD_S}s: $dropped packets dropped; the log:"
sed 's/^/    /' "$ST_TMP/log1" | head -n 20

check drop_log_names_source_and_rule file_has "$ST_TMP/log1" \
	"^drop-log:   source 198\.18\.0\.1 rule 198\.18\.0\.0/25: [0-9]+ drops"
check drop_log_names_network file_has "$ST_TMP/log1" "^drop-log:   net 198\.18\.0\.0/24: "

logged=$(awk '/^drop-log: [0-9]+ drops in/ { s += $2 } END { print s + 0 }' "$ST_TMP/log1")
summaries=$(grep -c '^drop-log: [0-9]* drops in' "$ST_TMP/log1")
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%d", b - a + 0.999 }')
bound=$((NCPU * RATE * (secs + 1)))
say "logged $logged events in $summaries summaries over ${secs}s; bound $bound ($NCPU CPUs x $RATE/s, a second's burst)"
bounded() {
	((logged > 0 && logged <= bound)) && return 0
	WHY="logged $logged events, expected 1..$bound"
	return 1
}
check drop_log_bounded_by_rate bounded
one_a_second() {
	((summaries >= 1 && summaries <= secs + 2)) && return 0
	WHY="$summaries summary lines in ${secs}s of flood"
	return 1
}
check drop_log_one_summary_a_second one_a_second
far_fewer() {
	((dropped >= 10 * logged)) && return 0
	WHY="$dropped dropped, $logged logged: the flood was too slow to show the bound"
	return 1
}
check drop_log_flood_far_above_rate far_fewer
emitted=$(status_json 'd["drop_log"]["events"]')
check drop_log_every_event_accounted eq "$emitted" "$logged"

# --- reload to a JSON Lines file ---------------------------------------------
conf "[drop-log]" "rate = $RATE" "sample = 0" "output = $ST_TMP/drops.jsonl"
kill -HUP "$SVC_PID"
check reload_applied svc_said "drop-log: $RATE events a second per CPU, then 1 in 0, to $ST_TMP/drops.jsonl"
flood 2
sleep 1.5
json_ok() {
	[[ -s $ST_TMP/drops.jsonl ]] || {
		WHY="$ST_TMP/drops.jsonl is empty"
		return 1
	}
	"$PYTHON" - "$ST_TMP/drops.jsonl" <<'PY' && return 0
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert rows and all(r["drops"] > 0 for r in rows), rows
assert any(s["source"] == "198.18.0.1" and s["rule"] == "198.18.0.0/25"
           for r in rows for s in r["sources"]), rows
PY
	WHY="$(head -c 2000 "$ST_TMP/drops.jsonl")"
	return 1
}
check drop_log_json_lines_after_reload json_ok

# --- Prometheus metrics, scraped during a flood -------------------------------
PORT=$((20000 + RANDOM % 20000))
conf "[drop-log]" "rate = $RATE" "sample = 0" "output = $ST_TMP/drops.jsonl" \
	"[metrics]" "listen = 127.0.0.1:$PORT"
kill -HUP "$SVC_PID"
check metrics_served_after_reload svc_said "metrics: serving http://127.0.0.1:$PORT/metrics"

# scrape: GET /metrics from inside rcv (where the service listens), body on stdout.
scrape() {
	net_ns rcv curl -sS --max-time 5 "http://127.0.0.1:$PORT/metrics"
}
# metric FILE NAME{LABELS}: the value of that sample in a scrape.
metric() {
	awk -v k="$2" '$1 == k { print $2; exit }' "$1"
}
# counters FILE: dropped packets and bytes, rule packets, drop-log events (-s --json, -l).
counters() {
	status_json 'd["counters"]["dropped"]["packets"], d["counters"]["dropped"]["bytes"], d["drop_log"]["events"]' >"$1"
	rule_packets 198.18.0.0/25 >>"$1"
}
flood 4 &
FLOOD_PID=$!
sleep 1.5
counters "$ST_TMP/before"
scrape >"$ST_TMP/scrape" 2>"$ST_TMP/scrape.err"
counters "$ST_TMP/after"
wait "$FLOOD_PID"
say "a scrape during the flood ($(wc -l <"$ST_TMP/scrape") lines); the counters around it: $(tr '\n' ' ' <"$ST_TMP/before")/ $(tr '\n' ' ' <"$ST_TMP/after")"
grep -E '^ipblock_(packets|rule_hits|droplog_events|rules\{)' "$ST_TMP/scrape" | sed 's/^/    /'

promtool_ok() {
	if ! command -v promtool >/dev/null; then
		WHY="promtool is not installed (Debian: prometheus; make deps)"
		return 1
	fi
	promtool check metrics <"$ST_TMP/scrape" >"$ST_TMP/promtool" 2>&1 && return 0
	WHY="$(cat "$ST_TMP/promtool")"
	return 1
}
check metrics_promtool_check promtool_ok
# SCRAPE_OUT=FILE keeps the scrape (the README's example is one).
[[ -n ${SCRAPE_OUT:-} ]] && cp "$ST_TMP/scrape" "$SCRAPE_OUT"

# within NAME GOT LOW HIGH: LOW <= GOT <= HIGH (the counters grow during the scrape).
within() {
	[[ $2 =~ ^[0-9]+$ ]] && (($3 <= $2 && $2 <= $4)) && (($2 > 0)) && return 0
	WHY="$1: scraped '$2', expected $3..$4 (read just before and after), and not 0"
	return 1
}
read -r b_pk b_by b_ev <<<"$(head -n 1 "$ST_TMP/before")"
read -r a_pk a_by a_ev <<<"$(head -n 1 "$ST_TMP/after")"
b_rule=$(sed -n 2p "$ST_TMP/before")
a_rule=$(sed -n 2p "$ST_TMP/after")
check metrics_dropped_packets_match_maps within dropped \
	"$(metric "$ST_TMP/scrape" 'ipblock_packets_total{verdict="dropped"}')" "$b_pk" "$a_pk"
check metrics_dropped_bytes_match_maps within bytes \
	"$(metric "$ST_TMP/scrape" 'ipblock_bytes_total{verdict="dropped"}')" "$b_by" "$a_by"
check metrics_rule_hits_match_maps within rule \
	"$(metric "$ST_TMP/scrape" 'ipblock_rule_hits_total{rule="198.18.0.0/25",action="deny",source="static"}')" \
	"$b_rule" "$a_rule"
check metrics_droplog_events_match_maps within events \
	"$(metric "$ST_TMP/scrape" 'ipblock_droplog_events_total')" "$b_ev" "$a_ev"
check metrics_rules_per_family eq "$(metric "$ST_TMP/scrape" 'ipblock_rules{family="ipv4"}')" 1
check metrics_rules_per_source eq \
	"$(metric "$ST_TMP/scrape" 'ipblock_source_rules{source="static",family="ipv4"}')" 1
check metrics_droplog_on eq "$(metric "$ST_TMP/scrape" 'ipblock_droplog_enabled')" 1
check metrics_memory_shown within memory \
	"$(metric "$ST_TMP/scrape" 'ipblock_map_memory_bytes{kind="tables"}')" 1 100000000000
not_found() {
	local code
	code=$(net_ns rcv curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
		"http://127.0.0.1:$PORT/")
	[[ $code == 404 ]] && return 0
	WHY="GET / answered $code, expected 404"
	return 1
}
check metrics_other_paths_404 not_found

# --- the live view: ipblock-loader -s --watch ---------------------------------
# Not a terminal: one line a second, --count of them.
flood 4 &
FLOOD_PID=$!
sleep 1
"$LOADER" --pin-dir "$PIN" -s --watch --count 2 >"$ST_TMP/watch.lines" 2>&1
say "ipblock-loader -s --watch --count 2 | cat:"
sed 's/^/    /' "$ST_TMP/watch.lines"
lines_ok() {
	local n
	n=$(grep -cE '^[0-9T:-]+Z dropped=[0-9]+/s allowed=[0-9]+/s no_rule=[0-9]+/s not_ip=[0-9]+/s droplog=[0-9]+/s top: 198\.18\.0\.0/25=[0-9]+/s sources: 198\.18\.0\.1=[0-9]+/s$' "$ST_TMP/watch.lines")
	((n == 2)) && ! grep -q 'dropped=0/s' "$ST_TMP/watch.lines" && return 0
	WHY="expected 2 lines with a dropped rate, the rule and the source on top, got:
$(cat "$ST_TMP/watch.lines")"
	return 1
}
check watch_lines_when_not_a_terminal lines_ok
wait "$FLOOD_PID"

# A real terminal (tmux on a private server): the screen, redrawn.
TMUX_SOCK=$ST_ID
on_exit "tmux -L $TMUX_SOCK kill-server 2>/dev/null"
flood 6 &
FLOOD_PID=$!
sleep 1
tmux -L "$TMUX_SOCK" new-session -d -s watch -x 120 -y 30 \
	"'$LOADER' --pin-dir '$PIN' -s --watch --count 4; echo watch-exit=\$?; sleep 60"
sleep 3.5
tmux -L "$TMUX_SOCK" capture-pane -p -t watch >"$ST_TMP/screen1"
sleep 2.5
tmux -L "$TMUX_SOCK" capture-pane -p -t watch >"$ST_TMP/screen2"
wait "$FLOOD_PID"
say "the live view in tmux, after 3.5 s:"
sed -e '/^$/d' -e 's/^/    /' "$ST_TMP/screen1"
screen_ok() {
	local f=$ST_TMP/screen1
	grep -qE '^ipblock live view +[0-9-]+ [0-9:]+ UTC' "$f" &&
		grep -qE '^dropped +[0-9.]+[kMG]? +[0-9.]+[kMG]? +[0-9]+ *$' "$f" &&
		! grep -qE '^dropped +0 ' "$f" &&
		grep -qE '^ +[0-9.]+[kMG]? +[0-9.]+[kMG]? +198\.18\.0\.0/25 +deny *$' "$f" &&
		grep -qE '^rules: 1 IPv4, 0 IPv6; drop log: on' "$f" &&
		grep -qE '^top dropped sources' "$f" &&
		grep -qE '^ +[0-9.]+[kMG]? +198\.18\.0\.1 +198\.18\.0\.0/25 *$' "$f" && return 0
	WHY="the screen does not show a dropped rate, the rule, the drop log and the source:
$(cat "$f")"
	return 1
}
check watch_screen_shows_rates_and_rule screen_ok
one_screen() {
	# Redrawn in place: the header once, not scrolled; ended after --count 4.
	(($(grep -c 'ipblock live view' "$ST_TMP/screen2") == 1)) &&
		grep -q '^watch-exit=0$' "$ST_TMP/screen2" && return 0
	WHY="expected one redrawn screen and watch-exit=0:
$(cat "$ST_TMP/screen2")"
	return 1
}
check watch_redraws_in_place_and_stops one_screen

# --- stop turns the program's logging off ------------------------------------
stop_pid "$SVC_PID"
check stop_exit_0 eq "$?" 0
check stop_turns_logging_off eq "$(status_json 'd["drop_log"]["rate"]')" 0
report_gone() {
	[[ ! -e $TOP_FILE ]] && return 0
	WHY="$TOP_FILE is still there after the service stopped"
	return 1
}
check stop_removes_published_report report_gone

# watch_sources: the sources part of one line of the live view.
watch_sources() {
	"$LOADER" --pin-dir "$PIN" -s --watch --count 1 2>&1 | sed -n 's/.* sources: //p'
}
check watch_says_drop_log_off eq "$(watch_sources)" "drop-log-off"

# A service killed with the log on leaves a report that goes stale.
svc_start
check service_up_again svc_said "ipblock service ready" 2
kill -KILL "$SVC_PID"
{ wait "$SVC_PID"; } 2>/dev/null
sleep 3.5
check watch_says_no_service eq "$(watch_sources)" "no-service"

st_finish
