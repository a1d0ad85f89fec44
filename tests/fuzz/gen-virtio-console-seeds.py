#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the seeds of fuzz-virtio-console into tests/fuzz/corpus/virtio-console/.

The input format is described at the top of fuzz-virtio-console.c: a config
byte, then operations. Each seed is a small, readable scenario: the Linux
handshake with a named port and a socket client, back-pressure on the
console, the single-port console, and one seed per kind of malformation.
"""
import os
import struct
import sys

(CTRL_MSG, CTRL_BUF, RX_BUF, TX, HOST_INPUT, BACKEND, KICK, POKE, RUN, RESET, SETUP,
 SAVE_LOAD, LOAD_DAMAGED, CLIENT, READ_CTRL) = range(15)
DEVICE_READY, PORT_ADD, PORT_REMOVE, PORT_READY, CONSOLE_PORT, RESIZE, PORT_OPEN, PORT_NAME = \
    range(8)
BAD_ID = 0xffffffff

# Config bits: max-ports - 1, MULTIPORT, EVENT_IDX, INDIRECT_DESC, named port 1.
MULTIPORT, EVENT_IDX, INDIRECT, NAMED = 4, 8, 0x10, 0x20

# The fake machine's ring layout (fuzz-virtio.h); queue 0 is port 0's
# receiveq, queue 1 its transmitq. A poke writes at most 15 bytes.


def desc(q, i=0):
    return q * 0x2000 + 16 * i


def used(q):
    return q * 0x2000 + 0x1800


def cfg(ports=1, flags=0):
    return bytes([(ports - 1) | flags])


def ctrl(port, event, value, extra=b""):
    msg = struct.pack("<IHH", port, event, value) + extra
    return bytes([CTRL_MSG, len(msg)]) + msg


def raw_ctrl(data):
    return bytes([CTRL_MSG, len(data)]) + data


def ctrl_bufs(n, size):
    return bytes([CTRL_BUF, n - 1]) + struct.pack("<H", size)


def rx_buf(port, size):
    return bytes([RX_BUF, port]) + struct.pack("<H", size)


def tx(port, data, parts=1):
    return bytes([TX, port, parts - 1, len(data)])


def host_input(data):
    return bytes([HOST_INPUT, len(data)]) + data


def client(what, data=b""):
    if what == "send":
        return bytes([CLIENT, 1, len(data)]) + data
    return bytes([CLIENT, {"connect": 0, "read": 2, "close": 3}[what]])


def op(code, *args):
    return bytes([code] + list(args))


def poke(gpa, data):
    return bytes([POKE]) + struct.pack("<HB", gpa, len(data)) + data


def handshake(ports):
    """What Linux does: buffers, DEVICE_READY, then PORT_READY/PORT_OPEN per port."""
    s = ctrl_bufs(4, 512) + ctrl(BAD_ID, DEVICE_READY, 1) + op(READ_CTRL)
    for p in ports:
        s += rx_buf(p, 256) + rx_buf(p, 256) + ctrl(p, PORT_READY, 1) + op(READ_CTRL)
        s += ctrl(p, PORT_OPEN, 1) + op(READ_CTRL)
    return s


SEEDS = {
    "linux-named-port": cfg(2, MULTIPORT | EVENT_IDX | NAMED) + handshake([0, 1]) +
    client("connect") + op(READ_CTRL) + client("send", b"{\"execute\":\"guest-ping\"}\n") +
    op(RUN) + tx(1, b"{\"return\": {}}\n") + client("read") + host_input(b"echo\n") +
    tx(0, b"echo\n") + op(SAVE_LOAD) + client("close") + op(READ_CTRL),
    "console-back-pressure": cfg(1, MULTIPORT | INDIRECT) + handshake([0]) +
    op(BACKEND, 10) + tx(0, bytes(100), 3) + tx(0, bytes(20)) + op(SAVE_LOAD) +
    op(BACKEND, 200) + op(RUN) + op(BACKEND, 255) + op(RUN),
    "single-port": cfg(1) + rx_buf(0, 64) + host_input(b"abc") + tx(0, b"xyz", 2) +
    op(KICK, 2) + op(KICK, 3) + op(KICK, 200) + op(SAVE_LOAD),
    "bad-control": cfg(4, MULTIPORT | NAMED) + ctrl_bufs(4, 64) +
    ctrl(0, PORT_READY, 1) + ctrl(0, DEVICE_READY, 0) + b"".join(
        raw_ctrl(bytes(n)) for n in range(8)) + ctrl(BAD_ID, DEVICE_READY, 1) +
    op(READ_CTRL) + ctrl(4, PORT_READY, 1) + ctrl(BAD_ID, PORT_OPEN, 1) +
    ctrl(0, PORT_READY, 2) + ctrl(2, PORT_READY, 1) + ctrl(0, PORT_ADD, 0) +
    ctrl(1, PORT_REMOVE, 0) + ctrl(0, CONSOLE_PORT, 1) + ctrl(0, RESIZE, 0, b"\x50\x00\x19\x00") +
    ctrl(1, PORT_NAME, 0, b"evil") + ctrl(0, 8, 1) + ctrl(1, 0xffff, 1) + op(READ_CTRL),
    "tiny-control-buffers": cfg(2, MULTIPORT | NAMED) + ctrl_bufs(2, 0) + ctrl_bufs(1, 4) +
    ctrl_bufs(1, 7) + ctrl_bufs(1, 12) + ctrl(BAD_ID, DEVICE_READY, 1) + op(READ_CTRL) +
    ctrl(1, PORT_READY, 1) + op(READ_CTRL),
    "damaged-state": cfg(2, MULTIPORT | EVENT_IDX | NAMED) + handshake([0, 1]) +
    op(BACKEND, 3) + tx(0, bytes(40)) + op(LOAD_DAMAGED, 3, 0x40, 0x01, 0x80, 0xc0, 0x01, 0x02,
                                            0x00, 0x02, 0xff) + op(RUN) + op(SAVE_LOAD),
    "scribbled-rings": cfg(2, MULTIPORT | INDIRECT | NAMED) + handshake([0, 1]) +
    poke(used(1), bytes([0xff] * 8)) + tx(1, b"data") + poke(desc(0) + 2, b"\x40\x00") +
    op(KICK, 0) + host_input(b"in") + op(RUN),
    # A chain held by back-pressure, then its descriptor made a loop: the
    # catch-up kick after a load breaks the queue (state compared before it).
    "blocked-chain-scribbled": cfg(1, MULTIPORT) + handshake([0]) + op(BACKEND, 2) +
    tx(0, bytes(50)) + poke(desc(1) + 12, struct.pack("<H", 1)) + op(SAVE_LOAD) + op(RUN),
    "reset-in-traffic": cfg(2, MULTIPORT | NAMED) + handshake([0, 1]) + client("connect") +
    op(BACKEND, 5) + tx(0, bytes(50)) + op(RESET) + op(BACKEND, 100) + op(SETUP) +
    handshake([0, 1]) + client("send", b"after") + op(READ_CTRL) + op(SAVE_LOAD),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "corpus", "virtio-console")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), out))


if __name__ == "__main__":
    main()
