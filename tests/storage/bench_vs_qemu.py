#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the storage engine stands against qemu-img bench (not a test).

usage: bench_vs_qemu.py BLOCKBENCH [DIR...]   (default: /dev/shm /var/tmp)

Same images, same access pattern (qemu-img bench's start/step/wrap), 4 KiB
requests, cache=none: reads and overwrites of a fully written 1 GiB image,
and allocating writes into a new qcow2 image. "random" is a stride of 7919
blocks (a prime), which visits every block of the image in scattered order;
qemu-img bench has no random mode. Prints requests/s, best of 3 runs.
"""
import os
import re
import subprocess
import sys
import tempfile

GIB = 1 << 30
RANDOM_STEP = 4096 * 7919


def qemu(args):
    out = subprocess.run(["qemu-img", "bench"] + args, capture_output=True, text=True,
                         check=True).stdout
    secs = float(re.search(r"Run completed in ([0-9.]+) seconds", out).group(1))
    return secs


def ours(tool, args):
    out = subprocess.run([tool] + args, capture_output=True, text=True, check=True).stdout
    return float(re.search(r": ([0-9.]+) s,", out).group(1))


def make_image(path, fmt, fill):
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, str(GIB)], check=True)
    if fill:
        subprocess.run(["qemu-io", "-f", fmt, "-c", "write -P 1 0 1G", path], check=True,
                       capture_output=True)


def row(tool, d, fmt, kind, pattern, depth, count):
    path = os.path.join(d, "bench." + fmt)
    step = RANDOM_STEP if pattern == "random" else 4096
    if kind == "alloc":
        step = 65536 * 7 if pattern == "random" else 65536
        count = min(count, GIB // 65536)
    common = ["-f", fmt, "-t", "none", "-d", str(depth), "-c", str(count), "-s", "4096",
              "-S", str(step)] + (["-w"] if kind != "read" else [])
    best_q = best_o = None
    for _ in range(3):
        if kind == "alloc":
            os.unlink(path)
            make_image(path, fmt, False)
        q = qemu(common + [path])
        if kind == "alloc":
            os.unlink(path)
            make_image(path, fmt, False)
        o = ours(tool, common + [path])
        best_q = q if best_q is None else min(best_q, q)
        best_o = o if best_o is None else min(best_o, o)
    return count / best_q, count / best_o


def main():
    tool = os.path.abspath(sys.argv[1])
    dirs = sys.argv[2:] or ["/dev/shm", "/var/tmp"]
    print("| where | format | request | pattern | depth | qemu-img bench | ours | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for base in dirs:
        with tempfile.TemporaryDirectory(dir=base) as d:
            for fmt in ("raw", "qcow2"):
                path = os.path.join(d, "bench." + fmt)
                make_image(path, fmt, True)
                kinds = ["read", "write"] + (["alloc"] if fmt == "qcow2" else [])
                for kind in kinds:
                    if kind == "alloc":
                        pass
                    for pattern in ("seq", "random"):
                        for depth in (1, 32):
                            count = 40000 if base != "/dev/shm" else 100000
                            if kind == "alloc":
                                make_image(path, fmt, False)
                            q, o = row(tool, d, fmt, kind, pattern, depth, count)
                            if kind == "alloc":
                                make_image(path, fmt, True)
                            print("| %s | %s | %s | %s | %d | %.0f | %.0f | %.2f |" % (
                                "tmpfs" if base == "/dev/shm" else "ext4 " + base, fmt,
                                {"read": "read", "write": "overwrite",
                                 "alloc": "allocating write"}[kind],
                                pattern, depth, q, o, o / q), flush=True)


if __name__ == "__main__":
    main()
