#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireo-vmm benchmarks, each beside QEMU run the same way in the same script.

1. Start-up: exec -> first guest instruction, exec -> first serial byte of a
   test program, and a whole run (exec, serial marker, debug-exit, process
   gone). Median of N runs. Same ELF for both: vireo-vmm enters it at its
   64-bit entry, QEMU (-M microvm) through its PVH note.
2. Private memory (RssAnon) of an idle 1 vCPU / 128 MiB guest.
3. Stripped binary size.
4. With the small Linux kernel cached: exec -> /init marker.

Prints figures and ratios; there are no pass/fail thresholds here.
"""
import argparse
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def qemu_cmd(prog):
    return ["qemu-system-x86_64", "-enable-kvm", "-M", "microvm", "-nodefaults",
            "-display", "none", "-serial", "stdio",
            "-device", "isa-debug-exit,iobase=0x501,iosize=1", "-kernel", prog]


def vireo_cmd(vmm, prog):
    return [vmm, "--kernel", prog, "--debug-exit", "--serial", "stdio"]


def timed_run(cmd, first_marker, done_marker):
    """Seconds from exec to: first output byte, @first_marker... and exit."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    out = b""
    first_byte = marker = None
    while True:
        if not sel.select(timeout=10):
            proc.kill()
            raise RuntimeError("%s: no output for 10 s" % cmd[0])
        data = os.read(proc.stdout.fileno(), 4096)
        now = time.perf_counter() - start
        if not data:
            break
        if first_byte is None:
            first_byte = now
        out += data
        if marker is None and first_marker in out:
            marker = now
    proc.wait()
    total = time.perf_counter() - start
    if marker is None or done_marker not in out:
        raise RuntimeError("%s: unexpected output %r" % (cmd[0], out[:200]))
    return first_byte, marker, total, proc.returncode


def median_ms(values):
    return statistics.median(values) * 1000


def bench_startup(args, progs):
    print("\n== Start-up (median of %d runs, ms) ==" % args.runs)
    print("%-38s %10s %10s %8s" % ("", "vireo-vmm", "QEMU", "ratio"))
    rows = []
    for name, prog, first_marker, done_marker, what in [
        ("first-insn", progs["bench-first-insn"], b"!", b"PASS", "exec -> first guest instruction"),
        ("hello", progs["hello"], b"VIREO-GUEST: hello", b"PASS", "exec -> first serial line"),
    ]:
        res = {}
        for vmm_name, cmd in [("vireo", vireo_cmd(args.vmm, prog)), ("qemu", qemu_cmd(prog))]:
            firsts, markers, totals = [], [], []
            timed_run(cmd, first_marker, done_marker)      # warm the page cache
            for _ in range(args.runs):
                f, m, t, status = timed_run(cmd, first_marker, done_marker)
                if status != 33:
                    raise RuntimeError("%s exited %d" % (vmm_name, status))
                firsts.append(f)
                markers.append(m)
                totals.append(t)
            res[vmm_name] = (median_ms(firsts), median_ms(markers), median_ms(totals))
        v, q = res["vireo"], res["qemu"]
        if name == "first-insn":
            # The program's first instruction writes '!': its arrival is the first instruction.
            rows.append((what, v[0], q[0]))
        else:
            rows.append(("exec -> first serial byte (hello)", v[0], q[0]))
            rows.append(("exec -> 'hello' line", v[1], q[1]))
            rows.append(("whole run (exec .. process gone)", v[2], q[2]))
    for what, v, q in rows:
        print("%-38s %10.2f %10.2f %7.2fx" % (what, v, q, v / q))
    whole = rows[-1]
    print("target: whole run <= 1/5 of QEMU's: vireo-vmm takes %.0f%% of QEMU's time" %
          (100 * whole[1] / whole[2]))


