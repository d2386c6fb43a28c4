#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Bulk rule-set figures for ipblock-rule: import of 1M generated IPv4
# prefixes into a freshly attached ipblock, growth of its tables included
# (median of rounds, each on new maps; the bulk issue's <= 2 s target),
# then once each: -l and -S of 1M, -R of 1M over 1M unchanged and with 10%
# changed, flush, import of 100k; wall/user/sys time and peak RSS per
# command, and the kernel memory of the maps after each step.  Prints a
# markdown report.  Not part of make test; under a minute on a 2-core
# machine.
#
#   BUILD=build bench/bench_import.sh [-r ROUNDS] [-o DATAFILE]
#
# DATAFILE gets an "import1m median min max" line (seconds) for
# bench/run.sh's targets.  Runs against private pin directories and a veth
# in a private namespace, so it never touches a real installation.

set -u
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

PYTHON=/usr/bin/python3

ROUNDS=3
DATA=
while getopts "r:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	o) DATA=$OPTARG ;;
	*) usage 3,17 "$opt" ;;
	esac
done
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "-r takes 1 to 99 rounds"

bl_init bpftool "$PYTHON" "$GNU_TIME"
bl_need_built "$LOADER" "$RULE" "$TG"

ns_add imp
ip -n "$(ns imp)" link add name vbi0 type veth peer name vbi1 || die "cannot create a veth"
ip -n "$(ns imp)" link set vbi0 up
ip -n "$(ns imp)" link set vbi1 up

# Lists: unique random IPv4 prefixes, /16../32, in save format; the second
# 1M list flips the action of 5% and swaps another 5% for new prefixes.
"$PYTHON" - "$BL_TMP" <<'EOF' || die "cannot generate the lists"
import random, sys
tmp = sys.argv[1]
random.seed(42)

def prefixes(n, seen):
    out = []
    while len(out) < n:
        ln = random.randint(16, 32)
        a = random.getrandbits(32) & ((0xffffffff << (32 - ln)) & 0xffffffff)
        if (a, ln) in seen:
            continue
        seen.add((a, ln))
        out.append("%d.%d.%d.%d/%d" % (a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, ln))
    return out

seen = set()
big = prefixes(1000000, seen)
with open(tmp + "/v4_100k.txt", "w") as f:
    f.write("\n".join(prefixes(100000, set())) + "\n")
with open(tmp + "/v4_1m.txt", "w") as f:
    f.write("".join(p + " deny\n" for p in big))
