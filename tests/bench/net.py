#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""virtio-net benchmarks: frames/s, Gbit/s and host CPU per frame.

1. The device alone, in-process (tests/devices/test-virtio-net --bench): the
   test's virtio driver keeps the rings full, a socketpair is the backend;
   no KVM. Host CPU per frame of device + driver + socket.
2. Under KVM with a real tap in a throwaway network namespace (root): the
   guest program tests/guest/virtio-net.c runs its hot loop at CPL3 (native
   speed on these hosts; CPL0 is emulated).
   tx: the guest sends N frames of 64 and 1500 bytes to a MAC nobody has;
       the tap counts them (its rx_packets) and the host drops them.
   rx: a host process sends frames into the tap (AF_PACKET, sendmmsg) to the
       guest's MAC; the guest counts what arrives.
   Host CPU per frame: the event loop thread (where the device runs) and the
   vCPU thread (guest code, exits, the doorbell), from /proc.
3. Reference: the same host process writing frames straight into a tap fd
   (no VM), the tap's own cost per frame here.

QEMU cannot run this host's guest kernels under KVM, and its virtio-net
over this program would need a PCI BAR layout the program does not handle;
no QEMU column. Figures only, no pass/fail thresholds.

Usage: net.py --build BUILD [--frames N]   (run as root; make bench calls it)
"""
import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import threading
import time

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAP = "vbench0"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# A host-side frame source, run in the namespace: sendmmsg() batches of 64
# through an AF_PACKET socket on the tap, for SECONDS or COUNT frames.
SENDER = r"""
import ctypes, socket, struct, sys, time
tap, dst, size, count, seconds, mode = sys.argv[1:7]
size, count, seconds = int(size), int(count), float(seconds)
frame = bytes.fromhex(dst.replace(":", "")) + bytes.fromhex("02bebe000001") + b"\x88\xb5"
frame += bytes(i & 0xff for i in range(size - len(frame)))
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]
buf = ctypes.create_string_buffer(frame, len(frame))
iov = iovec(ctypes.addressof(buf), len(frame))
if mode == "tap":
    # The reference: frames written straight into a tap of our own.
    import fcntl
    fd = __import__("os").open("/dev/net/tun", 2)
    fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH22x", tap.encode(), 0x0002 | 0x1000))
    sent, t0 = 0, time.perf_counter()
    while sent < count and time.perf_counter() - t0 < seconds:
        for _ in range(256):
            libc.write(fd, buf, len(frame))
        sent += 256
else:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((tap, 0))
    msgs = (mmsghdr * 64)()
    for m in msgs:
        m.hdr.iov = ctypes.pointer(iov)
        m.hdr.iovlen = 1
    sent, t0 = 0, time.perf_counter()
    while sent < count and time.perf_counter() - t0 < seconds:
        n = libc.sendmmsg(s.fileno(), msgs, 64, 0)
        sent += max(n, 0)
