#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Send crafted Ethernet frames on an interface through a raw AF_PACKET socket.

    sendframes.py IFACE DST_MAC SRC_MAC COUNT SPEC...

Each SPEC sends COUNT frames.  A SPEC is TAGS:PAYLOAD where

    TAGS     comma-separated VLAN tags, outermost first, each q<VID> (802.1Q,
             0x8100) or ad<VID> (802.1ad, 0x88a8); "-" for an untagged frame
    PAYLOAD  udp/SRC/DST/DPORT   an IPv4 or IPv6 UDP datagram (by SRC's family)
             from source port 40000 to DPORT
             arp/SRC/DST         an ARP request: who-has DST tell SRC

e.g. "q10,q20:udp/198.18.0.1/198.18.0.2/41001" or "-:arp/198.18.0.1/198.18.0.99".
Plain Python on purpose: no scapy needed, and it starts fast.
"""
import ipaddress
import socket
import struct
import sys
import time

PAYLOAD = b"ipblock-selftest"
TPID = {"q": 0x8100, "ad": 0x88A8}


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp(src, dst, dport):
    src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    length = 8 + len(PAYLOAD)
    if src.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 1, 0, 64, 17, 0,
                         src.packed, dst.packed)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        pseudo = src.packed + dst.packed + struct.pack("!BBH", 0, 17, length)
        ethertype = 0x0800
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, length, 17, 64, src.packed, dst.packed)
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", length, 17)
        ethertype = 0x86DD
    hdr = struct.pack("!HHHH", 40000, dport, length, 0)
    check = csum(pseudo + hdr + PAYLOAD) or 0xFFFF
    hdr = hdr[:6] + struct.pack("!H", check)
    return ethertype, ip + hdr + PAYLOAD


def arp(src_mac, src, dst):
    body = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, src_mac,
                       ipaddress.IPv4Address(src).packed, b"\0" * 6,
                       ipaddress.IPv4Address(dst).packed)
    return 0x0806, body


def frame(spec, dst_mac, src_mac):
    tags, payload = spec.split(":", 1)
    kind, *args = payload.split("/")
    if kind == "udp":
        ethertype, body = udp(args[0], args[1], int(args[2]))
    elif kind == "arp":
        ethertype, body = arp(src_mac, args[0], args[1])
    else:
        raise ValueError("unknown payload %r" % kind)
    head = dst_mac + src_mac
    if tags != "-":
        for tag in tags.split(","):
            name = tag.rstrip("0123456789")
            head += struct.pack("!HH", TPID[name], int(tag[len(name):]))
    return head + struct.pack("!H", ethertype) + body


def main(argv):
    if len(argv) < 6:
        sys.exit(__doc__)
    iface, count = argv[1], int(argv[4])
    dst_mac = bytes.fromhex(argv[2].replace(":", ""))
    src_mac = bytes.fromhex(argv[3].replace(":", ""))
    frames = [frame(spec, dst_mac, src_mac) for spec in argv[5:]]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
        s.bind((iface, 0))
        for f in frames:
            for _ in range(count):
                s.send(f)
                # Gentle: a veth in XDP mode queues into a 256-slot ring.
                time.sleep(0.001)


if __name__ == "__main__":
    main(sys.argv)