def status_field(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def idle_memory(cmd, settle):
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            raise RuntimeError("%s exited early (%d)" % (cmd[0], proc.returncode))
        return (status_field(proc.pid, "RssAnon"), status_field(proc.pid, "RssShmem"),
                status_field(proc.pid, "VmHWM"))
    finally:
        proc.kill()
        proc.wait()


def bench_memory(args, progs):
    print("\n== Idle guest, 1 vCPU, 128 MiB (KiB) ==")
    v = idle_memory([args.vmm, "--kernel", progs["powerbutton"], "--memory", "128",
                     "--serial", "none"], 1.5)
    q = idle_memory(["qemu-system-x86_64", "-enable-kvm", "-m", "128", "-S", "-nodefaults",
                     "-display", "none"], 1.5)
    print("%-38s %10s %10s %8s" % ("", "vireo-vmm", "QEMU", "ratio"))
    for i, what in enumerate(["RssAnon (private memory)", "RssShmem (guest RAM touched)",
                              "VmHWM (peak RSS)"]):
        print("%-38s %10d %10d %7.2fx" % (what, v[i], q[i], v[i] / q[i] if q[i] else 0))
    print("target: RssAnon <= 2048 KiB: %d KiB" % v[0])


def bench_size(args):
    print("\n== Binary size (stripped, bytes) ==")
    with tempfile.TemporaryDirectory() as tmp:
        stripped = os.path.join(tmp, "vireo-vmm")
        subprocess.run(["strip", "-o", stripped, args.vmm], check=True)
        v = os.path.getsize(stripped)
    qemu = shutil.which("qemu-system-x86_64")
    q = os.path.getsize(os.path.realpath(qemu))
    print("%-38s %10d %10d %7.3fx" % ("vireo-vmm vs qemu-system-x86_64", v, q, v / q))
    libs = subprocess.run(["ldd", args.vmm], capture_output=True, text=True).stdout.split("\n")
    print("vireo-vmm links: " + ", ".join(l.split()[0] for l in libs if "=>" in l))


def bench_linux(args):
    print("\n== Small Linux kernel: exec -> /init marker ==")
    try:
        # Builds the kernel unless it is cached (make bench builds it first).
        kdir = subprocess.run([args.build_kernel], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print("skipped: cannot build the test kernel: %s" % e)
        return
    cmdline = subprocess.run([args.cmdline_script, "vireo.test=poweroff"], check=True,
                             capture_output=True, text=True).stdout.strip()
    cmd = [args.vmm, "--kernel", os.path.join(kdir, "vmlinux"), "--initrd", args.initrd,
           "--cmdline", cmdline, "--serial", "stdio"]
    times = []
    for _ in range(args.linux_runs):
        _, marker, total, status = timed_run(cmd, b"VIREO-INIT: booted", b"VIREO-INIT: poweroff")
        times.append(marker)
    print("vireo-vmm: %s s (median %.1f s); host notes: 13.3 s (13.26-13.59 s, another host);"
          " QEMU cannot boot it on this host's KVM" %
          (", ".join("%.1f" % t for t in times), statistics.median(times)))



def bench_net(args):
    # virtio-net: frames/s, Gbit/s and host CPU per frame (tests/bench/net.py).
    print(flush=True)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "net.py"), "--build", args.build])


def bench_migrate(args):
    # Live migration beside QEMU 7.2: 1 and 4 GiB guests, idle and dirtying 100 MB/s;
    # save/restore of an untouched 1 GiB guest (tests/bench/migrate.py).
    print(flush=True)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "migrate.py"), "--build", args.build])


def bench_blk(args):
    # virtio-blk: requests/s and host CPU per request at depth 32, against fio (tests/bench/blk.py).
    print(flush=True)
    subprocess.run([sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "blk.py"), "--build", args.build])


def bench_daemon(args):
    # vireod: idle RSS, 1000 defines + list, virsh start -> first serial byte
    # (tests/daemon/bench_daemon.py; needs python3-libvirt, hence Debian's python3).
    print(flush=True)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run(["/usr/bin/python3", os.path.join(src, "tests", "daemon", "bench_daemon.py"),
                    args.build])


def bench_img(args):
    # vireo-img bench and convert vs qemu-img on the same images, cache none on
    # ext4 (/var/tmp: tmpfs takes no O_DIRECT) (tests/storage/bench_vs_qemu.py).
    print("\n== vireo-img vs qemu-img ==", flush=True)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, os.path.join(src, "tests", "storage", "bench_vs_qemu.py"),
                    os.path.join(args.build, "cli", "vireo-img"), "/var/tmp"])


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--build", required=True, help="meson build directory")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--linux-runs", type=int, default=3)
    args = p.parse_args()
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    args.vmm = os.path.join(args.build, "vmm", "vireo-vmm")
    args.initrd = os.path.join(args.build, "tests", "guest", "linux", "initramfs.cpio")
    args.build_kernel = os.path.join(src, "tests", "guest", "linux", "build-kernel.sh")
    args.cmdline_script = os.path.join(src, "tests", "guest", "linux", "cmdline.sh")
    guest = os.path.join(args.build, "tests", "guest")
    progs = {n: os.path.join(guest, n + ".elf") for n in
             ["bench-first-insn", "hello", "powerbutton"]}
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        # vireo-img runs no guest: its figures need no KVM.
        print("no /dev/kvm: only vireo-img is measured")
        bench_img(args)
        return 0
    print("vireo-vmm benchmarks on %s, %d CPUs; QEMU: %s" % (
        os.uname().release, os.cpu_count(),
        subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                       text=True).stdout.split("\n")[0]))
    bench_startup(args, progs)
    bench_memory(args, progs)
    bench_size(args)
    bench_linux(args)
    bench_net(args)
    bench_blk(args)
    bench_migrate(args)
    bench_daemon(args)
    bench_img(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
