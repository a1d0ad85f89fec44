#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""End-to-end tests with the small Linux test kernel (tests/guest/linux).

Linux's own drivers are the clients here: its 8250 driver, ACPI (power
button, S5, reset register), SMP bring-up, the CMOS RTC driver. Each mode
boots the kernel with the busybox initramfs, whose /init acts on
vireo.test=MODE, and checks what the guest printed, the QMP events and the
exit status. Timings are printed for the issue notes.

Exit status: 0 pass, 1 fail, 77 skip.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp_test import QmpClient, TestFailure, check  # noqa: E402

SKIP = 77
BOOTED = "VIREO-INIT: booted"


def log(msg):
    print("linux_test: " + msg, flush=True)


class LinuxVm:
    """vireo-vmm with the serial port on a pipe and QMP on a socket."""

    def __init__(self, args, tmp, kernel, mode, extra=()):
        self.args = args
        self.qmp_path = os.path.join(tmp, "qmp.sock")
        cmdline = subprocess.run([args.cmdline_script, "vireo.test=" + mode],
                                 check=True, capture_output=True, text=True).stdout.strip()
        self.cmd = [args.vmm, "--kernel", kernel, "--initrd", args.initrd,
                    "--cmdline", cmdline, "--memory", "128", "--name", "linux-" + mode,
                    "--serial", "stdio", "--qmp", "unix:" + self.qmp_path] + list(extra)
        log("starting: " + " ".join(self.cmd))
        self.start = time.monotonic()
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = bytearray()
        self.err = bytearray()
        self.lock = threading.Lock()
        self.seen = {}          # (text, count) -> seconds after start when seen
        self.readers = [threading.Thread(target=self._read, args=(self.proc.stdout, self.out),
                                         daemon=True),
                        threading.Thread(target=self._read, args=(self.proc.stderr, self.err),
                                         daemon=True)]
        for t in self.readers:
            t.start()
        self.qmp = None

    def _read(self, stream, buf):
        while True:
            data = stream.read1(65536)
            if not data:
                return
            with self.lock:
                buf.extend(data)

    def text(self):
        with self.lock:
            return self.out.decode(errors="replace")

    def elapsed(self):
        return time.monotonic() - self.start

    def wait_text(self, text, count=1, timeout=None):
        """Waits until @text appeared @count times; returns when (s after start)."""
        deadline = time.monotonic() + (timeout or self.args.timeout)
        while self.text().count(text) < count:
            check(self.proc.poll() is None, "vireo-vmm exited (%s) waiting for %r" %
                  (self.proc.returncode, text))
            check(time.monotonic() < deadline, "no %r after %.0f s" % (text, self.elapsed()))
            time.sleep(0.02)
        self.seen.setdefault((text, count), self.elapsed())
        return self.seen[(text, count)]

    def wait_line(self, prefix, timeout=None):
        """Waits for a whole line starting with @prefix; returns it without the newline."""
        deadline = time.monotonic() + (timeout or self.args.timeout)
        pattern = re.compile(re.escape(prefix) + r"[^\r\n]*\r?\n")
        while True:
            m = pattern.search(self.text())
            if m:
                return m.group(0).rstrip("\r\n")
            check(self.proc.poll() is None, "vireo-vmm exited (%s) waiting for %r" %
                  (self.proc.returncode, prefix))
            check(time.monotonic() < deadline, "no %r line after %.0f s" %
                  (prefix, self.elapsed()))
            time.sleep(0.02)

    def send(self, data):
        self.proc.stdin.write(data.encode())
        self.proc.stdin.flush()

    def connect_qmp(self):
        deadline = time.monotonic() + 10
        while True:
            try:
                self.qmp = QmpClient(self.qmp_path, "qmp", strict=True)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                check(time.monotonic() < deadline, "no QMP socket")
                time.sleep(0.02)
        greeting = self.qmp.read_message()
        check(greeting and "QMP" in greeting, "QMP greeting %r" % (greeting,))
        self.qmp.ok("qmp_capabilities")
        return self.qmp

    def wait_exit(self, timeout=None):
        try:
            status = self.proc.wait(timeout=timeout or self.args.timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("vireo-vmm still running after %.0f s" % self.elapsed())
        for t in self.readers:
            t.join(5)
        return status

    def kernel_time(self, pattern):
        """The kernel's printk timestamp of the first line matching @pattern."""
        m = re.search(r"\[\s*(\d+\.\d+)\] " + pattern, self.text())
        return float(m.group(1)) if m else None

    def stop(self):
        if self.qmp:
            self.qmp.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def dump(self):
        sys.stderr.write("---- serial output ----\n%s\n---- stderr ----\n%s\n" %
                         (self.text(), self.err.decode(errors="replace")))


def report_boot(vm, what):
    booted = vm.wait_text(BOOTED)
    run_init = vm.kernel_time("Run /init")
    log("%s: /init marker %.1f s after exec (kernel: 'Run /init' at %s s)" %
        (what, booted, "%.2f" % run_init if run_init is not None else "?"))


def mode_poweroff(vm):
    report_boot(vm, "poweroff")
    vm.wait_text("VIREO-INIT: poweroff")
    ev = vm.qmp.expect_event("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"},
                             timeout=vm.args.timeout)
    check(ev, "no SHUTDOWN event")
    check(vm.wait_exit() == 0, "exit status %s after ACPI S5" % vm.proc.returncode)
    log("poweroff: vireo-vmm exited 0, %.1f s after exec" % vm.elapsed())


