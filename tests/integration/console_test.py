#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""virtio-console end to end with the guest program tests/guest/virtio-console.c.

The guest does the MULTIPORT handshake, echoes what each port receives,
then resets the device and echoes on the single-port console (after
sending "B-ready"). Two command lines:

  device:  --device virtio-console,socket0=P0,max-ports=2 --channel
           name=org.vireo.test.1,socket=P1: port 0 and a named port on the
           device's own sockets; the serial port keeps the guest's log.
  console: --console virtio --serial unix:P0: port 0 carries the --serial
           backend (vmm/chardev.c's socket), COM1 gets none, so the echo and
           the exit status are all there is to check. -S and QMP "cont"
           once the test holds the socket, because that backend drops
           output while nobody is connected.

Usage: console_test.py VIREO_VMM VIRTIO_CONSOLE_ELF
Exit status: 0 pass, 1 fail, 77 skip (no /dev/kvm).
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 60
PASS_STATUS = 33
NAME = "org.vireo.test.1"


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def connect(path, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            s.settimeout(TIMEOUT)
            return s
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            check(time.monotonic() < deadline, "no socket at " + path)
            time.sleep(0.02)


def read_until(s, needle, what):
    buf = b""
    deadline = time.monotonic() + TIMEOUT
    while needle not in buf:
        check(time.monotonic() < deadline, "%s: no %r, got %r" % (what, needle, buf))
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        check(data, "%s: closed after %r" % (what, buf))
        buf += data
    return buf


class Vmm:
    def __init__(self, vmm, elf, args):
        self.cmd = [vmm, "--kernel", elf, "--debug-exit"] + args
        print("$ " + " ".join(self.cmd), flush=True)
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = bytearray()
        self.err = bytearray()
        self.threads = [threading.Thread(target=self._read, args=(f, b), daemon=True)
                        for f, b in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _read(self, stream, buf):
        while True:
            data = stream.read1(65536)
            if not data:
                return
            buf.extend(data)

    def wait(self):
        try:
            status = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Failure("vireo-vmm still running after %d s" % TIMEOUT)
        for t in self.threads:
            t.join(5)
        return status

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def dump(self):
        sys.stderr.write("---- serial ----\n%s\n---- stderr ----\n%s\n" %
                         (self.out.decode(errors="replace"), self.err.decode(errors="replace")))


def echo(s, data, what):
    s.sendall(data)
    got = read_until(s, data, what)
    check(got == data, "%s: sent %r, got back %r" % (what, data, got))


def qmp_cont(path):
    s = connect(path)
    f = s.makefile("rwb")
    check(b"QMP" in f.readline(), "no QMP greeting")
    for cmd in ("qmp_capabilities", "cont"):
        f.write(json.dumps({"execute": cmd}).encode() + b"\r\n")
        f.flush()
        while True:
            msg = json.loads(f.readline())
            if "event" not in msg:
                break
        check("return" in msg, "%s failed: %r" % (cmd, msg))
    return s


def run_device(vmm_path, elf, tmp):
    p0, p1 = os.path.join(tmp, "hvc0.sock"), os.path.join(tmp, "port1.sock")
    vm = Vmm(vmm_path, elf, ["--device", "virtio-console,socket0=%s,max-ports=2" % p0,
                             "--channel", "name=%s,socket=%s" % (NAME, p1)])
    try:
        c0, c1 = connect(p0), connect(p1)
        # Sent before the guest has opened the ports: it waits in the sockets.
        line0 = b"hello port 0, " + bytes(range(32, 127)) * 40 + b"\n"
        echo(c0, line0, "port 0 (multiport)")
        echo(c1, b"hello " + NAME.encode() + b"\n", "port 1")
        # The guest waits for the host side of port 1 to close.
        c1.close()
        read_until(c0, b"B-ready\n", "port 0 after the reset")
        echo(c0, b"phase B: single port\n", "port 0 (single port)")
        status = vm.wait()
        c0.close()
        text = vm.out.decode(errors="replace")
        check(status == PASS_STATUS, "exit status %s" % status)
        for want in ("port 0 is the console", "port 1 is named " + NAME,
                     "host side of port 1 closed", "VIREO-GUEST: PASS virtio-console"):
            check(want in text, "serial output lacks %r" % want)
        print("device: echo on port 0 (%d bytes) and %s, host close seen, single-port echo"
              % (len(line0), NAME), flush=True)
    except Failure:
        vm.dump()
        raise
    finally:
        vm.kill()


def run_console(vmm_path, elf, tmp):
    p0, qmp = os.path.join(tmp, "serial.sock"), os.path.join(tmp, "qmp.sock")
    vm = Vmm(vmm_path, elf, ["--console", "virtio", "--serial", "unix:" + p0,
                             "--qmp", "unix:" + qmp, "-S"])
    try:
        c0 = connect(p0)
        q = qmp_cont(qmp)
        echo(c0, b"console virtio\n", "hvc0 (multiport)")
        read_until(c0, b"B-ready\n", "hvc0 after the reset")
        echo(c0, b"and once more\n", "hvc0 (single port)")
        status = vm.wait()
        c0.close()
        q.close()
        check(status == PASS_STATUS, "exit status %s" % status)
        # COM1 got "none": nothing of the guest's log reached stdout.
        check(b"VIREO-GUEST" not in vm.out, "serial output with --console virtio")
        print("console: --console virtio carried --serial unix: both ways", flush=True)
    except Failure:
        vm.dump()
        raise
    finally:
        vm.kill()


def main():
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no /dev/kvm")
        return 77
    with tempfile.TemporaryDirectory(prefix="vireo-console-") as tmp:
        try:
            run_device(sys.argv[1], sys.argv[2], tmp)
            run_console(sys.argv[1], sys.argv[2], tmp)
        except Failure as e:
            print("FAIL: %s" % e, flush=True)
            return 1
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
