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

    def __init__(self, args, tmp, kernel, mode, extra=(), tag="qmp"):
        self.args = args
        self.tmp = tmp
        self.kernel = kernel
        self.mode = mode
        self.qmp_path = os.path.join(tmp, tag + ".sock")
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


# vireo-vmm makes the sockets before LinuxVm starts the guest, so their
# paths are fixed here: one pair per test process.
CONSOLE_SOCKETS = os.path.join(tempfile.gettempdir(), "vireo-console-%d" % os.getpid())
CONSOLE_PORT_NAME = "org.qemu.guest_agent.0"


def mode_console(vm):
    """Linux's virtio_console: /dev/hvc0 and a named port, both on UNIX sockets."""
    import socket

    def connect(path):
        deadline = time.monotonic() + 10
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(path)
                s.settimeout(0.2)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                check(time.monotonic() < deadline, "no socket at %s" % path)
                time.sleep(0.02)

    def read_until(s, needle, what):
        buf = b""
        deadline = time.monotonic() + vm.args.timeout
        while needle not in buf:
            check(vm.proc.poll() is None, "vireo-vmm exited waiting for %r on %s" % (needle, what))
            check(time.monotonic() < deadline, "no %r on %s, got %r" % (needle, what, buf))
            try:
                data = s.recv(4096)
            except socket.timeout:
                continue
            check(data, "%s closed after %r" % (what, buf))
            buf += data
        return buf

    # Connected before the guest boots: output without a client is dropped.
    hvc = connect(CONSOLE_SOCKETS + "-hvc0.sock")
    agent = connect(CONSOLE_SOCKETS + "-qga.sock")
    try:
        report_boot(vm, "console")
        m = re.search(r"console: port=(vport\d+p\d+) name=(\S+) hvc0=(\w+)",
                      vm.wait_line("VIREO-INIT: console: port="))
        check(m and m.group(2) == CONSOLE_PORT_NAME and m.group(3) == "yes",
              "guest reports %r" % (m.group(0) if m else None))
        agent.sendall(b"guest-sync-4242\n")
        read_until(agent, b"pong:guest-sync-4242\n", CONSOLE_PORT_NAME)
        # The guest blocks in read() until the host side closes (PORT_OPEN 0).
        agent.close()
        vm.wait_text("VIREO-INIT: console: host closed " + CONSOLE_PORT_NAME)
        marker = read_until(hvc, b"\n", "hvc0")
        check(b"VIREO-HVC0: marker from" in marker, "hvc0 gave %r" % marker)
        hvc.sendall(b"hvc0-ping\n")
        line = vm.wait_line("VIREO-INIT: console: hvc0 read=")
        check(line.endswith("read=hvc0-ping"), "guest reports %r" % line)
        check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    finally:
        hvc.close()
        agent.close()
    log("console: %s and /dev/hvc0 both ways, host close seen by the guest (%s)" %
        (CONSOLE_PORT_NAME, m.group(1)))


BALLOON_RAM = 128 << 20         # LinuxVm's --memory
BALLOON_SIZE = 32 << 20


def memfd_allocated(pid):
    """Guest RAM the host holds for vireo-vmm @pid: its memfd's allocated bytes."""
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        path = os.path.join(fd_dir, fd)
        try:
            if os.readlink(path).startswith("/memfd:vireo-guest-ram"):
                return os.stat(path).st_blocks * 512
        except OSError:
            continue
    raise TestFailure("no guest RAM memfd among %s" % fd_dir)


def balloon_wait(vm, actual):
    """Waits for the BALLOON_CHANGE that says the guest keeps @actual bytes; returns s taken."""
    start = time.monotonic()
    while True:
        while vm.qmp.events:
            ev = vm.qmp.events.pop(0)
            if ev["event"] == "BALLOON_CHANGE" and ev["data"]["actual"] == actual:
                return time.monotonic() - start
        check(time.monotonic() - start < vm.args.timeout,
              "no BALLOON_CHANGE to %d bytes (query-balloon: %r)" %
              (actual, vm.qmp.ok("query-balloon")))
        msg = vm.qmp.read_message(vm.args.timeout)
        check(msg is not None and "event" in msg, "unexpected QMP message %r" % (msg,))
        vm.qmp.events.append(msg)


