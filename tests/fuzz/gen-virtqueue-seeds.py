#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Writes the seed corpus of fuzz-virtqueue (tests/fuzz/corpus/virtqueue/).

Each seed is a small, well-formed (or deliberately malformed) ring set up
the way a Linux driver would, plus device actions, in the input layout
documented at the top of fuzz-virtqueue.c. Regenerate after changing that
layout:  tests/fuzz/gen-virtqueue-seeds.py tests/fuzz/corpus/virtqueue
"""
import os
import struct
import sys

# Operations (enum Op in fuzz-virtqueue.c).
POP, PUSH, FLUSH, AVAIL_SET, AVAIL_ADD, POKE, DISABLE, ENABLE, NEEDS, SAVE_LOAD, \
    LOAD_DAMAGED, RESET, UNPOP, ELEMENT_IO = range(14)

F_INDIRECT, F_EVENT, F_LEGACY, F_ADDRS, F_UNALIGNED = 1, 2, 4, 8, 16
NEXT, WRITE, INDIRECT = 1, 2, 4
R1_GPA = 0x4000
LINEAR = 0x5000


class Seed:
    def __init__(self, size_log, flags=0, addrs=None):
        self.size = 1 << size_log
        self.size_byte = size_log
        self.flags = flags | (F_ADDRS if addrs else 0)
        self.addrs = addrs or (0, 0, 0)
        self.mem = bytearray(LINEAR)
        if addrs:
            self.desc, self.avail = addrs[0] * 16, addrs[1] * 2
        else:
            self.desc = 0
            self.avail = 16 * self.size
        self.avail_idx = 0
        self.ops = bytearray()

    def put_desc(self, table, i, addr, length, flags=0, nxt=0):
        struct.pack_into('<QIHH', self.mem, table + 16 * i, addr, length, flags, nxt)

    def chain(self, head, bufs, indirect_at=None):
        """bufs: (addr, len, writable); a chain from head, or one indirect table."""
        if indirect_at is not None:
            for k, (addr, length, w) in enumerate(bufs):
                last = k == len(bufs) - 1
                self.put_desc(indirect_at, k, addr, length,
                              (0 if last else NEXT) | (WRITE if w else 0), 0 if last else k + 1)
            self.put_desc(self.desc, head, indirect_at, 16 * len(bufs), INDIRECT)
            return
        for k, (addr, length, w) in enumerate(bufs):
            last = k == len(bufs) - 1
            self.put_desc(self.desc, head + k, addr, length,
                          (0 if last else NEXT) | (WRITE if w else 0), 0 if last else head + k + 1)

    def offer(self, *heads):
        for h in heads:
            struct.pack_into('<H', self.mem, self.avail + 4 + 2 * (self.avail_idx % self.size), h)
            self.avail_idx += 1
        struct.pack_into('<H', self.mem, self.avail + 2, self.avail_idx)

    def op(self, code, *args):
        self.ops.append(code)
        for fmt, v in args:
            self.ops += struct.pack('<' + fmt, v)

    def pop(self, n=1):
        for _ in range(n):
            self.op(POP)

    def push(self, which=0, written=0, flush=1):
        self.op(PUSH, ('B', which), ('I', written), ('B', flush))

    def poke(self, gpa, data):
        self.op(POKE, ('H', gpa), ('B', len(data) - 1))
        self.ops += data

    def republish(self, *heads):
        """Offer heads again through POKE/AVAIL_SET, as a running driver does."""
        for h in heads:
            self.poke(self.avail + 4 + 2 * (self.avail_idx % self.size), struct.pack('<H', h))
            self.avail_idx += 1
        self.op(AVAIL_SET, ('H', self.avail_idx & 0xffff))

    def encode(self):
        image = bytes(self.mem).rstrip(b'\0')
        return (struct.pack('<BBHHHH', self.size_byte, self.flags, *self.addrs, len(image)) +
                image + bytes(self.ops))


def seeds():
    out = {}

    s = Seed(3)
    s.chain(0, [(0x1000, 16, 0), (0x1100, 32, 1)])
    s.chain(2, [(0x1200, 8, 0)])
    s.chain(4, [(0x1300, 64, 1)])
    s.offer(0, 2, 4)
    s.pop(4)
    s.op(ELEMENT_IO, ('B', 0), ('H', 4), ('H', 8))
    s.op(ELEMENT_IO, ('B', 0x81), ('H', 0), ('H', 40))
    s.push(0, 32)
    s.push(0, 0)
    s.push(0, 64)
    s.op(NEEDS)
    s.op(SAVE_LOAD)
    s.republish(0, 2, 4)
    s.pop(3)
    s.push(1, 5, 0)
    s.push(0, 5, 0)
    s.op(FLUSH)
    s.op(NEEDS)
    out['basic'] = s

    s = Seed(4, F_INDIRECT)
    s.chain(0, [(0x1000, 16, 0), (0x1100, 16, 0), (0x1200, 32, 1), (0x1300, 32, 1)],
            indirect_at=0x2000)
    # Direct descriptors followed by one indirect table (2.7.5.3.2).
    s.put_desc(s.desc, 1, 0x1400, 8, NEXT, 2)
    s.put_desc(s.desc, 2, 0x2100, 32, INDIRECT)
    s.put_desc(0x2100, 0, 0x1500, 8, NEXT, 1)
    s.put_desc(0x2100, 1, 0x1600, 8, WRITE)
    s.offer(0, 1)
    s.pop(3)
    s.push(1, 16)
    s.push(0, 16)
    s.op(NEEDS)
    out['indirect'] = s

    s = Seed(2, F_EVENT | F_INDIRECT)
    for h in range(4):
        s.chain(h, [(0x1000 + 0x100 * h, 16, 1)])
    s.offer(0, 1)
    s.op(DISABLE)
    s.pop(3)
    s.op(ENABLE)
    s.push(0, 16)
    s.op(NEEDS)
    s.push(0, 16)
    s.op(NEEDS)
    s.republish(2, 3)
    s.pop(3)
    s.push(0, 1)
    s.push(0, 1)
    s.op(NEEDS)
    s.poke(s.avail + 4 + 2 * 4, struct.pack('<H', 3))   # used_event
    s.op(NEEDS)
    out['event-idx'] = s

    s = Seed(3)
    s.chain(0, [(R1_GPA - 0x10, 0x20, 0), (0x10000, 0x100, 1)])
    s.offer(0)
    s.pop(1)
    s.op(ELEMENT_IO, ('B', 0), ('H', 0), ('H', 0x20))
    s.op(ELEMENT_IO, ('B', 0x80), ('H', 0), ('H', 0x100))
    s.push(0, 0x100)
    out['region-split'] = s

    s = Seed(3)
    s.put_desc(s.desc, 0, 0x1000, 0, NEXT, 1)            # zero-length, ignored
    s.put_desc(s.desc, 1, 0x1000, 8, NEXT | WRITE, 2)
    s.put_desc(s.desc, 2, 0xfffffff0, 0, 0)
    s.offer(0)
    s.pop(2)
    s.push(0, 8)
    out['zero-length'] = s

    s = Seed(8)
    for h in range(256):
        s.chain(h, [(0x3000 + 4 * h, 4, h & 1)])
    s.offer(*range(256))
    s.pop(257)
    for _ in range(256):
        s.push(0, 4, 0)
    s.op(FLUSH)
    s.op(NEEDS)
    out['full-256'] = s

    # The longest chains a queue of 256 takes: 256 direct descriptors, and
    # (after a reset) a 256-entry indirect table; the last buffers end at
    # the boundary between regions 0 and 1.
    s = Seed(8, F_INDIRECT)
    s.chain(0, [(R1_GPA - 0x400 + 4 * k, 4, k >= 128) for k in range(256)])
    s.offer(0)
    s.pop(2)
    s.op(ELEMENT_IO, ('B', 0), ('H', 0), ('H', 0x400))
    s.push(0, 0x400)
    for k in range(256):
        s.put_desc(0x2000, k, R1_GPA - 0x400 + 4 * k, 4,
                   (NEXT if k < 255 else 0) | (WRITE if k >= 200 else 0), k + 1 if k < 255 else 0)
    s.poke(s.desc, struct.pack('<QIHH', 0x2000, 256 * 16, INDIRECT, 0))
    s.op(RESET)
    s.pop(2)
    s.push(0, 0x100)
    out['long-chains'] = s

    s = Seed(3, addrs=(0x100, 0x1000, 0x900))
    s.chain(0, [(0x3000, 16, 0), (0x3100, 16, 1)])
    s.offer(0)
    s.pop(2)
    s.push(0, 16)
    out['placed-rings'] = s

    s = Seed(3, F_EVENT)
    s.chain(0, [(0x1000, 16, 1)])
    s.chain(1, [(0x1100, 16, 1)])
    s.offer(0, 1)
    s.pop(2)
    s.op(RESET)
    s.pop(1)
    s.op(UNPOP)
    s.pop(1)
    s.push(0, 3)
    s.op(LOAD_DAMAGED, ('B', 2), ('B', 40), ('B', 1), ('B', 90), ('B', 4))
    s.pop(1)
    out['reset-unpop-load'] = s

    # Malformed rings: each breaks the queue in a different way.
    s = Seed(3)
    s.put_desc(s.desc, 0, 0x1000, 8, NEXT, 1)
    s.put_desc(s.desc, 1, 0x1000, 8, NEXT, 0)
    s.offer(0)
    s.pop(2)
    s.push(0, 1)
    out['bad-loop'] = s

    s = Seed(3, F_INDIRECT)
    s.put_desc(s.desc, 0, 0x2000, 32, INDIRECT)
    s.put_desc(0x2000, 0, 0x1000, 8, NEXT, 1)
    s.put_desc(0x2000, 1, 0x2100, 16, INDIRECT)
    s.offer(0)
    s.pop(2)
    out['bad-nested-indirect'] = s

    s = Seed(3)
    s.chain(0, [(0x1000, 8, 1), (0x1100, 8, 0)])
    s.chain(2, [(0x6000, 8, 0)])        # in the hole
    s.offer(0, 2)
    s.pop(1)
    s.op(RESET)
    s.poke(s.avail + 4, struct.pack('<H', 2))
    s.pop(1)
    out['bad-order-hole'] = s

    s = Seed(3)
    s.offer(9)
    s.pop(1)
    s.op(AVAIL_SET, ('H', 100))
    s.pop(1)
    s.op(SAVE_LOAD)
    s.pop(1)
    out['bad-head-jump'] = s
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), 'corpus', 'virtqueue')
    os.makedirs(outdir, exist_ok=True)
    for name, s in seeds().items():
        with open(os.path.join(outdir, name), 'wb') as f:
            f.write(s.encode())


if __name__ == '__main__':
    main()
