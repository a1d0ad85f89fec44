#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Migration benchmark: vireo-vmm beside QEMU, live pre-copy over loopback.

Both VMMs boot the same guest, tests/guest/migrate-dirty.elf (vireo-vmm at
its 64-bit entry, QEMU 7.2 as -M microvm through its PVH note), which fills
mem= MiB of RAM with a pattern at CPL3, then either stays idle in HLT
(dirty=0) or rewrites rate= KiB per second. Cases: a 1 GiB guest (1000 MiB
of pattern) and a 4 GiB guest (3000 MiB of pattern: all of low RAM; the
1 GiB mapped above 4 GiB is never touched on either side), each idle and
dirtying about 100 MB/s.

Each VM is filled once and then migrated N times over unix sockets,
A -> B -> C ..., at most two VMs alive at once; total time, downtime and
bytes are QEMU's query-migrate fields (ram.transferred), the medians of the
N hops after a warm-up hop (see bench_live). Same settings on both: downtime-limit 50 ms, max-bandwidth 1 TiB/s
(QEMU's default is 128 MiB/s), no compression, no multifd, no xbzrle, no
auto-converge.

Then, vireo-vmm only: an untouched 1 GiB guest saved to and restored from
a file (RAM never written is skipped, so these figures are small).

Prints figures, ratios and whether the targets are met (total time <= 0.5x
QEMU's; downtime <= 50 ms on the idle 1 GiB case); nothing fails on them.

With --tls, vireo-vmm only: the idle 1 GiB case migrated plain and over TLS
(tls-creds-x509, certificates made with certtool), same unix sockets, one
hop per filled VM, plain and TLS in turn; throughput = ram.transferred /
total time.

With --multifd, both VMMs: the idle 1 GiB case (--cases for others) over
one connection ("off") and with the capability multifd on both sides and
multifd-channels 1 and 4 (QEMU's destination gets them with -incoming defer
before migrate-incoming), each without and with zstd (level 1; QEMU
compresses only with multifd) and without and with TLS; all rows of a
repetition in turn, so that a change of the host's load affects them alike.
Throughput = the pattern's MiB / total time; CPU = user + system seconds of
both processes during the hop. The pattern is a hash of each word's address,
incompressible: zstd costs CPU here and saves nothing.
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TESTS_DIR, "integration"))
sys.path.insert(0, os.path.join(TESTS_DIR, "daemon"))
from qmp_test import QmpClient, TestFailure  # noqa: E402

PAGE = 4096
DOWNTIME_LIMIT_MS = 50
MAX_BANDWIDTH = 1 << 40
DIRTY_MB_S = 100
# (name, RAM, MiB of pattern, idle)
CASES = [("1 GiB idle", "1G", 1000, True),
         ("1 GiB dirty", "1G", 1000, False),
         ("4 GiB idle", "4G", 3000, True),
         ("4 GiB dirty", "4G", 3000, False)]