def mode_reboot(vm):
    report_boot(vm, "reboot (first boot)")
    vm.wait_text("VIREO-INIT: reboot")
    vm.qmp.expect_event("RESET", {"guest": True, "reason": "guest-reset"},
                        timeout=vm.args.timeout)
    first = vm.elapsed()
    second = vm.wait_text(BOOTED, count=2)
    log("reboot: second boot reached /init %.1f s after the reset" % (second - first))
    # The guest reboots forever in this mode: end it from the host.
    vm.qmp.execute("quit")
    vm.qmp.expect_event("SHUTDOWN", {"guest": False, "reason": "host-qmp-quit"})
    check(vm.wait_exit() == 0, "exit status %s after quit" % vm.proc.returncode)


def mode_smp(vm):
    report_boot(vm, "smp")
    m = re.search(r"VIREO-INIT: cpus=(\d+) online=(\S+)", vm.wait_line("VIREO-INIT: cpus="))
    check(m and m.group(1) == "2" and m.group(2) == "0-1",
          "guest reports %r, expected cpus=2 online=0-1" % (m.group(0) if m else None))
    check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    log("smp: Linux brought up both vCPUs (%s)" % m.group(0))


def mode_rtc(vm):
    report_boot(vm, "rtc")
    line = vm.wait_line("VIREO-INIT: rtc=")
    host = time.time()
    m = re.search(r"VIREO-INIT: rtc=(\d+)", line)
    check(m, "no rtc= line")
    guest = int(m.group(1))
    # The guest set its clock from the RTC while booting and read it a
    # little later: it may lag the host by the boot time, never lead.
    check(-5 <= host - guest <= vm.elapsed() + 5,
          "guest clock %d is %d s off the host's %d" % (guest, host - guest, host))
    check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    log("rtc: guest time from the CMOS RTC is %.0f s behind the host" % (host - guest))


def mode_powerdown(vm):
    report_boot(vm, "powerdown")
    vm.wait_text("VIREO-INIT: waiting-for-powerdown")
    # acpid needs a moment to open the input device after printing.
    time.sleep(1)
    pressed = vm.elapsed()
    vm.qmp.ok("system_powerdown")
    vm.qmp.expect_event("POWERDOWN")
    vm.wait_text("VIREO-INIT: power button pressed")
    vm.qmp.expect_event("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"},
                        timeout=vm.args.timeout)
    check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    log("powerdown: ACPI power button -> acpid -> poweroff in %.1f s" %
        (vm.elapsed() - pressed))


def mode_shell(vm):
    report_boot(vm, "shell")
    vm.wait_text("Type 'poweroff'")
    vm.wait_text("vireo-guest:")
    vm.send("echo vireo-$((6*7))\n")
    vm.wait_text("vireo-42")
    vm.send("poweroff\n")
    check(vm.wait_exit() == 0, "exit status %s after poweroff" % vm.proc.returncode)
    log("shell: command ran on the serial console, poweroff ended vireo-vmm with 0")


def mode_rng(vm):
    report_boot(vm, "rng")
    m = re.search(r"VIREO-INIT: rng=(\S+) bytes=(\d+) hex=([0-9a-f]*)",
                  vm.wait_line("VIREO-INIT: rng="))
    check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    check(m and m.group(1).startswith("virtio_rng") and m.group(2) == "64" and
          len(m.group(3)) == 128 and m.group(3) != "0" * 128,
          "guest reports %r, expected 64 random bytes from virtio_rng" %
          (m.group(0) if m else None))
    log("rng: Linux's virtio_rng read 64 bytes through /dev/hwrng")


MODES = {
    "poweroff": ("poweroff", mode_poweroff, "vmlinux", []),
    "bzimage": ("poweroff", mode_poweroff, "bzImage", []),
    "reboot": ("reboot", mode_reboot, "vmlinux", []),
    "smp": ("smp", mode_smp, "vmlinux", ["--cpus", "2"]),
    "rtc": ("rtc", mode_rtc, "vmlinux", []),
    "powerdown": ("powerdown", mode_powerdown, "vmlinux", []),
    "shell": ("shell", mode_shell, "vmlinux", []),
    "rng": ("rng", mode_rng, "vmlinux", ["--device", "virtio-rng"]),
}


