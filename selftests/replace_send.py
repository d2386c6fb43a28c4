#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Stream UDP datagrams from several source addresses, round-robin, paced.

replace_send.py DST4 DST6 PORT RUNFILE MAXSECS SRC...

Sends one datagram from each SRC per round while RUNFILE exists (and for
MAXSECS at most), then prints "SRC SENT" per source.  Only datagrams the
kernel accepted are counted; the rounds are paced so that the veth ring in
front of the XDP program never overflows.
"""
import os
import socket
import sys
import time


def main():
    if len(sys.argv) < 7:
        sys.exit(__doc__)
    dst4, dst6, port, runfile, maxsecs = sys.argv[1:6]
    srcs = sys.argv[6:]
    port, maxsecs = int(port), float(maxsecs)
    socks = []
    for src in srcs:
        v6 = ":" in src
        s = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((src, 0))
        socks.append((s, (dst6 if v6 else dst4, port)))
    sent = [0] * len(srcs)
    payload = b"ipblock-replace-test"
    deadline = time.monotonic() + maxsecs
    while os.path.exists(runfile) and time.monotonic() < deadline:
        for i, (s, dst) in enumerate(socks):
            try:
                s.sendto(payload, dst)
                sent[i] += 1
            except OSError:
                pass  # not accepted, not counted
        time.sleep(0.0003)
    for src, n in zip(srcs, sent):
        print(src, n)


if __name__ == "__main__":
    main()
