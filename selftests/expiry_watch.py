#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Watch timed rules leave the rule set the XDP program judges by.

expiry_watch.py PIN LIST UNTIL

LIST holds "CIDR deny ... expires=TIME" lines (IPv4 /32s).  Until the Unix
time UNTIL, the active set's trie (config_map's active_set: ipv4_map or
ipv4_map_b) is read again and again with bpftool.  A read started at t0
and ended at t1 that holds a rule shows it present at some instant >= t0;
one that lacks it shows it gone at some instant <= t1.  So a rule is
certainly early when a read ending before its deadline lacks it, and
certainly late when a read starting a second or more after its deadline
still holds it.  Prints one summary line and exits 1 on any early or late
rule, or on a rule never seen gone.
"""
import calendar
import json
import subprocess
import sys
import time

pin, listfile, until = sys.argv[1], sys.argv[2], float(sys.argv[3])

deadline = {}
for line in open(listfile):
    f = line.split()
    if not f or f[0].startswith("#"):
        continue
    exp = [x for x in f if x.startswith("expires=")][0][len("expires="):]
    addr = f[0].split("/")[0]
    deadline[addr] = calendar.timegm(time.strptime(exp, "%Y-%m-%dT%H:%M:%SZ"))


def dump(name):
    out = subprocess.run(["bpftool", "-j", "map", "dump", "pinned", f"{pin}/{name}"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


gone_at = {}  # addr -> t1 of the first read that lacked it
early, late = [], []
reads = 0
while time.time() < until:
    t0 = time.time()
    active = dump("config_map")[0]["formatted"]["value"]["active_set"]
    rules = dump("ipv4_map_b" if active else "ipv4_map")
    t1 = time.time()
    reads += 1
    present = set()
    for e in rules:
        k = e["formatted"]["key"]
        if k["prefixlen"] == 32:
            present.add(".".join(str(b) for b in k["addr"]))
    for a, d in deadline.items():
        if a in present:
            if t0 >= d + 1.0 and a not in late:
                late.append(a)
        else:
            if t1 < d and a not in early:
                early.append(a)
            gone_at.setdefault(a, t1)
    if len(gone_at) == len(deadline) and t0 > max(deadline.values()) + 1:
        break
    time.sleep(0.05)

never = [a for a in deadline if a not in gone_at]
lag = sorted(gone_at[a] - deadline[a] for a in gone_at)
worst = lag[-1] if lag else float("nan")
median = lag[len(lag) // 2] if lag else float("nan")
print(f"{len(deadline)} timed rules, {reads} reads of the active trie: {len(early)} early, "
      f"{len(late)} present a second past their deadline, {len(never)} never gone; "
      f"seen gone at most {worst:.2f} s after the deadline (median {median:.2f} s, "
      f"bounds that include the reads' own period)")
for what, lst in (("early", early), ("late", late), ("never gone", never)):
    if lst:
        print(f"  {what}: " + ", ".join(f"{a} (deadline {deadline[a]})" for a in lst[:5]))
sys.exit(1 if early or late or never else 0)
