#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Where the storage engine stands against qemu-img bench (not a test).

usage: bench_vs_qemu.py BLOCKBENCH|VIREO-IMG [DIR...]   (default: /dev/shm /var/tmp)

With vireo-img (what `make bench` runs, tests/bench/bench.py), both tools
get the same command line (`bench ...`), and the table also has 64 KiB
writes (overwrite, and allocating on qcow2) and `convert` of a 2 GiB
half-allocated qcow2 image to raw and back.

Same images, same access pattern (qemu-img bench's start/step/wrap), 4 KiB
requests, cache=none: reads and overwrites of a fully written 1 GiB image,
and allocating writes into a new image (a new qcow2 image, or a new sparse
raw file). "random" is a stride of 7919 blocks (a prime), which visits
every block of the image in scattered order; qemu-img bench has no random
mode. Prints requests/s, best of 3 runs (2 with vireo-img).

Device limit: on a file system that takes O_DIRECT (not tmpfs), fio
(io_uring, direct, submitting and reaping in batches as our engine does)
with the same request size, depth, direction and order (random: uniform,
fio's) on a fully written raw file of the same size in the same
directory, FIO_SECONDS per setting; measured once per setting
and shared by the raw and qcow2 rows. For allocating writes it is the
limit of overwrites, so "ours / limit" may exceed 1 there: the file system
has less to do for a sparse file than the device's own write rate. For
convert, it is the time fio takes to write the 1 GiB of data (2 MiB
requests, depth 8): each convert writes that much, and its reads come
from the page cache in the best run. A row near 1.00 is bound by the disk,
not by the tool. "-" when fio is not installed.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

GIB = 1 << 30
RANDOM_STEP = 4096 * 7919
FIO_SECONDS = 3
CONVERT_DATA = GIB          # bytes each convert writes (half of 2 GiB)


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


class DeviceLimit:
    """fio's requests/s on a fully written raw file beside the images."""

    def __init__(self, d):
        self.path = os.path.join(d, "limit.raw")
        self.cache = {}
        self.failed = False
        make_image(self.path, "raw", True)

    def fio(self, *args):
        if self.failed:
            return None
        p = subprocess.run(["fio", "--name=limit", "--filename=" + self.path,
                            "--ioengine=io_uring", "--direct=1", "--size=%d" % GIB,
                            "--output-format=json"] + list(args),
                           capture_output=True, text=True)
        if p.returncode != 0:
            # Once: the column shows "-" from here on.
            print("fio failed (%d): %s" % (p.returncode, p.stderr.strip()[:200]),
                  file=sys.stderr, flush=True)
            self.failed = True
            return None
        # fio may print notes before the JSON document.
        job = json.loads(p.stdout[p.stdout.index("{"):])["jobs"][0]
        return job

    def rate(self, kind, pattern, depth, size):
        """Requests/s for a bench row: reads or writes, seq or random."""
        rw = ("" if pattern == "seq" else "rand") + ("read" if kind == "read" else "write")
        key = (rw, depth, size)
        if key not in self.cache:
            # Submits what is ready in one io_uring_enter, as the engine does
            # (block_engine_plug): one at a time, fio would not get the
            # block layer's merges of sequential requests.
            job = self.fio("--rw=" + rw, "--bs=%d" % size, "--iodepth=%d" % depth,
                           "--iodepth_batch_submit=%d" % depth,
                           "--iodepth_batch_complete_max=%d" % depth,
                           "--norandommap", "--randrepeat=0", "--time_based",
                           "--runtime=%d" % FIO_SECONDS)
            self.cache[key] = job and job["read"]["iops"] + job["write"]["iops"]
        return self.cache[key]

    def write_seconds(self, nbytes):
        """Seconds to write @nbytes sequentially, flushed (convert's limit)."""
        key = ("convert", nbytes)
        if key not in self.cache:
            job = self.fio("--rw=write", "--bs=%d" % (2 << 20), "--iodepth=8",
                           "--iodepth_batch_submit=8", "--iodepth_batch_complete_max=8",
                           "--io_size=%d" % nbytes, "--end_fsync=1")
            self.cache[key] = job and nbytes / job["write"]["bw_bytes"]
        return self.cache[key]


def row(tool, path, fmt, kind, pattern, depth, count, size=4096, runs=3):
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


def limit_cells(limit, ours_value, rate=True):
    """The last two columns: the device limit and ours as a fraction of it."""
    if limit is None:
        return "- | -"
    if rate:
        return "%.0f | %.2f" % (limit, ours_value / limit)
    return "%.2f s | %.2f" % (limit, limit / ours_value)


def convert_rows(tool, d, limit):
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
        lim = limit.write_seconds(CONVERT_DATA) if limit else None
        print("| %s | convert | %s | 2 GiB, half allocated | - | %.2f s | %.2f s | %.2f | %s |"
              % (where_name(d), what, times["qemu"], times["ours"],
                 times["qemu"] / times["ours"], limit_cells(lim, times["ours"], rate=False)),
              flush=True)


def where_name(d):
    return "tmpfs" if d.startswith("/dev/shm") else "ext4 " + os.path.dirname(d)


def row_kinds(fmt, img_tool):
    """(request size, kind) in table order; 64 KiB rows only with vireo-img."""
    out = [(4096, k) for k in ("read", "write", "alloc")]
    if img_tool:
        out += [(65536, "write")] + ([(65536, "alloc")] if fmt == "qcow2" else [])
    return out


def main():
    tool = os.path.abspath(sys.argv[1])
    img_tool = os.path.basename(tool).startswith("vireo-img")
    dirs = sys.argv[2:] or (["/var/tmp"] if img_tool else ["/dev/shm", "/var/tmp"])
    fio = shutil.which("fio")
    runs = 2 if img_tool else 3
    start = time.monotonic()
    print("Requests/s (convert: seconds), best of %d; ratio > 1: ours is faster; device "
          "limit: fio, same request size, depth, direction and order%s" %
          (runs, "" if fio else " (fio not installed)"))
    print("| where | format | request | pattern | depth | qemu-img bench | ours | ratio "
          "| device limit | ours / limit |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for base in dirs:
        tmpfs = base.startswith("/dev/shm")
        with tempfile.TemporaryDirectory(dir=base) as d:
            # tmpfs takes no O_DIRECT: no device there to measure.
            limit = DeviceLimit(d) if fio and not tmpfs else None
            for fmt in ("raw", "qcow2"):
                path = os.path.join(d, "bench." + fmt)
                alloc_path = os.path.join(d, "alloc." + fmt)
                make_image(path, fmt, True)
                make_image(alloc_path, fmt, False)
                for size, kind in row_kinds(fmt, img_tool):
                    for pattern in ("seq", "random"):
                        for depth in (1, 32):
                            if size == 4096:
                                count = 40000 if not tmpfs else 100000
                                if img_tool:
                                    count //= 2
                            else:
                                count = 5000
                            q, o = row(tool, alloc_path if kind == "alloc" else path, fmt,
                                       kind, pattern, depth, count, size=size, runs=runs)
                            lim = limit.rate(kind, pattern, depth, size) if limit else None
                            print("| %s | %s | %s%s | %s | %d | %.0f | %.0f | %.2f | %s |" % (
                                "tmpfs" if tmpfs else "ext4 " + base, fmt,
                                "" if size == 4096 else "64 KiB ",
                                {"read": "read", "write": "overwrite",
                                 "alloc": "allocating write"}[kind],
                                pattern, depth, q, o, o / q, limit_cells(lim, o)), flush=True)
                os.unlink(path)
                os.unlink(alloc_path)
            if img_tool:
                convert_rows(tool, d, limit)
    print("(%.0f s)" % (time.monotonic() - start))


if __name__ == "__main__":
    main()