def connect_qmp(path, tag, proc, strict, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            c = QmpClient(path, tag, strict=strict, timeout=60)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("%s did not start (status %s)" % (tag, proc.poll()))
            time.sleep(0.005)
    c.read_message()
    c.ok("qmp_capabilities")
    return c


class Guest:
    """One migrate-dirty VM under vireo-vmm or QEMU, serial to a file, QMP on a socket."""

    def __init__(self, args, kind, tmp, tag, ram, cmdline, incoming=None, tls=None,
                 multifd=None):
        self.tag = tag
        self.kind = kind
        self.serial_path = os.path.join(tmp, tag + ".serial")
        qmp = os.path.join(tmp, tag + ".qmp")
        if kind == "vireo":
            cmd = [args.vmm, "--kernel", args.guest, "--memory", ram, "--debug-exit",
                   "--cmdline", cmdline, "--serial", "file:" + self.serial_path,
                   "--qmp", "unix:" + qmp]
            if tls:
                # Both ends get both: every VM of a chain is a destination, then a source.
                for endpoint in ("client", "server"):
                    cmd += ["--object", "tls-creds-x509,id=tls-%s,dir=%s,endpoint=%s" %
                            (endpoint, tls, endpoint)]
                cmd += ["--migrate-tls-creds", "tls-server"]
            if incoming:
                cmd += ["--incoming", incoming]
        else:
            cmd = ["qemu-system-x86_64", "-enable-kvm", "-M", "microvm", "-nodefaults",
                   "-display", "none", "-m", ram, "-kernel", args.guest, "-append", cmdline,
                   "-serial", "file:" + self.serial_path,
                   "-device", "isa-debug-exit,iobase=0x501,iosize=1",
                   "-qmp", "unix:%s,server=on,wait=off" % qmp]
            if tls:
                for endpoint in ("client", "server"):
                    cmd += ["-object", "tls-creds-x509,id=tls-%s,dir=%s,endpoint=%s" %
                            (endpoint, tls, endpoint)]
            if incoming:
                # QEMU's destination takes multifd and TLS before it listens.
                cmd += ["-incoming", "defer" if (tls or multifd) else incoming]
        self.log = open(os.path.join(tmp, tag + ".log"), "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=self.log)
        self.qmp = connect_qmp(qmp, tag, self.proc, strict=(kind == "vireo"))
        if kind == "qemu" and incoming and (tls or multifd):
            if multifd:
                self.qmp.ok("migrate-set-capabilities", {"capabilities": [
                    {"capability": "multifd", "state": True}]})
                self.qmp.ok("migrate-set-parameters", multifd)
            if tls:
                self.qmp.ok("migrate-set-parameters", {"tls-creds": "tls-server"})
            self.qmp.ok("migrate-incoming", {"uri": incoming})

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def serial(self):
        try:
            with open(self.serial_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serial(self, text, timeout):
        deadline = time.monotonic() + timeout
        while text not in self.serial():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("%s: no %r on serial (status %s): %r" %
                                   (self.tag, text, self.proc.poll(), self.serial()[-300:]))
            time.sleep(0.05)

    def kill(self):
        self.qmp.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


def dirty_rate(guest, seconds):
    """MB/s the guest rewrites, from the host times at which its progress lines appear."""
    seen = []
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline or len(seen) < 2:
        m = re.findall(r"progress: pass \d+ ok, (\d+) pages rewritten", guest.serial())
        if m and m[-1] != last:
            last = m[-1]
            seen.append((time.monotonic(), int(last)))
        if time.monotonic() > deadline + 30:
            raise RuntimeError("%s: no progress lines: %r" % (guest.tag, guest.serial()[-300:]))
        time.sleep(0.02)
    (t0, p0), (t1, p1) = seen[0], seen[-1]
    return (p1 - p0) * PAGE / (t1 - t0) / 1e6


def wait_migration(c, timeout):
    deadline = time.monotonic() + timeout
    while True:
        info = c.ok("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            return info
        if time.monotonic() > deadline:
            c.ok("migrate_cancel")
            return {"status": "timeout after %d s" % timeout}
        time.sleep(0.01)


def wait_running(guest, timeout=30):
    deadline = time.monotonic() + timeout
    while guest.qmp.ok("query-status")["status"] != "running":
        if time.monotonic() > deadline:
            raise RuntimeError("%s is not running after the migration" % guest.tag)
        time.sleep(0.01)


def set_params(guest, tls=None, multifd=None):
    c = guest.qmp
    # The transfer alone: no vCPU throttling on either (vireo-vmm's auto-converge is on
    # by default, QEMU's off), no compression (zstd is a vireo-vmm parameter, off by default).
    caps = ["auto-converge", "multifd"]
    if guest.kind == "qemu":
        caps += ["compress", "xbzrle"]
    c.ok("migrate-set-capabilities", {"capabilities": [
        {"capability": cap, "state": cap == "multifd" and multifd is not None and
         "multifd-channels" in multifd} for cap in caps]})
    c.ok("migrate-set-parameters", {"downtime-limit": DOWNTIME_LIMIT_MS,
                                    "max-bandwidth": MAX_BANDWIDTH})
    if multifd:
        c.ok("migrate-set-parameters", multifd)
    if tls:
        c.ok("migrate-set-parameters", {"tls-creds": "tls-client", "tls-hostname": "localhost"})


def guest_cmdline(args, pattern_mib, idle):
    if idle:
        return "mem=%d dirty=0 seconds=100000" % pattern_mib
    # rate= counts guest TSC seconds; the guest assumes 3 GHz without a TSC leaf.
    kib = DIRTY_MB_S * 1e6 / 1024 * 3e6 / args.host_tsc_khz
    return "mem=%d rate=%d seconds=100000" % (pattern_mib, kib)


def run_case(args, tmp, kind, case, tls=None, rep=0, multifd=None, label=""):
    """Fills one VM, migrates it args.runs times; returns (hops, MB/s dirtied, error).
    @multifd: migration parameters (multifd-channels turns the capability on)."""
    name, ram, pattern_mib, idle = case
    # Unique per case (and repetition): vireo-vmm appends to an existing --serial file.
    tag = "%s-%s-%s%s%s%s" % (kind, ram, "idle" if idle else "dirty", "-tls" if tls else "",
                              label, "-%d" % rep if rep else "")
    cmdline = guest_cmdline(args, pattern_mib, idle)
    cur = Guest(args, kind, tmp, tag + "-0", ram, cmdline, tls=tls)
    hops, rate, error = [], None, None
    try:
        cur.wait_serial("VIREO-GUEST: filled", 600)
        if idle:
            cur.wait_serial("migrate-dirty: idle", 60)
            time.sleep(1)
        else:
            rate = dirty_rate(cur, 4)
        for i in range(1, args.runs + 1):
            sock = os.path.join(tmp, "%s-%d.sock" % (tag, i))
            mf_dst = multifd if multifd and "multifd-channels" in multifd else None
            dst = Guest(args, kind, tmp, "%s-%d" % (tag, i), ram, cmdline, "unix:" + sock,
                        tls=tls, multifd=mf_dst)
            try:
                set_params(cur, tls, multifd)
                cpu0 = cur.cpu_seconds() + dst.cpu_seconds()
                cur.qmp.ok("migrate", {"uri": "unix:" + sock})
                info = wait_migration(cur.qmp, args.timeout)
                cpu = cur.cpu_seconds() + dst.cpu_seconds() - cpu0
                if info["status"] != "completed":
                    error = "hop %d: %s" % (i, info["status"])
                    dst.kill()
                    break
                hops.append((info["total-time"], info["downtime"], info["ram"]["transferred"],
                             cpu))
                wait_running(dst)
            except BaseException:
                dst.kill()
                raise
            cur.kill()
            cur = dst
            time.sleep(1.5)     # the dirtying guest settles on its new host
        if "error:" in cur.serial() or "FAIL" in cur.serial():
            error = "guest: " + cur.serial()[-200:]
    finally:
        cur.kill()
    return hops, rate, error


def host_tsc_khz():
    # A guest's cpu MHz is its TSC frequency.
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1]) * 1000
    return 3e6


def bench_live(args, tmp):
    print("== live migration over unix sockets: vireo-vmm vs QEMU, median of %d hops "
          "after %d warm-up hop(s) ==" % (args.runs, args.warmup), flush=True)
    # The first hop of each filled VM is 3-5x slower than the next ones, for
    # both VMMs alike (seen on this nested host; most likely its destination
    # is the first process in a while to take that much fresh memory, which
    # the outer hypervisor backs page by page). Printed, not in the median.
    with_warmup = argparse.Namespace(**vars(args))
    with_warmup.runs = args.runs + args.warmup
    results = []
    for case in CASES:
        if case[0] not in args.cases:
            continue
        row = {}
        for kind in ("vireo", "qemu"):
            try:
                hops, rate, error = run_case(with_warmup, tmp, kind, case)
            except (RuntimeError, OSError, TestFailure) as e:
                hops, rate, error = [], None, str(e)
            counted = hops[args.warmup:]
            med = ([statistics.median(col) for col in zip(*counted)]
                   if len(counted) == args.runs else None)
            row[kind] = (med, rate, error, counted)
            print("  %-12s %-6s hops (total ms, downtime ms, bytes, CPU s): %s%s%s" % (
                case[0], kind, hops, "" if rate is None else ", dirtying %.0f MB/s" % rate,
                "" if not error else ", FAILED: " + error), flush=True)
        results.append((case, row))
    print()
    print("%-12s %28s %28s %21s" % ("", "vireo-vmm", "QEMU 7.2 (microvm)", "vireo / QEMU"))
    print("%-12s %8s %8s %10s %8s %8s %10s %6s %6s %7s  %s" % (
        "case", "total", "down", "MiB", "total", "down", "MiB",
        "total", "down", "bytes", "target"))
    for case, row in results:
        (v, _, ve, _), (q, _, qe, _) = row["vireo"], row["qemu"]
        cells = []
        for m in (v, q):
            cells += (["%8.0f" % m[0], "%8.0f" % m[1], "%10.1f" % (m[2] / 2**20)] if m
                      else ["%8s" % "n/a", "%8s" % "n/a", "%10s" % "n/a"])
        if v and q:
            ratios = ["%5.2fx" % (v[0] / q[0]),
                      "%5.2fx" % (v[1] / q[1]) if q[1] else "%6s" % "-",
                      "%6.2fx" % (v[2] / q[2])]
            met = v[0] <= 0.5 * q[0]
            target = "total <= 0.5x: %s" % ("met" if met else "NOT met")
            if case[0] == "1 GiB idle":
                target += "; downtime <= %d ms: %s" % (
                    DOWNTIME_LIMIT_MS, "met" if v[1] <= DOWNTIME_LIMIT_MS else "NOT met")
        else:
            ratios = ["%6s" % "n/a"] * 3
            target = "n/a: " + (ve or qe or "")
        print("%-12s %s %s %s %s  %s" % (case[0], " ".join(cells[:3]), " ".join(cells[3:]),
                                        ratios[0], ratios[1], ratios[2]) + "  " + target)
    rates = ["%s: vireo %.0f, QEMU %.0f MB/s" % (case[0], row["vireo"][1] or 0,
                                                 row["qemu"][1] or 0)
             for case, row in results if not case[3]]
    print("times in ms; MiB = ram.transferred from query-migrate")
    if rates:
        print("dirtying rate measured before the first hop (guest progress lines): " +
              "; ".join(rates))


def make_pki(tmp):
    """A CA, a server and a client certificate in QEMU's file names (tests/daemon/test_tls.py)."""
    from test_tls import CERTTOOL, Pki
    if not CERTTOOL:
        return None
    pki = Pki(os.path.join(tmp, "pki"))
    ca = pki.ca("ca")
    pki.issue("server", ca, True, dns=["localhost"])
    pki.issue("client", ca, False)
    return pki.d


def bench_tls(args, tmp):
    case = next(c for c in CASES if c[0] == "1 GiB idle")
    pki = make_pki(tmp)
    if not pki:
        print("TLS benchmark skipped: no certtool (gnutls-bin)")
        return
    print("== vireo-vmm: %s over unix sockets, plain and TLS alternating, median of %d ==" %
          (case[0], args.runs), flush=True)
    # One hop per fill, plain and TLS in turn: a host whose load changes affects both alike.
    one = argparse.Namespace(**vars(args))
    one.runs = 1
    hops = {"plain": [], "TLS": []}
    errors = []
    for i in range(args.runs):
        for name, tls in (("plain", None), ("TLS", pki)):
            h, _, error = run_case(one, tmp, "vireo", case, tls, rep=i)
            hops[name] += h
            if error:
                errors.append("%s: %s" % (name, error))
    for name, h in hops.items():
        print("  %-6s hops (total ms, downtime ms, bytes, CPU s): %s" % (name, h), flush=True)
    for e in errors:
        print("  FAILED: " + e)
    print()
    print("%-8s %10s %10s %10s %10s" % ("", "total ms", "down ms", "MiB", "MB/s"))
    med = {}
    for name, h in hops.items():
        if not h:
            print("%-8s %10s" % (name, "n/a"))
            continue
        m = med[name] = [statistics.median(col) for col in zip(*h)]
        print("%-8s %10.0f %10.0f %10.1f %10.0f" % (name, m[0], m[1], m[2] / 2**20,
                                                  m[2] / 1e6 / (m[0] / 1e3)))
    if len(med) == 2:
        print("TLS / plain throughput: %.2f" % ((med["TLS"][2] / med["TLS"][0]) /
                                                (med["plain"][2] / med["plain"][0])))


# (label, multifd parameters or None for one connection); QEMU compresses only with multifd.
MULTIFD_ROWS = [("off", None), ("off+zstd", {"multifd-compression": "zstd"}),
                ("1", {"multifd-channels": 1, "multifd-compression": "none"}),
                ("1+zstd", {"multifd-channels": 1, "multifd-compression": "zstd"}),
                ("4", {"multifd-channels": 4, "multifd-compression": "none"}),
                ("4+zstd", {"multifd-channels": 4, "multifd-compression": "zstd"})]


def bench_multifd(args, tmp):
    pki = make_pki(tmp)
    if not pki:
        print("TLS rows skipped: no certtool (gnutls-bin)")
    cases = [c for c in CASES if c[0] in args.cases]
    one = argparse.Namespace(**vars(args))
    one.runs = 1
    rows = [(label, mf, tls) for tls in ([None, pki] if pki else [None])
            for label, mf in MULTIFD_ROWS]
    for case in cases:
        print("== %s over unix sockets: one connection or multifd, vireo-vmm and QEMU, median "
              "of %d ==" % (case[0], args.runs), flush=True)
        hops = {}
        errors = []
        for i in range(args.runs):
            for label, mf, tls in rows:
                for kind in ("vireo", "qemu"):
                    name = (label + (" TLS" if tls else ""), kind)
                    if kind == "qemu" and label == "off+zstd":
                        continue        # QEMU's zstd is multifd's
                    try:
                        h, _, error = run_case(one, tmp, kind, case, tls, rep=i, multifd=mf,
                                               label="-mfd-" + label.replace("+", "-"))
                    except (RuntimeError, OSError, TestFailure) as e:
                        h, error = [], str(e)
                    hops.setdefault(name, []).extend(h)
                    if error:
                        errors.append("%s %s: %s" % (name[1], name[0], error))
                    print("  %-12s %-6s (total ms, downtime ms, bytes, CPU s): %s%s" %
                          (name[0], kind, h, ", FAILED: " + error if error else ""), flush=True)
        for e in errors:
            print("  FAILED: " + e)
        print()
        print("%-12s %25s %25s %12s" % ("", "vireo-vmm", "QEMU 7.2 (microvm)", "vireo/QEMU"))
        print("%-12s %8s %8s %7s %8s %8s %7s %12s" % ("channels", "total", "MiB/s", "CPU s",
                                                      "total", "MiB/s", "CPU s", "total"))
        for label, mf, tls in rows:
            name = label + (" TLS" if tls else "")
            cells, med = [], {}
            for kind in ("vireo", "qemu"):
                h = hops.get((name, kind))
                if not h:
                    cells += ["%8s %8s %7s" % ("n/a", "", "")]
                    continue
                m = med[kind] = [statistics.median(col) for col in zip(*h)]
                cells += ["%8.0f %8.0f %7.2f" % (m[0], case[2] / (m[0] / 1e3), m[3])]
            ratio = ("%11.2fx" % (med["vireo"][0] / med["qemu"][0])
                     if len(med) == 2 else "%12s" % "n/a")
            print("%-12s %s %s %s" % (name, cells[0], cells[1], ratio))
        print("total = query-migrate total-time in ms; MiB/s = %d MiB of pattern / total; "
              "CPU s = both processes, user + system" % case[2])


def start_untouched(vmm, guest, tmp, tag, extra=()):
    qmp = os.path.join(tmp, tag + ".qmp")
    proc = subprocess.Popen([vmm, "--kernel", guest, "--memory", "1G", "--serial", "none",
                             "--qmp", "unix:" + qmp] + list(extra),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, connect_qmp(qmp, tag, proc, strict=True, timeout=10)


def untouched_run(args, tmp):
    path = os.path.join(tmp, "state")
    src, s = start_untouched(args.vmm, args.idle_guest, tmp, "src")
    time.sleep(0.3)
    s.ok("migrate", {"uri": "file:" + path})
    saved = wait_migration(s, 60)
    t0 = time.perf_counter()
    rst, r = start_untouched(args.vmm, args.idle_guest, tmp, "rst",
                             ["--incoming", "file:" + path])
    restored = wait_migration(r, 60)
    wall = (time.perf_counter() - t0) * 1000
    for p, c in ((src, s), (rst, r)):
        c.close()
        p.kill()
        p.wait()
    assert saved["status"] == restored["status"] == "completed", (saved, restored)
    return (saved["total-time"], os.path.getsize(path), restored["total-time"], wall)


def bench_untouched(args, tmp):
    runs = [untouched_run(args, tmp) for _ in range(args.runs)]
    med = [statistics.median(col) for col in zip(*runs)]
    print("\n== vireo-vmm save/restore: untouched 1 GiB guest (powerbutton, HLT), "
          "median of %d ==" % args.runs)
    print("%-52s %10.0f ms" % ("save to file (running VM): total time", med[0]))
    print("%-52s %10.0f KiB" % ("save to file: file size", med[1] / 1024))
    print("%-52s %10.0f ms" % ("restore from file: stream read + load", med[2]))
    print("%-52s %10.0f ms" % ("restore from file: exec -> completed (with QMP)", med[3]))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True)
    p.add_argument("--runs", type=int, default=3, help="hops per case and VMM")
    p.add_argument("--warmup", type=int, default=1,
                   help="hops before those, printed but not in the live cases' medians")
    p.add_argument("--timeout", type=int, default=120, help="seconds per migration")
    p.add_argument("--cases", default=",".join(c[0] for c in CASES),
                   help="comma-separated subset of: " + ", ".join(c[0] for c in CASES))
    p.add_argument("--tls", action="store_true",
                   help="only vireo-vmm's idle 1 GiB case, plain beside TLS")
    p.add_argument("--multifd", action="store_true",
                   help="one connection and multifd 1 and 4, zstd and TLS, both VMMs "
                        "(the idle 1 GiB case unless --cases)")
    args = p.parse_args()
    if args.multifd and not any(a.startswith("--cases") for a in sys.argv):
        args.cases = "1 GiB idle"
    args.cases = args.cases.split(",")
    args.vmm = os.path.join(args.build, "vmm", "vireo-vmm")
    args.guest = os.path.join(args.build, "tests", "guest", "migrate-dirty.elf")
    args.idle_guest = os.path.join(args.build, "tests", "guest", "powerbutton.elf")
    args.host_tsc_khz = host_tsc_khz()
    if args.tls:
        tmp = tempfile.mkdtemp(prefix="vireo-bench-migrate-")
        try:
            bench_tls(args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    if args.multifd:
        if shutil.which("qemu-system-x86_64") is None:
            print("multifd benchmark skipped: no qemu-system-x86_64")
            return 0
        tmp = tempfile.mkdtemp(prefix="vireo-bench-migrate-")
        try:
            bench_multifd(args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 0
    if shutil.which("qemu-system-x86_64") is None:
        print("migration benchmark skipped: no qemu-system-x86_64")
        return 0
    tmp = tempfile.mkdtemp(prefix="vireo-bench-migrate-")
    try:
        bench_live(args, tmp)
        bench_untouched(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
