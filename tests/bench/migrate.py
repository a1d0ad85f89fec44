#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Migration benchmark: an idle 1 GiB guest (the powerbutton program, waiting
in HLT) moved between two vireo-vmm processes over a unix socket, and saved
to / restored from a file. Prints total time, downtime and bytes (median of
N runs). QEMU's figures can come later in the same shape.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "integration"))
from qmp_test import QmpClient  # noqa: E402


def start(vmm, guest, tmp, tag, extra=()):
    qmp = os.path.join(tmp, tag + ".qmp")
    proc = subprocess.Popen([vmm, "--kernel", guest, "--memory", "1G", "--serial", "none",
                             "--qmp", "unix:" + qmp] + list(extra),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            c = QmpClient(qmp, tag, strict=True)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("%s did not start" % tag)
            time.sleep(0.005)
    c.read_message()
    c.ok("qmp_capabilities")
    return proc, c


def wait_done(c):
    while True:
        info = c.ok("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        time.sleep(0.005)


def one_run(args, tmp):
    sock = os.path.join(tmp, "m.sock")
    src, s = start(args.vmm, args.guest, tmp, "src")
    dst, d = start(args.vmm, args.guest, tmp, "dst", ["--incoming", "unix:" + sock])
    time.sleep(0.3)
    s.ok("migrate-set-parameters", {"max-bandwidth": 0})
    s.ok("migrate", {"uri": "unix:" + sock})
    live = wait_done(s)
    d_info = wait_done(d)
    path = os.path.join(tmp, "state")
    s.ok("migrate", {"uri": "file:" + path})   # postmigrate: a stopped VM
    saved = wait_done(s)
    t0 = time.perf_counter()
    rst, r = start(args.vmm, args.guest, tmp, "rst", ["--incoming", "file:" + path])
    restored = wait_done(r)
    wall = (time.perf_counter() - t0) * 1000
    for p, c in ((src, s), (dst, d), (rst, r)):
        c.close()
        p.kill()
        p.wait()
    assert live["status"] == saved["status"] == restored["status"] == "completed", \
        (live, saved, restored)
    return (live["total-time"], live["downtime"], live["ram"]["transferred"],
            d_info["total-time"], saved["total-time"], os.path.getsize(path),
            restored["total-time"], wall)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build", required=True)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    args.vmm = os.path.join(args.build, "vmm", "vireo-vmm")
    args.guest = os.path.join(args.build, "tests", "guest", "powerbutton.elf")
    tmp = tempfile.mkdtemp(prefix="vireo-bench-migrate-")
    try:
        runs = [one_run(args, tmp) for _ in range(args.runs)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = [statistics.median(col) for col in zip(*runs)]
    print("== migration: idle 1 GiB guest, median of %d ==" % args.runs)
    print("%-52s %10.0f ms" % ("live over unix: total time", med[0]))
    print("%-52s %10.0f ms" % ("live over unix: downtime", med[1]))
    print("%-52s %10.0f KiB" % ("live over unix: bytes sent", med[2] / 1024))
    print("%-52s %10.0f ms" % ("live over unix: destination stream time", med[3]))
    print("%-52s %10.0f ms" % ("save to file (stopped VM): total time", med[4]))
    print("%-52s %10.0f KiB" % ("save to file: file size", med[5] / 1024))
    print("%-52s %10.0f ms" % ("restore from file: stream read + load", med[6]))
    print("%-52s %10.0f ms" % ("restore from file: exec -> completed (with QMP)", med[7]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
