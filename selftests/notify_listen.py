#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A stand-in for systemd's notify socket: binds the datagram socket PATH
and appends every message it receives to LOG, one line per assignment
(READY=1, STATUS=...), until killed or SECONDS have passed."""
import os
import socket
import sys
import time

path, log, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
try:
    os.unlink(path)
except FileNotFoundError:
    pass
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(0.2)
end = time.monotonic() + seconds
with open(log, "a", buffering=1) as out:
    while time.monotonic() < end:
        try:
            msg = s.recv(65536)
        except socket.timeout:
            continue
        for line in msg.decode(errors="replace").splitlines():
            out.write(line + "\n")
