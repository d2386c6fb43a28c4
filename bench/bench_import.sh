#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Bulk rule-set figures for ipblock-rule: import of 100k and 1M generated
# IPv4 prefixes, -l and -S of 1M, -R of 1M over 1M with 10% changed, flush;
# wall/user/sys time and peak RSS per command, and what the kernel spends
# per rule.  Prints a markdown table.  Not part of make test; about a
# minute on a 2-core machine.
#
#   BUILD=build bench/bench_import.sh
#
# Runs against a private pin directory and a veth in a private namespace,
# so it never touches a real installation.

set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$REPO/$BUILD
LOADER=$BUILD/ipblock-loader
RULE=$BUILD/ipblock-rule
PYTHON=/usr/bin/python3
TIME=/usr/bin/time

ID=ipbbench-$$
NS=$ID
PIN=/sys/fs/bpf/$ID
TMP=

cleanup() {
	if [[ -e /run/netns/$NS ]]; then
		nsenter --net="/run/netns/$NS" "$LOADER" -d vb --pin-dir "$PIN" -u >/dev/null 2>&1
		ip netns del "$NS" 2>/dev/null
	fi
	if [[ -d $PIN ]]; then
		rm -f "$PIN"/* 2>/dev/null
		rmdir "$PIN" 2>/dev/null
	fi
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
	[[ -x $f ]] || die "needs $f (build first: make BUILD=${BUILD#"$REPO"/})"
done
TMP=$(mktemp -d /tmp/$ID.XXXXXX)

ip netns add "$NS" || die "cannot create a namespace"
ip -n "$NS" link add vb type veth peer name vb1 || die "cannot create a veth"
ip -n "$NS" link set vb up
ip -n "$NS" link set vb1 up
nsenter --net="/run/netns/$NS" "$LOADER" -d vb --pin-dir "$PIN" --max-rules 1000000 >/dev/null ||
	die "cannot attach ipblock"

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

R=("$RULE" --pin-dir "$PIN")
ROWS=()

# run LABEL RULES CMD...: time one command, keep a table row.
run() {
	local label=$1 rules=$2 out=$TMP/out
	shift 2
	if ! "$TIME" -f '%e %U %S %M' -o "$TMP/time" "$@" >"$out" 2>"$TMP/err"; then
		cat "$TMP/err" >&2
		die "'$label' failed"
	fi
	read -r wall user sys rss <"$TMP/time"
	ROWS+=("| $label | $rules | $wall | $user | $sys | $((rss / 1024)) |")
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

"${R[@]}" -F >/dev/null
run "import (-i -p deny)" 100000 "${R[@]}" -i "$TMP/v4_100k.txt" -p deny
"${R[@]}" -F >/dev/null
settle
slab_before=$(slab_bytes)
run "import (-i, save format)" 1000000 "${R[@]}" -i "$TMP/v4_1m.txt"
settle
slab_after=$(slab_bytes)
memlock=$(bpftool map show pinned "$PIN/ipv4_map" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "memlock") print $(i + 1) }')
run "list (-l)" 1000000 "${R[@]}" -l
run "save (-S)" 1000000 "${R[@]}" -S
cp "$TMP/out" "$TMP/saved.txt"
run "replace, nothing changed (-R of the save)" 1000000 "${R[@]}" -R "$TMP/saved.txt"
run "replace, 10% changed (-R)" 1000000 "${R[@]}" -R "$TMP/v4_1m_changed.txt"
changes=$(grep -o '[0-9]* added, [0-9]* updated, [0-9]* deleted' "$TMP/out")
run "flush (-F)" 1000000 "${R[@]}" -F

echo "## ipblock-rule bulk figures ($(nproc) CPUs, kernel $(uname -r))"
echo
echo "| operation | rules | wall s | user s | sys s | peak RSS MiB |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
printf '%s\n' "${ROWS[@]}"
echo
echo "The 10% change was: $changes (each change is made in set B, then in set A)."
echo
slab_delta=$((slab_after - slab_before))
echo "| kernel memory, 1M rules | bytes per rule |"
echo "| --- | ---: |"
echo "| kmalloc objects added, both sets | $((slab_delta / 1000000)) |"
echo "| the same, per set (one LPM trie) | $((slab_delta / 2000000)) |"
[[ -n $memlock ]] && echo "| bpftool memlock of one trie (leaves only, the kernel's estimate) | $((${memlock%B} / 1000000)) |"
