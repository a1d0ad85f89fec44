#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the seed corpus of fuzz-virtio-blk.

Each seed is a short session in the input layout documented at the top of
tests/fuzz/fuzz-virtio-blk.c: what Linux's driver does, then hostile turns.
Regenerate after changing the layout:
    tests/fuzz/gen-virtio-blk-seeds.py tests/fuzz/corpus
"""
import os
import struct
import sys

# fuzz-virtio-blk.c, enum Op.
(REQUEST, DWZ, RUN, WAIT, USED, SAVE_LOAD, RESTART, POKE, CONFIG_READ) = range(9)
# Type selectors (index into the target's table).
T_IN, T_OUT, T_FLUSH, T_GET_ID, T_DISCARD, T_WZ, T_LIFETIME = range(7)
K_START_SECTORS = 4     # sector % disk, whole sectors
K_END_SECTORS = 5       # near the end, whole sectors
K_ANY = 2               # any sector, any length


def req(queue, tsel, kind, sector, length, layout=0):
    return bytes([REQUEST, queue, tsel, kind]) + struct.pack("<QH", sector, length) + \
        bytes([layout])


def dwz(discard, sector, num, flags, segs=1):
    return bytes([DWZ, 1 if discard else 0]) + struct.pack("<QII", sector, num, flags) + \
        bytes([segs])


def seeds():
    linux = (req(0, T_GET_ID, K_START_SECTORS, 0, 20) + req(0, T_IN, K_START_SECTORS, 0, 4096) +
             req(0, T_OUT, K_START_SECTORS, 8, 4096) + req(0, T_FLUSH, K_START_SECTORS, 0, 0) +
             bytes([USED]) + dwz(False, 16, 8, 1) + dwz(True, 32, 8, 0) + bytes([USED]) +
             bytes([CONFIG_READ, 0, 3]))
    return {
        "raw-linux": bytes([0x01]) + linux,
        "qcow2-linux": bytes([0x03]) + linux,
        "raw-readonly": bytes([0x05]) + linux,
        "qcow2-mq": bytes([0x0b]) + linux + req(1, T_OUT, K_START_SECTORS, 40, 8192, 8) +
        req(1, T_IN, K_START_SECTORS, 40, 8192, 8) + bytes([USED]),
        "hostile-requests": bytes([0x00]) +
        req(0, T_IN, K_END_SECTORS, 0, 1024) + req(0, T_OUT, K_ANY, 2**64 - 1, 512) +
        req(0, T_IN, K_ANY, 3, 100) + req(0, 250, K_START_SECTORS, 0, 512) +
        req(0, T_LIFETIME, K_START_SECTORS, 0, 16) + req(0, T_IN, K_START_SECTORS, 0, 512, 0x40) +
        req(0, T_OUT, K_START_SECTORS, 0, 512, 0x20) + req(0, T_OUT, K_START_SECTORS, 0, 512, 0x30) +
        req(0, T_IN, K_START_SECTORS, 0, 512, 0x03) + req(0, T_IN, K_START_SECTORS, 0, 512, 0x30) +
        dwz(True, 0, 8, 1) + dwz(False, 0, 8, 2) + dwz(False, 0, 8, 0, 2) + dwz(True, 0, 8, 0, 0) +
        dwz(False, 2**40, 0xffffffff, 0) + bytes([USED]),
        "inflight-save": bytes([0x03]) + b"".join(req(0, T_OUT, K_START_SECTORS, 8 * i, 4096)
                                                  for i in range(16)) +
        bytes([SAVE_LOAD, USED]) + req(0, T_IN, K_START_SECTORS, 0, 4096) +
        bytes([RESTART, 0x01, USED]),
        "poke-ring": bytes([0x01]) + req(0, T_IN, K_START_SECTORS, 0, 512) +
        bytes([POKE, 0x00, 0x00, 8]) + struct.pack("<Q", 0xffffffff0000) + bytes([RUN, USED]) +
        bytes([RESTART, 0x00]) + req(0, T_IN, K_START_SECTORS, 0, 512) + bytes([USED]),
    }


def main():
    out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "corpus", "virtio-blk")
    os.makedirs(out, exist_ok=True)
    for name, data in seeds().items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
