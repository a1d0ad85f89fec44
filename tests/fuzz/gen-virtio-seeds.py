#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the seed corpora of fuzz-virtio-balloon and fuzz-virtio-vsock.

Each seed is a short, readable session in the input layout documented at
the top of the target (what Linux's driver does, then some hostile turns).
Regenerate after changing a layout:
    tests/fuzz/gen-virtio-seeds.py tests/fuzz/corpus
"""
import os
import struct
import sys

# fuzz-virtio-balloon.c, enum Op.
(B_PFNS, B_BYTES, B_STATS, B_CONFIG_WRITE, B_CONFIG_READ, B_TARGET, B_TIMER, B_RUN, B_USED,
 B_SAVE_LOAD, B_RESTART, B_POKE) = range(12)
# fuzz-virtio-vsock.c, enum Op.
(V_TX, V_RX_ADD, V_EV_ADD, V_HOST_CONNECT, V_HOST_ACCEPT, V_HOST_WRITE, V_HOST_READ,
 V_HOST_CLOSE, V_RUN, V_USED, V_TIMER, V_SAVE_LOAD, V_RESTART, V_POKE) = range(14)
REQUEST, RESPONSE, RST, SHUTDOWN, RW, CREDIT_UPDATE, CREDIT_REQUEST = range(1, 8)
RAM = 1 << 20


def b_pfns(queue, pfns, split=0):
    return bytes([B_PFNS, queue, len(pfns)]) + b"".join(struct.pack("<H", p) for p in pfns) + \
        bytes([split])


def b_stats(entries, extra=0):
    return bytes([B_STATS, len(entries), extra]) + \
        b"".join(struct.pack("<BQ", tag, val) for tag, val in entries)


def b_config_write(off, width_sel, value):
    return bytes([B_CONFIG_WRITE, off, width_sel]) + struct.pack("<I", value)


def balloon_seeds():
    stats = [(4, 50 << 20), (5, 1 << 20), (6, 40 << 20), (0, 0), (42, 7)]
    return {
        # Linux: target, 256-PFN requests, actual, deflate.
        "inflate-deflate": bytes([0x0f]) +
        bytes([B_TARGET]) + struct.pack("<I", RAM - 64 * 4096) +
        b_pfns(0, range(100, 164)) + b_config_write(4, 2, 64) + bytes([B_RUN, B_USED]) +
        b_pfns(1, range(100, 132), split=0x60) + b_config_write(4, 2, 32) +
        bytes([B_CONFIG_READ, 0, 2, B_SAVE_LOAD, B_RUN, B_USED]),
        # Statistics: the primed buffer, polls, fresh buffers.
        "stats": bytes([0x0f]) + b_stats(stats) + bytes([B_RUN, B_TIMER, 1, B_USED]) +
        b_stats(stats[:2], extra=3) + bytes([B_RUN, B_TIMER, 2, B_SAVE_LOAD, B_RUN, B_TIMER,
                                            1, B_USED]),
        # PFNs outside RAM, odd lengths, zero-length and device-writable descriptors.
        "hostile-pfns": bytes([0x01]) + b_pfns(0, [0x8000, 255, 256, 257, 0xffff], split=0xa0) +
        bytes([B_BYTES, 0]) + struct.pack("<H", 7) + b"\x01\x02\x03\x04\x05\x06\x07" +
        bytes([0x40]) + b_pfns(1, [], split=0x80) + b_config_write(5, 0, 0xff) +
        b_config_write(0, 2, 1) + bytes([B_RUN, B_USED]),
        # A broken ring, then a driver starting again.
        "poke-restart": bytes([0x08]) + b_pfns(0, range(10)) +
        bytes([B_POKE]) + struct.pack("<H", 0x1002) + bytes([2, 0x40, 0x00]) +
        b_pfns(0, range(10, 20)) + bytes([B_RUN, B_RESTART, 0x0f]) + b_pfns(0, range(20, 30)) +
        bytes([B_USED, B_SAVE_LOAD]),
    }


def v_tx(op, ports=0, flags=0, credit=0x40, lie=0, payload_len=0):
    return bytes([V_TX, op, ports, flags, credit, lie]) + struct.pack("<H", payload_len)


def vsock_seeds():
    host_base = 3 << 2          # guest port 1, host port 2^30 (the first host-initiated one)
    return {
        # The guest connects to PATH_1, data both ways, clean close.
        "guest-connect": bytes([0x01]) + v_tx(REQUEST) + bytes([V_RUN, V_USED, V_HOST_ACCEPT]) +
        v_tx(RW, payload_len=100) + bytes([V_RUN, V_HOST_READ, 0, V_HOST_WRITE, 0]) +
        struct.pack("<H", 200) + bytes([V_RUN, V_USED]) + v_tx(CREDIT_REQUEST) +
        v_tx(SHUTDOWN, flags=3) + bytes([V_RUN, V_USED, V_SAVE_LOAD, V_RUN, V_USED]),
        # The host sends CONNECT 1, the guest accepts, data, the host closes.
        "host-connect": bytes([0x00, V_HOST_CONNECT, 0x01, V_RUN, V_USED]) +
        v_tx(RESPONSE, ports=host_base) + bytes([V_RUN, V_HOST_READ, 0, V_HOST_WRITE, 0]) +
        struct.pack("<H", 5000) + bytes([V_RUN, V_USED]) +
        v_tx(RW, ports=host_base, payload_len=3000) + bytes([V_HOST_CLOSE, 0, 2, V_RUN,
                                                            V_USED, V_TIMER, 3, V_USED]),
        # Back-pressure: a small credit, no rx buffers, then some.
        "credit": bytes([0x01]) + v_tx(REQUEST, credit=0x01) + bytes([V_RUN, V_USED,
                                                                     V_HOST_ACCEPT]) +
        bytes([V_HOST_WRITE, 0]) + struct.pack("<H", 60000) + bytes([V_RUN, V_USED]) +
        v_tx(CREDIT_UPDATE, credit=0x11) + bytes([V_RUN, V_USED, V_RX_ADD, 4]) +
        struct.pack("<H", 100) + bytes([V_RUN, V_USED]),
        # Lies: short headers, long lengths, other CIDs and types, unknown ops.
        "hostile": bytes([0x01]) + v_tx(REQUEST, lie=0x80) + v_tx(RW, lie=0x21, payload_len=10) +
        v_tx(REQUEST, lie=0x12) + v_tx(REQUEST, lie=0x41) + v_tx(8, ports=1) +
        bytes([V_HOST_CONNECT, 0x00, 5]) + b"HELLO" + bytes([V_EV_ADD, 2, V_RUN, V_USED]) +
        bytes([V_POKE]) + struct.pack("<H", 0x3002) + bytes([2, 0xff, 0xff]) +
        v_tx(REQUEST) + bytes([V_RUN, V_RESTART, 1, V_SAVE_LOAD, V_USED]),
    }


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__),
                                                              "corpus")
    for target, seeds in (("virtio-balloon", balloon_seeds()), ("virtio-vsock", vsock_seeds())):
        out = os.path.join(root, target)
        os.makedirs(out, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(out, name), "wb") as f:
                f.write(data)


if __name__ == "__main__":
    main()