fresh = prefixes(50000, seen)
with open(tmp + "/v4_1m_changed.txt", "w") as f:
    for i, p in enumerate(big):
        r = i % 20
        if r == 0:
            f.write(p + " allow\n")
        elif r == 1:
            f.write(fresh[i // 20] + " deny\n")
        else:
            f.write(p + " deny\n")
EOF

# attach R: ipblock on vbi0 with new maps in its own pin directory, in PIN.
attach() {
	pin_dir "imp-$1"
	net imp "$LOADER" --pin-dir "$PIN" -d vbi0 -m native >/dev/null ||
		die "cannot attach ipblock to vbi0"
	on_exit "net imp $LOADER --pin-dir $PIN -d vbi0 -u"
}

detach() {
	net imp "$LOADER" --pin-dir "$PIN" -d vbi0 -u >/dev/null
	rm -rf "$PIN"
}

# run KEY CMD...: time one command; $BL_TMP/KEY gets "wall user sys rss_kb".
run() {
	local key=$1
	shift
	if ! "$GNU_TIME" -f '%e %U %S %M' -o "$BL_TMP/$key" "$@" >"$BL_TMP/out" 2>"$BL_TMP/err"; then
		cat "$BL_TMP/err" >&2
		die "'$key' failed"
	fi
}

# mem: the kernel memory of the maps (tables_memory(), memlock), MiB.
mem() {
	"$TG" mem --pin-dir "$PIN" | awk '{ printf "%.1f\n", $2 / 1048576 }'
}

# --- 1M import, rounds on new maps ---------------------------------------------------
WALL_S='' USR_S='' SYS_S='' RSS_KB=''
declare -A MEM
for ((r = 0; r < ROUNDS; r++)); do
	attach "$r"
	run import1m nsenter --net="$(ns_path imp)" "$RULE" --pin-dir "$PIN" -i "$BL_TMP/v4_1m.txt"
	read -r wall user sys rss <"$BL_TMP/import1m"
	WALL_S+="$wall " USR_S+="$user " SYS_S+="$sys " RSS_KB+="$rss "
	MEM[import1m]=$(mem)
	if ((r + 1 < ROUNDS)); then
		detach
	fi
done

# --- the other operations, once each, on the last round's maps -----------------------
OPS=(list save same changed flush import100k)
declare -A OP_LABEL=(
	[list]="list (-l)"
	[save]="save (-S)"
	[same]="replace, nothing changed (-R of the save)"
	[changed]="replace, 10% changed (-R)"
	[flush]="flush (-F)"
	[import100k]="import (-i -p deny) into the flushed set"
)
declare -A OP_RULES=([list]=1000000 [save]=1000000 [same]=1000000 [changed]=1000000
	[flush]=1000000 [import100k]=100000)
R=(nsenter --net="$(ns_path imp)" "$RULE" --pin-dir "$PIN")
run list "${R[@]}" -l
MEM[list]=$(mem)
run save "${R[@]}" -S
cp "$BL_TMP/out" "$BL_TMP/saved.txt"
MEM[save]=$(mem)
run same "${R[@]}" -R "$BL_TMP/saved.txt"
MEM[same]=$(mem)
run changed "${R[@]}" -R "$BL_TMP/v4_1m_changed.txt"
MEM[changed]=$(mem)
changes=$(grep -o '[0-9]* added, [0-9]* updated, [0-9]* deleted' "$BL_TMP/out")
run flush "${R[@]}" -F
MEM[flush]=$(mem)
run import100k "${R[@]}" -i "$BL_TMP/v4_100k.txt" -p deny
MEM[import100k]=$(mem)

# --- report --------------------------------------------------------------------------
echo "## ipblock-rule bulk figures ($(nproc) CPUs, kernel $(uname -r))"
echo
echo "Importing 1,000,000 IPv4 prefixes (\`ipblock-rule -i\`, save format) into a freshly"
echo "attached ipblock (new maps each round, so every round grows the tables from nothing):"
echo "median of $ROUNDS rounds.  Target (bulk issue, and issue 14 with growth): ≤ 2 s."
echo
echo "| wall s (median) | min–max | user s | sys s | peak RSS MiB | kernel MiB after | ≤ 2 s? |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"
[[ -n $DATA ]] && : >"$DATA"
# shellcheck disable=SC2086 # word lists
read -r m lo hi <<<"$(stats $WALL_S)"
# shellcheck disable=SC2086
read -r um _ <<<"$(stats $USR_S)"
# shellcheck disable=SC2086
read -r sm _ <<<"$(stats $SYS_S)"
# shellcheck disable=SC2086
read -r rm _ <<<"$(stats $RSS_KB)"
met=$(awk -v m="$m" 'BEGIN { print m <= 2 ? "met" : "MISSED" }')
echo "| $m | $lo–$hi | $um | $sm | $((${rm%.*} / 1024)) | ${MEM[import1m]} | $met |"
[[ -n $DATA ]] && echo "import1m $m $lo $hi" >>"$DATA"
echo
echo "Peak RSS counts the pages of BPF maps the process has mmap()ed: ipblock-rule maps the"
echo "tables it changes (the kernel's pages, not a copy).  Kernel MiB: memlock of every map,"
echo "inner segment maps included (\`tables_memory()\`), after the command."
echo
echo "Then, once each, on the last round's maps:"
echo
echo "| operation | rules | wall s | user s | sys s | peak RSS MiB | kernel MiB after |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for op in "${OPS[@]}"; do
	read -r w u s r <"$BL_TMP/$op"
	echo "| ${OP_LABEL[$op]} | ${OP_RULES[$op]} | $w | $u | $s | $((r / 1024)) | ${MEM[$op]} |"
done
echo
echo "The 10% change was: $changes."
