#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the storage engine stands against qemu-img bench (not a test).

usage: bench_vs_qemu.py BLOCKBENCH|VIREO-IMG [DIR...]   (default: /dev/shm /var/tmp)

With vireo-img (what `make bench` runs, tests/bench/bench.py), both tools
get the same command line (`bench ...`), and the table also has 64 KiB
writes and `convert` of a 2 GiB half-allocated qcow2 image to raw and back.

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
import time

GIB = 1 << 30
RANDOM_STEP = 4096 * 7919


def qemu(args):
    out = subprocess.run(["qemu-img", "bench"] + args, capture_output=True, text=True,
                         check=True).stdout
    secs = float(re.search(r"Run completed in ([0-9.]+) seconds", out).group(1))
    return secs


def ours(tool, args):
    if os.path.basename(tool).startswith("vireo-img"):
        out = subprocess.run([tool, "bench"] + args, capture_output=True, text=True,
                             check=True).stdout
        return float(re.search(r"Run completed in ([0-9.]+) seconds", out).group(1))
    out = subprocess.run([tool] + args, capture_output=True, text=True, check=True).stdout
    return float(re.search(r": ([0-9.]+) s,", out).group(1))


def make_image(path, fmt, fill):
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, str(GIB)], check=True)
    if fill:
        subprocess.run(["qemu-io", "-f", fmt, "-c", "write -P 1 0 1G", path], check=True,
                       capture_output=True)


def row(tool, d, fmt, kind, pattern, depth, count, size=4096, runs=3):
    path = os.path.join(d, "bench." + fmt)
    step = RANDOM_STEP if pattern == "random" else 4096
    if kind == "alloc":
        step = 65536 * 7 if pattern == "random" else 65536
        count = min(count, GIB // 65536)
    if size != 4096:
        step = size * 7919 if pattern == "random" else size
    common = ["-f", fmt, "-t", "none", "-d", str(depth), "-c", str(count), "-s", str(size),
              "-S", str(step)] + (["-w"] if kind != "read" else [])
    best_q = best_o = None
    for _ in range(runs):
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


def convert_rows(tool, d):
    """qemu-img convert vs vireo-img convert: 2 GiB qcow2, every other 64 KiB
    cluster written (1 GiB of data), to raw and back; seconds, best of 2."""
    src = os.path.join(d, "half.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", src, str(2 * GIB)], check=True)
    # Half allocated: 64 KiB of data, 64 KiB unallocated, over the whole disk
    # (qemu-img bench writes with a step of twice its buffer size).
    subprocess.run(["qemu-img", "bench", "-q", "-w", "-t", "none", "-f", "qcow2", "-c",
                    str(GIB // 65536), "-s", "65536", "-S", "131072", "--pattern", "7", src],
                   check=True, capture_output=True)
    for what, args in (("qcow2 -> raw", ["-O", "raw", src]),
                       ("raw -> qcow2", ["-f", "raw", "-O", "qcow2"])):
        times = {}
        for name, cmd in (("qemu", ["qemu-img", "convert"]), ("ours", [tool, "convert"])):
            best = None
            for _ in range(2):
                out = os.path.join(d, "out." + ("raw" if what == "qcow2 -> raw" else "qcow2"))
                if what == "raw -> qcow2":
                    full = cmd + args + [os.path.join(d, "half.raw"), out]
                else:
                    full = cmd + args + [out]
                if os.path.exists(out):
                    os.unlink(out)
                t0 = time.perf_counter()
                subprocess.run(full, check=True)
                t = time.perf_counter() - t0
                best = t if best is None else min(best, t)
            times[name] = best
        if what == "qcow2 -> raw":
            os.replace(os.path.join(d, "out.raw"), os.path.join(d, "half.raw"))
        print("| %s | convert | %s | 2 GiB, half allocated | - | %.2f s | %.2f s | %.2f |" % (
            where_name(d), what, times["qemu"], times["ours"], times["qemu"] / times["ours"]),
            flush=True)


def where_name(d):
    return "tmpfs" if d.startswith("/dev/shm") else "ext4 " + os.path.dirname(d)


def main():
    tool = os.path.abspath(sys.argv[1])
    img_tool = os.path.basename(tool).startswith("vireo-img")
    dirs = sys.argv[2:] or (["/var/tmp"] if img_tool else ["/dev/shm", "/var/tmp"])
    print("Requests/s (convert: seconds), best of %d; ratio > 1: ours is faster" %
          (2 if img_tool else 3))
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
                            if img_tool:
                                count //= 2
                            if kind == "alloc":
                                make_image(path, fmt, False)
                            q, o = row(tool, d, fmt, kind, pattern, depth, count,
                                       runs=2 if img_tool else 3)
                            if kind == "alloc":
                                make_image(path, fmt, True)
                            print("| %s | %s | %s | %s | %d | %.0f | %.0f | %.2f |" % (
                                "tmpfs" if base == "/dev/shm" else "ext4 " + base, fmt,
                                {"read": "read", "write": "overwrite",
                                 "alloc": "allocating write"}[kind],
                                pattern, depth, q, o, o / q), flush=True)
                if img_tool:
                    for depth in (1, 32):
                        q, o = row(tool, d, fmt, "write", "seq", depth, 5000, size=65536,
                                   runs=2)
                        print("| %s | %s | 64 KiB overwrite | seq | %d | %.0f | %.0f | %.2f |"
                              % (where_name(d), fmt, depth, q, o, o / q), flush=True)
                os.unlink(path)
            if img_tool:
                convert_rows(tool, d)


if __name__ == "__main__":
    main()
