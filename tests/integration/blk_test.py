#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""virtio-blk under KVM: the guest program tests/guest/virtio-blk.c on a raw disk.

This script writes a 1 MiB raw image with a known pattern (byte at offset o:
(o * 13 + 7) & 0xff), runs vireo-vmm with --disk path=IMAGE,serial=... and
the guest program, which reads the host's pattern, writes its own over
sectors 8..15 ((o * 31 + 5) & 0xff), flushes and reads it back. Afterwards
the image must hold the guest's sectors and the host's pattern everywhere
else: what the guest wrote reached the file, and nothing more.

Needs /dev/kvm; exits 77 (skip) without it. Usage: blk_test.py VMM GUEST_ELF
"""
import os
import subprocess
import sys
import tempfile

SKIP = 77
SIZE = 1 << 20
WRITE = range(8 * 512, 16 * 512)


def main():
    vmm, guest = sys.argv[1], sys.argv[2]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("blk_test: no /dev/kvm, skipped")
        return SKIP
    host = bytes((o * 13 + 7) & 0xff for o in range(SIZE))
    with tempfile.TemporaryDirectory() as d:
        image = os.path.join(d, "disk.img")
        with open(image, "wb") as f:
            f.write(host)
        run_guest = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_guest.py")
        r = subprocess.run([sys.executable, run_guest, "--vmm", vmm, "--timeout", "60",
                            "--expect", "IOERR past the end",
                            "--expect", "VIREO-GUEST: PASS virtio-blk", "--",
                            "--kernel", guest, "--debug-exit",
                            "--disk", "path=%s,format=raw,serial=vireo-guest-disk" % image])
        if r.returncode != 0:
            return 1
        with open(image, "rb") as f:
            got = f.read()
    want = bytearray(host)
    for o in WRITE:
        want[o] = (o * 31 + 5) & 0xff
    if len(got) != SIZE:
        print("blk_test: the image is %d bytes, expected %d" % (len(got), SIZE))
        return 1
    if got != bytes(want):
        bad = next(i for i in range(SIZE) if got[i] != want[i])
        print("blk_test: image byte %d is 0x%02x, expected 0x%02x" % (bad, got[bad], want[bad]))
        return 1
    print("blk_test: the image holds the guest's 8 sectors and the host's pattern elsewhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