def kernel_dir(args):
    if args.kernel_dir:
        return args.kernel_dir
    if not os.path.exists("/usr/src/linux-source-6.1.tar.xz"):
        log("SKIP: linux-source-6.1 is not installed, cannot build the test kernel")
        sys.exit(SKIP)
    # Cached after the first build (about 5 minutes on 2 cores).
    return subprocess.run([args.build_kernel], check=True, capture_output=True,
                          text=True).stdout.strip()


def download_stock_kernel(tmp):
    """The vmlinuz of Debian's current linux-image-cloud-amd64, unpacked into @tmp."""
    deps = subprocess.run(["apt-cache", "depends", "linux-image-cloud-amd64"], check=True,
                          capture_output=True, text=True).stdout
    pkg = re.search(r"Depends: (linux-image-\S+-cloud-amd64)", deps).group(1)
    subprocess.run(["apt-get", "download", pkg], cwd=tmp, check=True, capture_output=True)
    deb = [f for f in os.listdir(tmp) if f.endswith(".deb")][0]
    subprocess.run(["dpkg-deb", "-x", deb, "root"], cwd=tmp, check=True)
    boot = os.path.join(tmp, "root", "boot")
    return os.path.join(boot, [f for f in os.listdir(boot) if f.startswith("vmlinuz-")][0])


def stock_test(args, tmp):
    """Debian's stock cloud kernel: minutes of emulated early boot on kvm_pvm."""
    if os.environ.get("VIREO_TEST_STOCK_KERNEL") != "1":
        log("SKIP: set VIREO_TEST_STOCK_KERNEL=1 to boot Debian's stock cloud kernel "
            "(VIREO_STOCK_KERNEL=/path/to/vmlinuz to pick one; ~10+ minutes on kvm_pvm)")
        return SKIP
    kernel = os.environ.get("VIREO_STOCK_KERNEL")
    if not kernel:
        found = sorted(f for f in os.listdir("/boot") if re.match(r"vmlinuz-.*-cloud-amd64$", f))
        kernel = "/boot/" + found[-1] if found else download_stock_kernel(tmp)
    cmdline = ("console=ttyS0 panic=-1 noxsave clearcpuid=cx16,rdrand,rdseed,popcnt,smap,smep,"
               "ssse3,sse4_1,sse4_2,pclmulqdq,aes,sha_ni nofsgsbase nopku mitigations=off "
               "nowatchdog nosoftlockup vireo.test=poweroff")
    # --no-reboot: without our guest patch its first system call panics on
    # kvm_pvm, and panic=-1 would boot it again and again.
    cmd = [args.vmm, "--kernel", kernel, "--initrd", args.initrd, "--cmdline", cmdline,
           "--memory", "512", "--no-reboot", "--serial", "file:" + os.path.join(tmp, "serial")]
    log("starting: " + " ".join(cmd))
    start = time.monotonic()
    proc = subprocess.Popen(cmd)
    try:
        proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    with open(os.path.join(tmp, "serial"), errors="replace") as f:
        out = f.read()
    last = [line for line in out.splitlines() if line.startswith("[")][-1:]
    log("stock kernel: %.0f s, last kernel line: %s" % (time.monotonic() - start,
                                                       last[0] if last else "(none)"))
    if "Run /init" not in out:
        log("FAIL: the stock kernel did not reach /init")
        return 1
    m = re.search(r"\[\s*(\d+\.\d+)\] Run /init", out)
    log("stock kernel reached /init at %s s of guest time%s" % (
        m.group(1), "" if BOOTED in out else
        " (its first system call then fails where KVM is nested and paravirtual)"))
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vmm", required=True)
    p.add_argument("--initrd", required=True)
    p.add_argument("--cmdline-script", required=True)
    p.add_argument("--build-kernel", help="build-kernel.sh, when no --kernel-dir")
    p.add_argument("--kernel-dir")
    p.add_argument("--timeout", type=float, default=240)
    p.add_argument("mode", choices=sorted(MODES) + ["stock"])
    args = p.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("SKIP: no /dev/kvm")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="vireo-linux-") as tmp:
        if args.mode == "stock":
            return stock_test(args, tmp)
        guest_mode, fn, image, extra = MODES[args.mode]
        kernel = os.path.join(kernel_dir(args), image)
        vm = LinuxVm(args, tmp, kernel, guest_mode, extra)
        try:
            vm.connect_qmp()
            fn(vm)
        except TestFailure as e:
            vm.dump()
            log("FAIL: %s" % e)
            return 1
        finally:
            vm.stop()
    log("PASS %s" % args.mode)
    return 0


if __name__ == "__main__":
    sys.exit(main())
