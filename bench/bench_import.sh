#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Bulk rule-set figures for ipblock-rule, with the flat lookup (the default)
# against --lookup trie (the LPM tries alone, the "before"): import of 1M
# generated IPv4 prefixes (median of interleaved rounds, the bulk issue's
# <= 2 s target), then once each: import of 100k, -l and -S of 1M, -R of 1M
# over 1M unchanged and with 10% changed, flush; wall/user/sys time and
# peak RSS per command, and what the kernel spends.  Prints a markdown
# report.  Not part of make test; under a minute on a 2-core machine.
#
#   BUILD=build bench/bench_import.sh [-r ROUNDS] [-l "flat trie"] [-o DATAFILE]
#
# DATAFILE gets "import1m LOOKUP median min max" lines (seconds) for
# bench/run.sh's targets.  Runs against private pin directories and veths
# in a private namespace, so it never touches a real installation.

set -u
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

PYTHON=/usr/bin/python3
TIME=/usr/bin/time

ROUNDS=3
LOOKUPS="flat trie"
DATA=
while getopts "r:l:o:h" opt; do
	case $opt in
	r) ROUNDS=$OPTARG ;;
	l) LOOKUPS=$OPTARG ;;
	o) DATA=$OPTARG ;;
	*) usage 3,17 "$opt" ;;
	esac
done

ID=ipbbench-$$
NS=$ID
TMP=

# pin L / dev L: the pin directory and interface of lookup L.
pin() {
	echo "/sys/fs/bpf/$ID-$1"
}
dev() {
	echo "vb$1"
}