print("sent=%d seconds=%.3f" % (sent, time.perf_counter() - t0), flush=True)
"""


def ns_run(ns, *cmd, **kw):
    return subprocess.run(["ip", "netns", "exec", ns] + list(cmd), check=True, **kw)


def tap_stat(ns, name):
    return int(ns_run(ns, "cat", "/sys/class/net/%s/statistics/%s" % (TAP, name),
                      capture_output=True, text=True).stdout)


def tsc_khz():
    out = subprocess.run([os.path.join(SRC, "tests/guest/linux/cmdline.sh")], check=True,
                         capture_output=True, text=True).stdout
    return int(re.search(r"tsc_early_khz=(\d+)", out).group(1))


class Vm:
    """vireo-vmm with the guest program, per-thread CPU sampled until it exits."""

    def __init__(self, args, ns, cmdline):
        cmd = ["ip", "netns", "exec", ns, args.vmm, "--kernel", args.elf, "--debug-exit",
               "--serial", "stdio", "--net", "tap=" + TAP, "--cmdline", cmdline]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out = ""
        self.cpu = {}           # thread name -> (user + sys) seconds, last sample
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.out += line

    def _sample(self):
        pid = None
        while self.proc.poll() is None:
            if pid is None:
                # ip netns exec execs vireo-vmm: same pid once it is running.
                pid = self.proc.pid
            cpu = {}
            try:
                for tid in os.listdir("/proc/%d/task" % pid):
                    with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                        stat = f.read()
                    name = stat[stat.index("(") + 1:stat.rindex(")")]
                    fields = stat[stat.rindex(")") + 2:].split()
                    cpu[name] = cpu.get(name, 0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
            except (FileNotFoundError, ProcessLookupError, ValueError):
                pass
            # Threads that already ended keep their last figure.
            for name, secs in cpu.items():
                self.cpu[name] = max(self.cpu.get(name, 0), secs)
            time.sleep(0.02)

    def wait_for(self, pattern, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                m = re.search(pattern, self.out)
            if m:
                return m
            if self.proc.poll() is not None and not self.reader.is_alive():
                break
            time.sleep(0.01)
        raise RuntimeError("no %r; output: %s %s" % (pattern, self.out,
                                                      self.proc.stderr.read()))

    def finish(self):
        self.proc.wait(timeout=60)
        self.sampler.join(1)
        if self.proc.returncode != 33:
            raise RuntimeError("vireo-vmm exited %d: %s" % (self.proc.returncode, self.out))


def report(what, size, frames, seconds, vm):
    loop = vm.cpu.get("vireo-vmm", 0)
    vcpu = sum(v for k, v in vm.cpu.items() if k.startswith("vcpu"))
    print("%-4s %6d %12.0f %10.3f %14.0f %14.0f" % (
        what, size, frames / seconds, frames * size * 8 / seconds / 1e9,
        loop / frames * 1e9, vcpu / frames * 1e9))


def bench_kvm(args):
    print("\n== virtio-net under KVM, guest CPL3 loop <-> tap (%d frames each) ==" % args.frames)
    if os.geteuid() != 0 or not os.access("/dev/kvm", os.R_OK | os.W_OK) or \
            not shutil.which("ip"):
        print("skipped: needs root, /dev/kvm and ip(8)")
        return
    khz = tsc_khz()
    ns = "vireo-bench-%d" % os.getpid()
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        ns_run(ns, "ip", "tuntap", "add", "dev", TAP, "mode", "tap")
        ns_run(ns, "ip", "link", "set", TAP, "up")
        print("%-4s %6s %12s %10s %14s %14s" % ("dir", "frame", "frames/s", "Gbit/s",
                                               "loop ns/frame", "vCPU ns/frame"))
        for size in (64, 1500):
            before = tap_stat(ns, "rx_packets")
            vm = Vm(args, ns, "mode=tx frames=%d size=%d" % (args.frames, size))
            m = vm.wait_for(r"bench tx frames=(\d+) size=\d+ cycles=(\d+)")
            vm.finish()
            counted = tap_stat(ns, "rx_packets") - before
            if counted < args.frames:
                print("     (the tap counted only %d frames)" % counted)
            report("tx", size, counted, int(m.group(2)) / (khz * 1000), vm)
        for size in (64, 1500):
            vm = Vm(args, ns, "mode=rx frames=%d" % args.frames)
            mac = vm.wait_for(r"MAC ([0-9a-f:]{17})").group(1)
            vm.wait_for(r"bench rx ready")
            sender = ns_run(ns, sys.executable, "-c", SENDER, TAP, mac, str(size),
                            str(args.frames * 2), "20", "packet", capture_output=True,
                            text=True).stdout
            m = vm.wait_for(r"bench rx frames=(\d+) cycles=(\d+)")
            vm.finish()
            got, cycles = int(m.group(1)), int(m.group(2))
            sent = re.search(r"sent=(\d+) seconds=([\d.]+)", sender)
            report("rx", size, got, cycles / (khz * 1000), vm)
            print("     (host sender: %s frames in %s s; %d reached the guest)" %
                  (sent.group(1), sent.group(2), got))
        # The reference: a host process writing into a tap fd, no VM.
        ns_run(ns, "ip", "link", "del", TAP)
        ns_run(ns, "ip", "tuntap", "add", "dev", TAP, "mode", "tap")
        ns_run(ns, "ip", "link", "set", TAP, "up")
        for size in (64, 1500):
            out = ns_run(ns, sys.executable, "-c", SENDER, TAP, "02:00:00:00:00:02",
                         str(size), "2000000", "2", "tap", capture_output=True,
                         text=True).stdout
            sent = re.search(r"sent=(\d+) seconds=([\d.]+)", out)
            n, s = int(sent.group(1)), float(sent.group(2))
            print("ref  %6d %12.0f %10.3f   (a host process writing into a tap fd, no VM)" %
                  (size, n / s, n * size * 8 / s / 1e9))
    finally:
        subprocess.run(["ip", "netns", "del", ns])
    print("loop = vireo-vmm's event loop thread (the device), vCPU = the guest's thread "
          "(its CPL3 loop, exits, doorbells); TSC %d kHz" % khz)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", required=True, help="meson build directory")
    p.add_argument("--frames", type=int, default=1000000)
    args = p.parse_args()
    args.vmm = os.path.join(args.build, "vmm", "vireo-vmm")
    args.elf = os.path.join(args.build, "tests", "guest", "virtio-net.elf")
    print("== virtio-net, the device alone (in-process, no KVM) ==")
    subprocess.run([os.path.join(args.build, "tests", "devices", "test-virtio-net"), "--bench",
                    str(min(args.frames, 300000))], check=True)
    bench_kvm(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
