#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the seeds of fuzz-virtio-net (format at the top of fuzz-virtio-net.c).

Usage: gen-virtio-net-seeds.py DIR
"""
import os
import struct
import sys

OP_TX, OP_CTRL, OP_RX_BUFS, OP_HOST, OP_POKE, OP_KICK, OP_RUN, OP_DRAIN, OP_RESET, \
    OP_SAVE_LOAD, OP_LINK = range(11)
MRG, EVENT_IDX, INDIRECT, HOST_OFF, GUEST_OFF, CTRL, NO_HDR, MQ = (1 << i for i in range(8))


def avail(q):
    """Queue q's available ring on the fake machine (fuzz-virtio.h)."""
    return q * 0x2000 + 0x1000


def hdr(flags=0, gso=0, hdr_len=0, gso_size=0, start=0, off=0):
    return struct.pack("<BBHHHHH", flags, gso, hdr_len, gso_size, start, off, 0)


def frame(dst=b"\x52\x54\x00\x12\x34\x56", n=60):
    return dst + b"\x52\x54\x00\xaa\xbb\xcc\x08\x00" + bytes(i & 0xff for i in range(n - 14))


def tx(data, q=0, parts=2):
    return bytes([OP_TX, q, parts]) + struct.pack("<H", len(data)) + data


def ctrl(cls, cmd, data=b"", no_ack=False):
    body = bytes([cls, cmd]) + data
    return bytes([OP_CTRL, 1 if no_ack else 0, len(body)]) + body


def rx_bufs(n, size, q=0):
    return bytes([OP_RX_BUFS, q, n]) + struct.pack("<H", size)


def host(data):
    return bytes([OP_HOST]) + struct.pack("<H", len(data)) + data


SEEDS = {
    "tx-plain": [EVENT_IDX, tx(hdr() + frame()), bytes([OP_DRAIN])],
    "tx-tso": [HOST_OFF | INDIRECT,
               tx(hdr(1, 1, 54, 1448, 34, 16) + frame(n=1000), parts=4), bytes([OP_DRAIN])],
    "tx-bad-headers": [HOST_OFF,
                       tx(hdr(1, 0, 0, 0, 990, 16) + frame(n=1000)),
                       tx(hdr(0, 1, 0, 1448) + frame(n=1000)),
                       tx(hdr(1, 5, 0, 1448, 34, 16) + frame(n=1000)),
                       tx(hdr(0, 0x80) + frame()), tx(hdr()), tx(b""), bytes([OP_DRAIN])],
    "rx-mergeable": [MRG | GUEST_OFF, rx_bufs(16, 1024), host(hdr() + frame(n=3000)),
                     host(hdr(1, 1, 54, 1448, 34, 16) + frame(n=9000)), bytes([OP_RUN])],
    "rx-small": [0, rx_bufs(4, 1526), host(hdr() + frame()), host(hdr() + frame(n=2000)),
                 host(b"\x00" * 5), bytes([OP_RUN])],
    "rx-tiny-buffers": [MRG, rx_bufs(16, 0), rx_bufs(16, 11), rx_bufs(16, 64),
                        host(hdr() + frame(n=600)), bytes([OP_RUN])],
    "ctrl-linux": [CTRL | MRG, ctrl(0, 0, b"\x00"), ctrl(0, 1, b"\x00"),
                   ctrl(1, 0, struct.pack("<I", 0) + struct.pack("<I", 1) +
                        b"\x33\x33\x00\x00\x00\x01"),
                   ctrl(2, 0, struct.pack("<H", 5)), ctrl(1, 1, b"\x52\x54\x00\x01\x02\x03"),
                   ctrl(5, 0, struct.pack("<Q", 0)), rx_bufs(8, 2048),
                   host(hdr() + frame()), bytes([OP_RUN, OP_SAVE_LOAD])],
    "ctrl-bad": [CTRL, ctrl(1, 0, struct.pack("<I", 0xffffffff) + b"\x00" * 8),
                 ctrl(0, 9, b"\x01"), ctrl(4, 0, struct.pack("<H", 0)),
                 ctrl(0, 0, b"\x01", no_ack=True), bytes([OP_CTRL, 0, 1, 0])],
    "mq": [CTRL | MQ, ctrl(4, 0, struct.pack("<H", 2)), rx_bufs(4, 2048, 1),
           tx(hdr() + frame(), q=1), bytes([OP_DRAIN, OP_RESET])],
    "no-vnet-hdr": [NO_HDR | MRG, rx_bufs(8, 256), host(frame(n=1000)), tx(hdr() + frame()),
                    bytes([OP_DRAIN])],
    "link-save-load": [MRG, rx_bufs(8, 2048), bytes([OP_LINK, 0]), host(hdr() + frame()),
                       bytes([OP_SAVE_LOAD, OP_LINK, 1, OP_RUN])],
    # More available than the ring holds: the queue breaks, a restart mends it.
    "broken-ring": [0, bytes([OP_POKE]) + struct.pack("<HB", avail(0) + 2, 2) + b"\xff\xff",
                    bytes([OP_KICK, 1, OP_KICK, 0, OP_RESET]), tx(hdr() + frame()),
                    bytes([OP_DRAIN])],
}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, parts in SEEDS.items():
        data = bytes([parts[0]]) + b"".join(parts[1:])
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