cleanup() {
	local l p
	for l in $LOOKUPS; do
		p=$(pin "$l")
		if [[ -e /run/netns/$NS ]]; then
			nsenter --net="/run/netns/$NS" "$LOADER" -d "$(dev "$l")" --pin-dir "$p" -u >/dev/null 2>&1
		fi
		if [[ -d $p ]]; then
			rm -f "$p"/* 2>/dev/null
			rmdir "$p" 2>/dev/null
		fi
	done
	[[ -e /run/netns/$NS ]] && ip netns del "$NS" 2>/dev/null
	[[ -n $TMP ]] && rm -rf "$TMP"
}
# shellcheck disable=SC2317 # runs from the trap
trap cleanup EXIT
trap 'exit 130' INT TERM

die() {
	echo "bench_import: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || die "needs root"
for f in "$LOADER" "$RULE" "$PYTHON" "$TIME"; do
	[[ -x $f ]] || die "needs $f (build first: make BUILD=${BUILD#"$BL_REPO"/})"
done
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || die "-r takes 1 to 99 rounds"
for l in $LOOKUPS; do
	[[ $l == flat || $l == trie ]] || die "-l takes flat and/or trie"
done
TMP=$(mktemp -d /tmp/$ID.XXXXXX)

ip netns add "$NS" || die "cannot create a namespace"
for l in $LOOKUPS; do
	ip -n "$NS" link add "$(dev "$l")" type veth peer name "$(dev "$l")1" ||
		die "cannot create a veth"
	ip -n "$NS" link set "$(dev "$l")" up
	ip -n "$NS" link set "$(dev "$l")1" up
	nsenter --net="/run/netns/$NS" "$LOADER" -d "$(dev "$l")" --pin-dir "$(pin "$l")" \
		--max-rules 1000000 --lookup "$l" >/dev/null || die "cannot attach ipblock ($l lookup)"
done

# Lists: unique random IPv4 prefixes, /16../32, in save format; the second
# 1M list flips the action of 5% and swaps another 5% for new prefixes.
"$PYTHON" - "$TMP" <<'EOF' || die "cannot generate the lists"
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

# R L ARGS...: ipblock-rule on lookup L's maps (untimed steps).
R() {
	local l=$1
	shift
	"$RULE" --pin-dir "$(pin "$l")" "$@"
}

# run KEY L CMD...: time one command; $TMP/KEY.L gets "wall user sys rss_kb".
run() {
	local key=$1 l=$2
	shift 2
	if ! "$TIME" -f '%e %U %S %M' -o "$TMP/$key.$l" "$@" >"$TMP/out" 2>"$TMP/err"; then
		cat "$TMP/err" >&2
		die "'$key' ($l lookup) failed"
	fi
}

# Bytes in allocated kmalloc objects: trie nodes are kmalloc()ed and
# memcg-charged.  Object counts, unlike /proc/meminfo's Slab, do not hide
# nodes that land in slab pages freed objects left half empty.
slab_bytes() {
	awk '$1 ~ /^kmalloc-/ { sum += $2 * $4 } END { printf "%d\n", sum }' /proc/slabinfo
}

settle() {
	# Freed trie nodes go back to the slab after an RCU grace period.
	sleep 1
}

# memlock L MAP...: the kernel's account of the maps (bytes).
memlock() {
	local l=$1 m total=0 b
	shift
	for m in "$@"; do
		b=$(bpftool map show pinned "$(pin "$l")/$m" 2>/dev/null |
			awk '{ for (i = 1; i < NF; i++) if ($i == "memlock") print $(i + 1) }')
		b=${b%B}
		[[ $b =~ ^[0-9]+$ ]] && total=$((total + b))
	done
	echo "$total"
}

# --- 1M import, interleaved rounds ---------------------------------------------
declare -A WALLS USER SYS RSS SLAB TRIE_MEMLOCK
read -ra LK <<<"$LOOKUPS"
for ((r = 0; r < ROUNDS; r++)); do
	for ((j = 0; j < ${#LK[@]}; j++)); do
		l=${LK[(j + r) % ${#LK[@]}]}
		R "$l" -F >/dev/null
		settle
		before=$(slab_bytes)
		run import1m "$l" "$RULE" --pin-dir "$(pin "$l")" -i "$TMP/v4_1m.txt"
		read -r wall user sys rss <"$TMP/import1m.$l"
		WALLS[$l]+="$wall "
		USER[$l]+="$user "
		SYS[$l]+="$sys "
		RSS[$l]+="$rss "
		if ((r == 0)); then
			settle
			SLAB[$l]=$(($(slab_bytes) - before))
			TRIE_MEMLOCK[$l]=$(memlock "$l" ipv4_map)
		fi
	done
done

# --- the other operations, once each ---------------------------------------------
OPS=(list save same changed flush import100k)
declare -A OP_LABEL=(
	[list]="list (-l)"
	[save]="save (-S)"
	[same]="replace, nothing changed (-R of the save)"
	[changed]="replace, 10% changed (-R)"
	[flush]="flush (-F)"
	[import100k]="import (-i -p deny) into an empty set"
)
declare -A OP_RULES=([list]=1000000 [save]=1000000 [same]=1000000 [changed]=1000000
	[flush]=1000000 [import100k]=100000)
for l in $LOOKUPS; do
	run list "$l" "$RULE" --pin-dir "$(pin "$l")" -l
	run save "$l" "$RULE" --pin-dir "$(pin "$l")" -S
	cp "$TMP/out" "$TMP/saved.txt"
	run same "$l" "$RULE" --pin-dir "$(pin "$l")" -R "$TMP/saved.txt"
	run changed "$l" "$RULE" --pin-dir "$(pin "$l")" -R "$TMP/v4_1m_changed.txt"
	changes=$(grep -o '[0-9]* added, [0-9]* updated, [0-9]* deleted' "$TMP/out")
	run flush "$l" "$RULE" --pin-dir "$(pin "$l")" -F
	run import100k "$l" "$RULE" --pin-dir "$(pin "$l")" -i "$TMP/v4_100k.txt" -p deny
done

# --- report --------------------------------------------------------------------------
has() {
	[[ " $LOOKUPS " == *" $1 "* ]]
}

echo "## ipblock-rule bulk figures ($(nproc) CPUs, kernel $(uname -r))"
echo
echo "Importing 1,000,000 IPv4 prefixes (\`ipblock-rule -i\`, save format) into an attached,"
echo "empty ipblock: median of $ROUNDS interleaved rounds.  Target (bulk issue): ≤ 2 s."
echo
echo "| lookup | wall s (median) | min–max | × trie | user s | sys s | peak RSS MiB | ≤ 2 s? |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
[[ -n $DATA ]] && : >"$DATA"
trie_med=
# shellcheck disable=SC2086 # word lists
has trie && read -r trie_med _ <<<"$(stats ${WALLS[trie]})"
for l in $LOOKUPS; do
	# shellcheck disable=SC2086
	read -r m lo hi <<<"$(stats ${WALLS[$l]})"
	# shellcheck disable=SC2086
	read -r um _ <<<"$(stats ${USER[$l]})"
	# shellcheck disable=SC2086
	read -r sm _ <<<"$(stats ${SYS[$l]})"
	# shellcheck disable=SC2086
	read -r rm _ <<<"$(stats ${RSS[$l]})"
	met=$(awk -v m="$m" 'BEGIN { print m <= 2 ? "met" : "MISSED" }')
	echo "| $l | $m | $lo–$hi | $(ratio "$m" "${trie_med:-0}") | $um | $sm | $((${rm%.*} / 1024)) | $met |"
	[[ -n $DATA ]] && echo "import1m $l $m $lo $hi" >>"$DATA"
done
echo
echo "Peak RSS counts the pages of BPF maps the process has mmap()ed: with the flat lookup"
echo "ipblock-rule maps every flat table (the kernel's pages, not a copy), so it shows their"
echo "size, not memory the process allocated."
echo
echo "Then, once each (wall seconds; user, sys and peak RSS of the flat lookup's run):"
echo
echo "| operation | rules | trie: wall s | flat: wall s | flat ÷ trie | flat: user s | flat: sys s | flat: peak RSS MiB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for op in "${OPS[@]}"; do
	tw=- fw=- fu=- fs=- fr=-
	has trie && read -r tw _ <"$TMP/$op.trie"
	has flat && read -r fw fu fs fr <"$TMP/$op.flat"
	[[ $fr != - ]] && fr=$((fr / 1024))
	q=–
	[[ $tw != - && $fw != - ]] && q=$(ratio "$fw" "$tw")
	echo "| ${OP_LABEL[$op]} | ${OP_RULES[$op]} | $tw | $fw | $q | $fu | $fs | $fr |"
done
echo
echo "The 10% change was: $changes (each change is made in set B, then in set A)."
echo
echo "| kernel memory, 1M rules | trie lookup | flat lookup |"
echo "| --- | ---: | ---: |"
row() {
	local what=$1 t=$2 f=$3
	has trie || t=–
	has flat || f=–
	echo "| $what | $t | $f |"
}
row "kmalloc objects added by the import, bytes per rule (both sets' tries)" \
	"$((${SLAB[trie]:-0} / 1000000))" "$((${SLAB[flat]:-0} / 1000000))"
row "bpftool memlock of one trie, bytes per rule (leaves only, the kernel's estimate)" \
	"$((${TRIE_MEMLOCK[trie]:-0} / 1000000))" "$((${TRIE_MEMLOCK[flat]:-0} / 1000000))"
flat_maps=()
for f in 4 6; do
	for m in top top_b data data_b ids; do
		flat_maps+=("flat${f}_$m")
	done
done
row "flat tables, both families and sets, MiB (fixed by --max-rules 1000000)" \
	"$(awk -v b="$(memlock trie "${flat_maps[@]}")" 'BEGIN { printf "%.1f", b / 1048576 }')" \
	"$(awk -v b="$(memlock flat "${flat_maps[@]}")" 'BEGIN { printf "%.1f", b / 1048576 }')"