def balloon_meminfo(vm, what):
    line = vm.wait_line("VIREO-INIT: balloon-" + what)
    m = re.search(r"MemTotal=(\d+) MemFree=(\d+)", line)
    check(m, "guest reports %r" % line)
    return int(m.group(1)), int(m.group(2))


def mode_balloon(vm):
    """Linux's virtio_balloon follows QMP "balloon"; the host gets the memory back."""
    report_boot(vm, "balloon")
    total0, free0 = balloon_meminfo(vm, "ready")
    check(vm.qmp.ok("query-balloon")["actual"] == BALLOON_RAM, "balloon not empty at start")
    held0 = memfd_allocated(vm.proc.pid)
    # Inflate by BALLOON_SIZE.
    vm.qmp.ok("balloon", {"value": BALLOON_RAM - BALLOON_SIZE})
    took = balloon_wait(vm, BALLOON_RAM - BALLOON_SIZE)
    info = vm.qmp.ok("query-balloon")
    check(info["actual"] == BALLOON_RAM - BALLOON_SIZE, "query-balloon %r" % info)
    held1 = memfd_allocated(vm.proc.pid)
    vm.send("go\n")
    total1, free1 = balloon_meminfo(vm, "inflated")
    # Without DEFLATE_ON_OOM each ballooned page leaves MemTotal (adjust_managed_page_count).
    check(total0 - total1 == BALLOON_SIZE // 1024,
          "MemTotal %d kB -> %d kB, expected %d kB less" % (total0, total1, BALLOON_SIZE // 1024))
    check(free0 - free1 >= BALLOON_SIZE // 1024 * 3 // 4,
          "MemFree %d kB -> %d kB with %d kB in the balloon" % (free0, free1,
                                                               BALLOON_SIZE // 1024))
    # The guest used its free memory before: most of what it gave back was host memory.
    check(held0 - held1 >= BALLOON_SIZE // 2,
          "the host still holds %d of %d MiB (%d MiB before)" %
          (held1 >> 20, BALLOON_RAM >> 20, held0 >> 20))
    # The statistics (stats-interval=1): the guest's view, in QEMU's guest-stats shape.
    deadline = time.monotonic() + 30
    while True:
        stats = vm.qmp.ok("query-balloon")["guest-stats"]
        if (stats["last-update"] > 0 and
                stats["stats"]["stat-total-memory"] == total1 * 1024):
            break
        check(time.monotonic() < deadline, "guest-stats %r, MemTotal %d kB" % (stats, total1))
        time.sleep(0.2)
    check(0 < stats["stats"]["stat-free-memory"] < total1 * 1024 and
          stats["stats"]["stat-available-memory"] > 0, "guest-stats %r" % stats)
    # Deflate: all of it back.
    vm.qmp.ok("balloon", {"value": BALLOON_RAM})
    took_back = balloon_wait(vm, BALLOON_RAM)
    vm.send("go\n")
    total2, free2 = balloon_meminfo(vm, "deflated")
    check(total2 == total0, "MemTotal %d kB after deflating, %d kB at first" % (total2, total0))
    check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    log("balloon: %d MiB in %.1f s (MemTotal %d -> %d kB, MemFree %d -> %d kB), host memfd "
        "%d -> %d MiB; out again in %.1f s (MemTotal %d kB); guest-stats free %d MiB" %
        (BALLOON_SIZE >> 20, took, total0, total1, free0, free1, held0 >> 20, held1 >> 20,
         took_back, total2, stats["stats"]["stat-free-memory"] >> 20))


# Fixed before LinuxVm starts vireo-vmm, like CONSOLE_SOCKETS.
VSOCK_SOCKET = os.path.join(tempfile.gettempdir(), "vireo-vsock-%d.sock" % os.getpid())
VSOCK_ECHO_BYTES = 1 << 20
VSOCK_GUEST_BYTES = 524288      # vsock-echo's COUNT in init


def mode_vsock(vm):
    """Linux's virtio_vsock with tests/guest/vsock-echo.c, both ways through the hybrid sockets."""
    import socket

    def read_all(s, what):
        chunks = []
        while True:
            check(vm.proc.poll() is None, "vireo-vmm exited reading %s" % what)
            data = s.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    host_port_path = VSOCK_SOCKET + "_5000"
    if os.path.exists(host_port_path):
        os.unlink(host_port_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(host_port_path)
    listener.listen(1)
    listener.settimeout(vm.args.timeout)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        report_boot(vm, "vsock")
        vm.wait_line("VIREO-VSOCK: listening 1234")
        # Host to guest: CONNECT, OK <port>, then an echo of 1 MiB.
        conn.settimeout(vm.args.timeout)
        conn.connect(VSOCK_SOCKET)
        conn.sendall(b"CONNECT 1234\n")
        line = b""
        while not line.endswith(b"\n"):
            byte = conn.recv(1)
            check(byte, "host connection closed after %r (guest not listening?)" % line)
            line += byte
        m = re.match(rb"OK (\d+)\n$", line)
        check(m and int(m.group(1)) >= 1 << 30, "acknowledgement %r" % line)
        data = bytes((i * 7 + (i >> 10)) & 0xff for i in range(VSOCK_ECHO_BYTES))
        start = time.monotonic()

        def send():
            conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        echo = read_all(conn, "the echo")
        sender.join(vm.args.timeout)
        echo_time = time.monotonic() - start
        check(echo == data, "echo of %d bytes came back as %d bytes%s" %
              (len(data), len(echo), "" if len(echo) != len(data) else ", different"))
        line = vm.wait_line("VIREO-VSOCK: echoed")
        check(line.endswith(" %d" % len(data)), "guest reports %r" % line)
        # Guest to host: PATH_5000, the guest's pattern, echoed back after its EOF.
        peer, _ = listener.accept()
        peer.settimeout(vm.args.timeout)
        start = time.monotonic()
        got = read_all(peer, "the guest's data")
        expected = bytes((i * 131 + (i >> 11) + 7) & 0xff for i in range(VSOCK_GUEST_BYTES))
        check(got == expected, "guest sent %d bytes, %s" %
              (len(got), "different" if len(got) == len(expected) else "short"))
        peer.sendall(got)
        peer.close()
        guest_time = time.monotonic() - start
        line = vm.wait_line("VIREO-VSOCK: host echoed")
        check(line.endswith(" %d" % VSOCK_GUEST_BYTES), "guest reports %r" % line)
        vm.wait_text("VIREO-VSOCK: PASS")
        vm.wait_text("VIREO-INIT: vsock=pass")
        check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    finally:
        conn.close()
        listener.close()
        if os.path.exists(host_port_path):
            os.unlink(host_port_path)
    log("vsock: host -> guest port 1234 (OK %s) echoed %d KiB in %.1f s; guest -> host "
        "port 5000 sent %d KiB and read them back in %.1f s" %
        (m.group(1).decode(), VSOCK_ECHO_BYTES >> 10, echo_time, VSOCK_GUEST_BYTES >> 10,
         guest_time))


# vireo-vmm creates this tap (tap=NAME of a tap that does not exist) in the
# test's namespace; mode_net then moves it into one of its own.
NET_TAP = "vln%d" % os.getpid()

# In the namespace: a TCP server answering one line, and a count of the frames
# on the tap each way until the tap goes away with vireo-vmm.
NET_SERVER = r"""
import socket, sys, threading
counts = {"in": 0, "out": 0}
def count():
    p = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    p.bind((sys.argv[1], 0))
    while True:
        try:
            addr = p.recvfrom(65536)[1]
        except OSError:
            return
        counts["out" if addr[2] == socket.PACKET_OUTGOING else "in"] += 1
counter = threading.Thread(target=count, daemon=True)
counter.start()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.0.2.2", 7777))
s.listen(1)
s.settimeout(600)
c, peer = s.accept()
c.settimeout(60)
line = c.makefile().readline().strip()
c.sendall(("ack:%s\n" % line).encode())
c.close()
print("tcp from %s: %s" % (peer[0], line), flush=True)
counter.join(600)
print("frames in=%d out=%d" % (counts["in"], counts["out"]), flush=True)
"""


def mode_net(vm):
    """Linux's virtio_net: ping and a TCP exchange with the host side of a tap."""
    ns = "vireo-lnet-%d" % os.getpid()
    deadline = time.monotonic() + 20
    while not os.path.exists("/sys/class/net/" + NET_TAP):
        check(time.monotonic() < deadline and vm.proc.poll() is None,
              "vireo-vmm made no tap %s" % NET_TAP)
        time.sleep(0.05)
    # The tap's fd stays vireo-vmm's; the interface goes where 10.0.2.2 harms nothing.
    subprocess.run(["ip", "netns", "add", ns], check=True)
    server = None
    try:
        for cmd in (["link", "set", NET_TAP, "netns", ns], ["-n", ns, "link", "set", "lo", "up"],
                    ["-n", ns, "link", "set", NET_TAP, "up"],
                    ["-n", ns, "addr", "add", "10.0.2.2/24", "dev", NET_TAP]):
            subprocess.run(["ip"] + cmd, check=True)
        server = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", NET_SERVER,
                                   NET_TAP], stdout=subprocess.PIPE, text=True)
        report_boot(vm, "net")
        up = vm.wait_line("VIREO-INIT: net-up: ")
        line = vm.wait_line("VIREO-INIT: net: ")
        m = re.search(r"ping=(\d+)/3 tcp=(\S+)", line)
        check(m and m.group(1) == "3" and m.group(2) == "ack:vireo-tcp",
              "guest reports %r, expected ping=3/3 tcp=ack:vireo-tcp" % line)
        check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
        heard = server.communicate(timeout=30)[0]
        check("tcp from 10.0.2.15: vireo-tcp" in heard, "server heard %r" % heard)
        m = re.search(r"frames in=(\d+) out=(\d+)", heard)
        # ARP, at least 4 echo requests, the TCP handshake, data and close each way.
        check(m and int(m.group(1)) >= 8 and int(m.group(2)) >= 8,
              "host side counted %r" % (m.group(0) if m else heard))
        log("net: %s; 3/3 pings, TCP line echoed; the host side counted %s frames from the "
            "guest, %s to it" % (up.split(": ", 1)[1], m.group(1), m.group(2)))
    finally:
        if server and server.poll() is None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "netns", "del", ns])


BLK_SIZE = 8 << 20
BLK_OFFSET = 16 * 4096          # where the guest writes its pattern (dd seek=16, bs=4096)
BLK_IMAGES = {}


def blk_disks(tmp):
    """A raw and a qcow2 image in @tmp, as /dev/vda and /dev/vdb."""
    raw, qcow2 = os.path.join(tmp, "vda.raw"), os.path.join(tmp, "vdb.qcow2")
    with open(raw, "wb") as f:
        f.truncate(BLK_SIZE)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", qcow2, str(BLK_SIZE)], check=True)
    BLK_IMAGES.update(vda=raw, vdb=qcow2, tmp=tmp)
    return ["--disk", "path=%s,format=raw,serial=vireo-vda" % raw,
            "--disk", "path=%s,format=qcow2,serial=vireo-vdb" % qcow2]


def mode_blk(vm):
    """Linux's virtio_blk: busybox dd to /dev/vda (raw) and /dev/vdb (qcow2) and back."""
    report_boot(vm, "blk")
    for d in ("vda", "vdb"):
        line = vm.wait_line("VIREO-INIT: blk: %s " % d)
        check("sectors=%d serial=vireo-%s write=ok read=ok" % (BLK_SIZE // 512, d) in line,
              "guest reports %r" % line)
    check(vm.wait_exit() == 0, "exit status %s" % vm.proc.returncode)
    plain = os.path.join(BLK_IMAGES["tmp"], "vdb.converted")
    r = subprocess.run(["qemu-img", "check", BLK_IMAGES["vdb"]], capture_output=True, text=True)
    check(r.returncode == 0, "qemu-img check: %s%s" % (r.stdout, r.stderr))
    subprocess.run(["qemu-img", "convert", "-O", "raw", BLK_IMAGES["vdb"], plain], check=True)
    for d, path in (("vda", BLK_IMAGES["vda"]), ("vdb", plain)):
        want = (("vireo-blk-%s\n" % d) * 6000).encode()[:65536]
        with open(path, "rb") as f:
            data = f.read()
        check(len(data) == BLK_SIZE, "%s: %d bytes" % (path, len(data)))
        check(data[BLK_OFFSET:BLK_OFFSET + len(want)] == want, "%s: not the guest's pattern" % d)
        check(data[:BLK_OFFSET].count(0) == BLK_OFFSET and
              data[BLK_OFFSET + len(want):].count(0) == BLK_SIZE - BLK_OFFSET - len(want),
              "%s: written outside the guest's range" % d)
    log("blk: Linux's virtio_blk wrote and read back 64 KiB on vda (raw) and vdb (qcow2); the "
        "raw file and the converted qcow2 hold it, qemu-img check is clean")


MIG_LINE = re.compile(r"VIREO-MIG: n=(\d+) (sum=([0-9a-f]{16}) ok|BAD[^\r\n]*)\r?\n")
MIG_PAGES = 512


def mig_expected_sum(n, pages=MIG_PAGES):
    """migrate-counter's hash at line @n, computed as the program does (a model of it)."""
    mask = (1 << 64) - 1
    windows = (n + 1) * 16
    h = 0xcbf29ce484222325
    for p in range(pages):
        gen = 1 + windows // pages + (1 if p < windows % pages else 0)
        g = gen * 0xc2b2ae3d27d4eb4f & mask
        base = p * 512
        for w in range(512):
            x = ((base + w) * 0x9e3779b97f4a7c15 & mask) ^ g
            x ^= x >> 29
            h = ((h ^ (x * 0xbf58476d1ce4e5b9 & mask)) * 0x100000001b3) & mask
    return h


def mig_parse(text):
    return [(int(m.group(1)), m.group(3), m.group(2)) for m in MIG_LINE.finditer(text)]


def mig_lines(vm):
    return mig_parse(vm.text())


def wait_mig_lines(vm, count, what):
    deadline = time.monotonic() + vm.args.timeout
    while len(mig_lines(vm)) < count:
        check(vm.proc.poll() is None, "%s: vireo-vmm exited (%s)" % (what, vm.proc.returncode))
        check(time.monotonic() < deadline, "%s: fewer than %d counter lines" % (what, count))
        time.sleep(0.05)


def mig_wait(qmp, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        info = qmp.ok("query-migrate")
        if info.get("status") in ("completed", "failed", "cancelled"):
            check(info["status"] == "completed", "%s: %r" % (what, info))
            return info
        check(time.monotonic() < deadline, "%s: still %r" % (what, info))
        time.sleep(0.05)


def mig_wait_status(vm, want, what):
    deadline = time.monotonic() + 20
    while vm.qmp.ok("query-status")["status"] != want:
        check(time.monotonic() < deadline, "%s: not %s" % (what, want))
        time.sleep(0.02)


def mode_migrate(vm):
    """A user-space counter keeps going through pre-copy, post-copy, save and restore."""
    report_boot(vm, "migrate")
    wait_mig_lines(vm, 3, "source")
    sock = os.path.join(vm.tmp, "mig.sock")
    dst = LinuxVm(vm.args, vm.tmp, vm.kernel, vm.mode, ["--incoming", "unix:" + sock],
                  tag="dst")
    third = pc = None
    try:
        dst.connect_qmp()
        vm.qmp.ok("migrate-set-parameters", {"max-bandwidth": 0})
        vm.qmp.ok("migrate", {"uri": "unix:" + sock})
        info = mig_wait(vm.qmp, "live migration")
        mig_wait_status(vm, "postmigrate", "source")
        mig_wait_status(dst, "running", "destination")
        log("migrate: live to a second vireo-vmm: total %d ms, downtime %d ms, %d syncs, "
            "%d bytes" % (info["total-time"], info["downtime"], info["ram"]["dirty-sync-count"],
                          info["ram"]["transferred"]))
        vm.qmp.ok("quit")
        wait_mig_lines(dst, 3, "destination")
        # Post-copy: asked for at once, it switches at the end of the first pass; the
        # guest then runs on pc while the pages it dirtied meanwhile follow or are
        # fetched when it touches them.
        sock2 = os.path.join(vm.tmp, "mig2.sock")
        pc = LinuxVm(vm.args, vm.tmp, vm.kernel, vm.mode, ["--incoming", "unix:" + sock2],
                     tag="pc")
        pc.connect_qmp()
        dst.qmp.ok("migrate-set-parameters", {"max-bandwidth": 64 << 20})
        dst.qmp.ok("migrate", {"uri": "unix:" + sock2})
        dst.qmp.ok("migrate-start-postcopy")
        seen = set()
        deadline = time.monotonic() + 120
        while True:
            info = dst.qmp.ok("query-migrate")
            seen.add(info.get("status"))
            if info.get("status") in ("completed", "failed", "cancelled"):
                break
            check(time.monotonic() < deadline, "post-copy: still %r" % info)
            time.sleep(0.02)
        check(info["status"] == "completed" and "postcopy-active" in seen,
              "post-copy migration: %r, statuses seen %r" % (info, sorted(map(str, seen))))
        mig_wait_status(pc, "running", "post-copy destination")
        log("migrate: post-copy to a third vireo-vmm: total %d ms, downtime %d ms" %
            (info["total-time"], info["downtime"]))
        dst.qmp.ok("quit")
        wait_mig_lines(pc, 3, "post-copy destination")
        state = os.path.join(vm.tmp, "vm.state")
        pc.qmp.ok("migrate", {"uri": "file:" + state})
        info = mig_wait(pc.qmp, "save")
        mig_wait_status(pc, "postmigrate", "saved VM")
        log("migrate: saved to a file of %d bytes, downtime %d ms" %
            (os.path.getsize(state), info["downtime"]))
        pc.qmp.ok("quit")
        t0 = time.monotonic()
        third = LinuxVm(vm.args, vm.tmp, vm.kernel, vm.mode, ["--incoming", "file:" + state],
                        tag="third")
        third.connect_qmp()
        mig_wait(third.qmp, "restore")
        mig_wait_status(third, "running", "restored VM")
        log("migrate: restored into a fourth vireo-vmm, running %.0f ms after exec" %
            ((time.monotonic() - t0) * 1000))
        wait_mig_lines(third, 3, "restored VM")
        third.qmp.ok("quit")
        third.wait_exit()
        # One console, three processes: each carries on where the previous stopped,
        # maybe in the middle of a line, so the outputs are joined before parsing.
        parts = [mig_lines(v) for v in (vm, dst, pc, third)]
        lines = mig_parse(vm.text() + dst.text() + pc.text() + third.text())
        bad = [raw for _, _, raw in lines if not raw.startswith("sum=")]
        check(not bad, "the guest found its buffer damaged: %r" % bad)
        numbers = [n for n, _, _ in lines]
        check(numbers == list(range(len(numbers))),
              "counter lines not 0..%d without gap or repeat: %r" % (len(numbers) - 1, numbers))
        # Spot checks against a model of the program: the last line before each hop, the first after.
        picks = {parts[0][-1], parts[1][0], parts[1][-1], parts[2][0], parts[2][-1],
                 parts[3][0], parts[3][-1]}
        for n, got, _ in sorted(picks):
            want = "%016x" % mig_expected_sum(n)
            check(got == want, "line %d: sum %s, expected %s" % (n, got, want))
        log("migrate: %d counter lines (%d on the source, %d after live migration, %d after "
            "post-copy, %d after restore), no gap or repeat; %d sums match the model" %
            (len(numbers), len(parts[0]), len(parts[1]), len(parts[2]), len(parts[3]),
             len(picks)))
    except TestFailure:
        for v in (dst, pc, third):
            if v:
                v.dump()
        raise
    finally:
        for v in (dst, pc, third):
            if v:
                v.stop()


MODES = {
    "poweroff": ("poweroff", mode_poweroff, "vmlinux", []),
    "bzimage": ("poweroff", mode_poweroff, "bzImage", []),
    "reboot": ("reboot", mode_reboot, "vmlinux", []),
    "smp": ("smp", mode_smp, "vmlinux", ["--cpus", "2"]),
    "rtc": ("rtc", mode_rtc, "vmlinux", []),
    "powerdown": ("powerdown", mode_powerdown, "vmlinux", []),
    "shell": ("shell", mode_shell, "vmlinux", []),
    "rng": ("rng", mode_rng, "vmlinux", ["--device", "virtio-rng"]),
    "console": ("console", mode_console, "vmlinux",
                ["--device", "virtio-console,socket0=%s-hvc0.sock" % CONSOLE_SOCKETS,
                 "--channel", "name=%s,socket=%s-qga.sock" % (CONSOLE_PORT_NAME,
                                                             CONSOLE_SOCKETS)]),
    "balloon": ("balloon", mode_balloon, "vmlinux", ["--balloon=stats-interval=1"]),
    "vsock": ("vsock", mode_vsock, "vmlinux", ["--vsock", "cid=3,socket=" + VSOCK_SOCKET]),
    "net": ("net", mode_net, "vmlinux", ["--net", "tap=" + NET_TAP]),
    "blk": ("blk", mode_blk, "vmlinux", blk_disks),
    "migrate": ("migrate", mode_migrate, "vmlinux", []),
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
        if callable(extra):
            extra = extra(tmp)          # arguments that need files made first
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
