#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""virtio-blk benchmark: requests/s and host CPU per 4 KiB request at queue depth 32.

1. The device alone, in-process (tests/bench/bench-virtio-blk): the device-test
   driver keeps 32 random 4 KiB reads (then writes) in flight on a raw image in
   tmpfs; no guest, no KVM. Host CPU per request of device + storage engine +
   driver, all threads.
2. Reference, the physical limit: fio with io_uring at the same depth, block
   size and pattern on the same file, if fio is installed (apt-get install fio).
   The ratio is device / fio for requests/s and fio / device for CPU.

Figures only, no pass/fail thresholds.

Usage: blk.py --build BUILD [--seconds S]   (make bench calls it through bench.py)
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

QD = 32
SIZE = 256 << 20


def run_device(prog, image, rw, seconds):
    out = subprocess.run([prog, image, rw, str(QD), str(seconds)], capture_output=True,
                         text=True, check=True).stdout
    m = re.search(r"([\d.]+) req/s, ([\d.]+) us CPU/req", out)
    return float(m.group(1)), float(m.group(2))


def run_fio(image, rw, seconds):
    out = subprocess.run(
        ["fio", "--name=ref", "--filename=" + image, "--rw=rand" + rw, "--bs=4k",
         "--iodepth=%d" % QD, "--ioengine=io_uring", "--runtime=%g" % seconds, "--time_based",
         "--size=%d" % SIZE, "--output-format=json"],
        capture_output=True, text=True, check=True).stdout
    job = json.loads(out[out.index("{"):])["jobs"][0]
    ios = job[rw]["total_ios"]
    cpu_s = (job["usr_cpu"] + job["sys_cpu"]) / 100.0 * job["job_runtime"] / 1000.0
    return job[rw]["iops"], cpu_s * 1e6 / max(ios, 1)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build", required=True)
    p.add_argument("--seconds", type=float, default=5)
    args = p.parse_args()
    prog = os.path.join(args.build, "tests", "bench", "bench-virtio-blk")
    tmp = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fio = shutil.which("fio")
    print("virtio-blk, 4 KiB random requests at depth %d on a raw image in tmpfs "
          "(device-test driver, no guest):" % QD)
    with tempfile.TemporaryDirectory(dir=tmp) as d:
        image = os.path.join(d, "bench.img")
        with open(image, "wb") as f:
            # Allocated, so reads and overwrites do not measure tmpfs's hole handling.
            chunk = b"\x5a" * (1 << 20)
            for _ in range(SIZE >> 20):
                f.write(chunk)
        for rw in ("read", "write"):
            rps, cpu = run_device(prog, image, rw, args.seconds)
            line = "  %-5s vireo: %8.0f req/s %6.2f us CPU/req" % (rw, rps, cpu)
            if fio:
                frps, fcpu = run_fio(image, rw, args.seconds)
                line += "   fio: %8.0f req/s %6.2f us CPU/req   ratio %.2fx req/s, %.2fx CPU" % (
                    frps, fcpu, rps / frps, cpu / fcpu)
            print(line, flush=True)
    if not fio:
        print("  (fio not installed: no reference; apt-get install fio)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
