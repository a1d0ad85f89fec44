#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Seeds for the rpc-packet fuzz target from the reference captures: one
file per distinct (program, procedure, type, status), each a 1-byte read
size followed by the packet, plus whole conversations.

    gen-fuzz-seeds.py CAPTURE_DIR OUT_DIR
"""
import json
import os
import sys


def main():
    cap, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    seen = set()
    for name in sorted(os.listdir(cap)):
        if not name.endswith('.jsonl'):
            continue
        stream = b''
        for line in open(os.path.join(cap, name)):
            r = json.loads(line)
            if 'hex' not in r:
                continue
            pkt = bytes.fromhex(r['hex'])
            stream += pkt
            key = pkt[4:20] + pkt[24:28]        # prog, vers, proc, type, status
            if key in seen:
                continue
            seen.add(key)
            with open(os.path.join(out, '%s-%d' % (name[:-6], len(seen))), 'wb') as f:
                f.write(bytes([len(seen) % 64]) + pkt)
        if name in ('dominfo-running.jsonl', 'error-dominfo-nosuchdomain.jsonl'):
            with open(os.path.join(out, 'stream-' + name[:-6]), 'wb') as f:
                f.write(b'\x07' + stream)
    return 0


if __name__ == '__main__':
    sys.exit(main())
