#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireo-vmm's serial backends end to end: file, unix socket, pty, none.

The guest program serial-irq sends a line from THRE interrupts, prints
"waiting for 4 bytes", takes 4 bytes from the serial port's receive path
and answers "pong:<bytes>". For the socket and the pty the VM starts paused
(-S) and QMP "cont" runs it once the test holds the other end, because
output is dropped while nobody is connected.

Usage: serial_backends.py VIREO_VMM SERIAL_IRQ_ELF HELLO_ELF
"""
import fcntl
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import termios
import time
import tty

TIMEOUT = 30
WAITING = b"waiting for 4 bytes"
PONG = b"VIREO-GUEST: pong:ping"
PASS_STATUS = 33


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def wait_for(predicate, what, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        check(time.monotonic() < deadline, "timed out waiting for " + what)
        time.sleep(0.02)


def qmp_cont(path):
    """Connects to QMP, negotiates and sends cont."""
    s = wait_for(lambda: connect_unix(path), "the QMP socket")
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


def connect_unix(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
        return s
    except (FileNotFoundError, ConnectionRefusedError):
        s.close()
        return None


def read_until(fd, needle, buf, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while needle not in buf:
        left = deadline - time.monotonic()
        check(left > 0, "no %r; got %r" % (needle, bytes(buf[-300:])))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            data = os.read(fd, 4096)
            check(data, "EOF before %r; got %r" % (needle, bytes(buf[-300:])))
            buf.extend(data)
    return buf


def finish(proc, what):
    try:
        status = proc.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Failure("%s: vireo-vmm did not exit" % what)
    err = proc.stderr.read() or b""     # None from a non-blocking pipe with nothing in it
    check(status == PASS_STATUS, "%s: exit status %d, expected %d (stderr: %s)" %
          (what, status, PASS_STATUS, err.decode(errors="replace")))


def test_file(vmm, hello, tmp):
    path = os.path.join(tmp, "serial.log")
    for _ in range(2):
        proc = subprocess.Popen([vmm, "--kernel", hello, "--debug-exit", "--serial", "file:" + path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        finish(proc, "file")
    with open(path, "rb") as f:
        data = f.read()
    check(data.count(b"VIREO-GUEST: PASS hello") == 2, "file: expected two runs appended, got %r" % data)
    check(os.stat(path).st_mode & 0o777 == 0o600, "file: created with mode %o" % os.stat(path).st_mode)


def test_none(vmm, hello, tmp):
    proc = subprocess.Popen([vmm, "--kernel", hello, "--debug-exit", "--serial", "none"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out, _ = proc.communicate(timeout=TIMEOUT)
    check(proc.returncode == PASS_STATUS, "none: exit status %d" % proc.returncode)
    check(out == b"", "none: output on stdout: %r" % out)


def test_unix(vmm, prog, tmp):
    sock_path = os.path.join(tmp, "serial.sock")
    qmp_path = os.path.join(tmp, "qmp-unix.sock")
    proc = subprocess.Popen([vmm, "--kernel", prog, "--debug-exit", "-S",
                             "--serial", "unix:" + sock_path, "--qmp", "unix:" + qmp_path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        s = wait_for(lambda: connect_unix(sock_path), "the serial socket")
        # A second client waits in the backlog, unserved, while the first is connected.
        other = connect_unix(sock_path)
        if other:
            other.settimeout(0.5)
            try:
                check(other.recv(1) == b"", "unix: a second client was served")
            except socket.timeout:
                pass
            other.close()
        q = qmp_cont(qmp_path)
        buf = read_until(s.fileno(), WAITING, bytearray())
        check(b"sent by THRE interrupts" in buf, "unix: the THRE line is missing: %r" % bytes(buf))
        s.sendall(b"ping")
        read_until(s.fileno(), PONG, buf)
        finish(proc, "unix")
        s.close()
        q.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    check(not os.path.exists(sock_path), "unix: socket left behind after exit")


def test_pty(vmm, prog, tmp):
    qmp_path = os.path.join(tmp, "qmp-pty.sock")
    proc = subprocess.Popen([vmm, "--kernel", prog, "--debug-exit", "-S", "--serial", "pty",
                             "--qmp", "unix:" + qmp_path],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    fd = -1
    try:
        fl = fcntl.fcntl(proc.stderr.fileno(), fcntl.F_GETFL)
        fcntl.fcntl(proc.stderr.fileno(), fcntl.F_SETFL, fl | os.O_NONBLOCK)
        err = bytearray()
        read_until(proc.stderr.fileno(), b"\n", err)
        m = re.search(rb"redirected to (/dev/pts/\d+)", err)
        check(m, "pty: no 'redirected to /dev/pts/N' on stderr: %r" % bytes(err))
        fd = os.open(m.group(1), os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd, termios.TCSANOW)
        # vireo-vmm looks for a reader a few times a second.
        time.sleep(0.6)
        q = qmp_cont(qmp_path)
        buf = read_until(fd, WAITING, bytearray())
        os.write(fd, b"ping")
        read_until(fd, PONG, buf)
        finish(proc, "pty")
        q.close()
    finally:
        if fd >= 0:
            os.close(fd)
        if proc.poll() is None:
            proc.kill()


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    vmm, prog, hello = sys.argv[1:]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: no /dev/kvm")
        return 77
    with tempfile.TemporaryDirectory(prefix="vireo-serial-") as tmp:
        for name, fn, arg in [("file", test_file, hello), ("none", test_none, hello),
                              ("unix", test_unix, prog), ("pty", test_pty, prog)]:
            try:
                fn(vmm, arg, tmp)
            except Failure as e:
                print("FAIL %s: %s" % (name, e))
                return 1
            print("ok %s" % name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
