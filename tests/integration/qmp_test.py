#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""End-to-end QMP test: vireo-vmm driven over its QMP socket.

    qmp_test.py [--timeout S] VIREO_VMM POWERBUTTON_ELF
    qmp_test.py --qemu qemu-system-x86_64 POWERBUTTON_ELF   (reference run)

Starts the VMM with the powerbutton guest program (it prints
"VIREO-GUEST: waiting for power button" on serial and powers off through
ACPI S5 on the power-button SCI), two vCPUs, serial to a file and QMP on a
UNIX socket, then checks the greeting, capabilities negotiation,
query-version, query-status, stop/cont with STOP/RESUME events,
query-cpus-fast (two vCPUs with distinct real thread ids), that garbage on
a second connection gets an error and closes that connection while the
first keeps working, that a third client receives events too,
system_reset (RESET event, the program starts again), system_powerdown
(POWERDOWN then SHUTDOWN, exit status 0), and in a second run quit
(reply and SHUTDOWN host-qmp-quit, exit status 0).

The QMP client here uses only Python's standard library and knows nothing
of vireo's C code. With --qemu the same checks run against QEMU 7.2, which
does not close a connection after a JSON error (vireo-vmm does), announces
the "oob" capability and serves one client per socket (so it gets one
-qmp socket per client); everything else must match.

Every wait has a timeout. Exit status: 0 pass, 1 fail, 77 skipped (no
/dev/kvm).
"""

import argparse
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

WAITING_LINE = "VIREO-GUEST: waiting for power button"
VM_NAME = "qmp-test"
REPLY_TIMEOUT = 10.0
QEMU_MONITORS = 3
SKIP = 77


class TestFailure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise TestFailure(what)


def log(msg):
    print("qmp_test: " + msg, flush=True)


def no_duplicate_keys(pairs):
    keys = [k for k, _ in pairs]
    check(len(keys) == len(set(keys)), "duplicate key in a message: %r" % (keys,))
    return dict(pairs)


class QmpClient:
    """A QMP connection: one JSON object per CRLF-terminated line."""

    def __init__(self, path, name, strict, timeout=REPLY_TIMEOUT):
        self.name = name
        self.strict = strict
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.eof = False
        self.events = []
        self.next_id = 1

    def close(self):
        self.sock.close()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TestFailure("%s: nothing from the server within %.0f s" %
                              (self.name, self.timeout))
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            raise TestFailure("%s: nothing from the server within %.0f s" %
                              (self.name, self.timeout))
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            # Closed with our input unread: QEMU does that at exit, vireo-vmm must not.
            check(not self.strict, "%s: connection reset instead of a clean EOF" % self.name)
            log("%s: connection reset (taken as EOF)" % self.name)
            data = b""
        if not data:
            self.eof = True
        self.buf += data

    def read_message(self, timeout=None):
        """Next message as a dict, or None at EOF."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            if self.eof:
                check(not self.buf, "%s: partial line before EOF: %r" % (self.name, self.buf))
                return None
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        check(line.endswith(b"\r"), "%s: line does not end in CRLF: %r" % (self.name, line))
        try:
            msg = json.loads(line[:-1].decode("utf-8"), object_pairs_hook=no_duplicate_keys)
        except ValueError as e:
            raise TestFailure("%s: invalid JSON from the server (%s): %r" % (self.name, e, line))
        check(isinstance(msg, dict), "%s: message is not an object: %r" % (self.name, msg))
        return msg

    def send_raw(self, data):
        self.sock.sendall(data)

    def execute(self, command, arguments=None, use_id=True):
        """Runs @command; returns the whole reply. Events seen meanwhile are kept."""
        req = {"execute": command}
        if arguments is not None:
            req["arguments"] = arguments
        req_id = None
        if use_id:
            req_id = "%s-%d" % (self.name, self.next_id)
            self.next_id += 1
            req["id"] = req_id
        self.send_raw(json.dumps(req).encode() + b"\r\n")
        deadline = time.monotonic() + self.timeout
        while True:
            msg = self.read_message(max(deadline - time.monotonic(), 0.001))
            check(msg is not None, "%s: EOF waiting for the reply to %s" % (self.name, command))
            if "event" in msg:
                check_event_shape(msg)
                self.events.append(msg)
                continue
            check("return" in msg or "error" in msg,
                  "%s: unexpected message %r" % (self.name, msg))
            if use_id:
                check(msg.get("id") == req_id, "%s: reply to %s has id %r, sent %r" %
                      (self.name, command, msg.get("id"), req_id))
            else:
                check("id" not in msg, "%s: reply has an id none was sent: %r" % (self.name, msg))
            return msg

    def ok(self, command, arguments=None):
        reply = self.execute(command, arguments)
        check("return" in reply, "%s: %s failed: %r" % (self.name, command, reply))
        return reply["return"]

    def error(self, command, arguments=None, use_id=True):
        reply = self.execute(command, arguments, use_id)
        check("error" in reply, "%s: %s should have failed: %r" % (self.name, command, reply))
        err = reply["error"]
        check(set(err) == {"class", "desc"} and isinstance(err["desc"], str),
              "%s: bad error object %r" % (self.name, err))
        return err

    def expect_event(self, name, data=None, timeout=None):
        """Waits for event @name (earlier events are skipped); checks its data."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            while self.events:
                ev = self.events.pop(0)
                if ev["event"] == name:
                    if data is not None:
                        check(ev.get("data") == data, "%s: %s event data %r, expected %r" %
                              (self.name, name, ev.get("data"), data))
                    else:
                        check("data" not in ev, "%s: %s event has data %r" %
                              (self.name, name, ev.get("data")))
                    return ev
            msg = self.read_message(max(deadline - time.monotonic(), 0.001))
            check(msg is not None, "%s: EOF waiting for event %s" % (self.name, name))
            check("event" in msg, "%s: unexpected message waiting for %s: %r" %
                  (self.name, name, msg))
            check_event_shape(msg)
            self.events.append(msg)

    def expect_eof(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            self._fill(deadline)
            while b"\n" in self.buf:
                msg = self.read_message()
                if "event" in msg:
                    self.events.append(msg)
                else:
                    raise TestFailure("%s: unexpected message before EOF: %r" % (self.name, msg))
        check(not self.buf, "%s: partial data before EOF: %r" % (self.name, self.buf))


def check_event_shape(ev):
    check(list(ev)[:2] == ["timestamp", "event"] and set(ev) <= {"timestamp", "event", "data"},
          "event keys %r" % (list(ev),))
    ts = ev["timestamp"]
    check(isinstance(ts, dict) and set(ts) == {"seconds", "microseconds"},
          "event timestamp %r" % (ts,))
    check(isinstance(ts["seconds"], int) and abs(ts["seconds"] - time.time()) < 600,
          "event timestamp seconds %r" % (ts,))
    check(isinstance(ts["microseconds"], int) and 0 <= ts["microseconds"] < 1000000,
          "event timestamp microseconds %r" % (ts,))
    check(isinstance(ev["event"], str), "event name %r" % (ev["event"],))
    if "data" in ev:
        check(isinstance(ev["data"], dict), "event data %r" % (ev["data"],))


class Vm:
    """One VMM process with serial in a file and QMP on a socket."""

    def __init__(self, args, tmp, tag):
        self.args = args
        self.qmp_path = os.path.join(tmp, tag + ".qmp")
        self.serial_path = os.path.join(tmp, tag + ".serial")
        self.stderr_path = os.path.join(tmp, tag + ".stderr")
        if args.qemu:
            # A QEMU socket monitor takes one client at a time: one each.
            cmd = [args.vmm, "-enable-kvm", "-M", "q35", "-smp", "2", "-nodefaults",
                   "-display", "none", "-name", VM_NAME,
                   "-serial", "file:" + self.serial_path, "-kernel", args.guest]
            for i in range(QEMU_MONITORS):
                cmd += ["-qmp", "unix:%s%d,server=on,wait=off" % (self.qmp_path, i)]
        else:
            cmd = [args.vmm, "--kernel", args.guest, "--cpus", "2", "--name", VM_NAME,
                   "--serial", "file:" + self.serial_path, "--qmp", "unix:" + self.qmp_path]
        log("starting: " + " ".join(cmd))
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr)
        self.clients = []

    def connect(self, name):
        deadline = time.monotonic() + self.args.timeout
        while True:
            check(self.proc.poll() is None,
                  "the VMM exited with status %s before accepting QMP" % self.proc.returncode)
            path = self.qmp_path
            if self.args.qemu:
                path += str(len(self.clients))
            try:
                c = QmpClient(path, name, strict=not self.args.qemu)
                self.clients.append(c)
                return c
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise TestFailure("no QMP socket at %s after %.0f s" %
                                      (self.qmp_path, self.args.timeout))
                time.sleep(0.02)

    def serial(self):
        try:
            with open(self.serial_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serial(self, text, count=1):
        deadline = time.monotonic() + self.args.timeout
        while self.serial().count(text) < count:
            check(self.proc.poll() is None, "the VMM exited with status %s waiting for %r" %
                  (self.proc.returncode, text))
            check(time.monotonic() < deadline, "serial output lacks %r (x%d) after %.0f s" %
                  (text, count, self.args.timeout))
            time.sleep(0.05)

    def wait_exit(self):
        try:
            return self.proc.wait(timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("the VMM did not exit within %.0f s" % self.args.timeout)

    def stop(self):
        for c in self.clients:
            c.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()

    def dump(self):
        with open(self.stderr_path, "rb") as f:
            err = f.read().decode("utf-8", errors="replace")
        sys.stderr.write("---- serial output ----\n%s\n---- VMM stdout/stderr ----\n%s\n" %
                         (self.serial(), err))


def negotiate(c, args):
    greeting = c.read_message()
    check(greeting is not None, "%s: EOF instead of the greeting" % c.name)
    check(list(greeting) == ["QMP"], "greeting %r" % (greeting,))
    qmp = greeting["QMP"]
    check(list(qmp) == ["version", "capabilities"], "greeting keys %r" % (list(qmp),))
    version = qmp["version"]
    check(list(version) == ["qemu", "package"], "greeting version %r" % (version,))
    triple = version["qemu"]
    check(list(triple) == ["micro", "minor", "major"] and
          all(isinstance(v, int) and v >= 0 for v in triple.values()),
          "greeting version numbers %r" % (triple,))
    check(isinstance(version["package"], str), "greeting package %r" % (version,))
    check(isinstance(qmp["capabilities"], list), "greeting capabilities %r" % (qmp,))
    if not args.qemu:
        want = "vireo-vmm %d.%d.%d" % (triple["major"], triple["minor"], triple["micro"])
        check(version["package"] == want, "package %r, expected %r" % (version["package"], want))
        check(qmp["capabilities"] == [], "capabilities %r, expected []" % (qmp["capabilities"],))
    check(c.ok("qmp_capabilities") == {}, "qmp_capabilities did not return {}")
    return version


def status_is(c, status, running):
    st = c.ok("query-status")
    want = {"status": status, "singlestep": False, "running": running}
    check(st == want, "query-status %r, expected %r" % (st, want))


def test_main(args, tmp):
    vm = Vm(args, tmp, "vm1")
    try:
        a = vm.connect("A")
        greeting = a.read_message()
        check(greeting is not None and "QMP" in greeting, "A: greeting %r" % (greeting,))
        version = greeting["QMP"]["version"]

        log("commands before qmp_capabilities fail")
        for cmd in ("query-status", "query-version", "nonexistent"):
            err = a.error(cmd)
            check(err == {"class": "CommandNotFound",
                          "desc": "Expecting capabilities negotiation with 'qmp_capabilities'"},
                  "%s before negotiation: %r" % (cmd, err))
        check(a.ok("qmp_capabilities") == {}, "qmp_capabilities")
        err = a.error("qmp_capabilities")
        check(err["class"] == "CommandNotFound", "second qmp_capabilities: %r" % (err,))

        log("query-version, query-name, errors")
        check(a.ok("query-version") == version, "query-version differs from the greeting")
        check(a.ok("query-name") == {"name": VM_NAME}, "query-name")
        err = a.error("nonexistent")
        check(err == {"class": "CommandNotFound",
                      "desc": "The command nonexistent has not been found"}, "unknown: %r" % err)
        err = a.error("query-status", {"bogus": 1})
        check(err == {"class": "GenericError", "desc": "Parameter 'bogus' is unexpected"},
              "bad argument: %r" % (err,))
        names = [c["name"] for c in a.ok("query-commands")]
        for cmd in ("qmp_capabilities", "query-commands", "query-status", "stop", "cont",
                    "system_reset", "system_powerdown", "quit", "query-cpus-fast",
                    "query-version", "query-name"):
            check(cmd in names, "query-commands lacks %s" % cmd)

        log("waiting for the guest")
        vm.wait_serial(WAITING_LINE)
        status_is(a, "running", True)

        log("stop / cont")
        check(a.ok("stop") == {}, "stop")
        a.expect_event("STOP")
        status_is(a, "paused", False)
        check(a.ok("cont") == {}, "cont")
        a.expect_event("RESUME")
        status_is(a, "running", True)

        log("query-cpus-fast")
        cpus = a.ok("query-cpus-fast")
        check(isinstance(cpus, list) and len(cpus) == 2, "query-cpus-fast: %r" % (cpus,))
        tasks = set(int(t) for t in os.listdir("/proc/%d/task" % vm.proc.pid))
        tids = []
        for i, cpu in enumerate(cpus):
            check(set(cpu) == {"cpu-index", "qom-path", "thread-id", "props", "target"},
                  "cpu %d keys %r" % (i, sorted(cpu)))
            check(cpu["cpu-index"] == i, "cpu %d has cpu-index %r" % (i, cpu["cpu-index"]))
            check(cpu["target"] == "x86_64", "cpu %d target %r" % (i, cpu["target"]))
            check(isinstance(cpu["qom-path"], str) and cpu["qom-path"].startswith("/machine/"),
                  "cpu %d qom-path %r" % (i, cpu["qom-path"]))
            props = cpu["props"]
            check(isinstance(props, dict) and
                  {"socket-id", "core-id", "thread-id"} <= set(props) and
                  all(isinstance(v, int) for v in props.values()),
                  "cpu %d props %r" % (i, props))
            tid = cpu["thread-id"]
            check(isinstance(tid, int) and tid > 0 and tid != vm.proc.pid,
                  "cpu %d thread-id %r" % (i, tid))
            check(tid in tasks, "cpu %d thread-id %d is not a thread of pid %d" %
                  (i, tid, vm.proc.pid))
            tids.append(tid)
        check(len(set(tids)) == 2, "vCPU thread ids are not distinct: %r" % (tids,))

        log("garbage on a second connection")
        b = vm.connect("B")
        negotiate(b, args)
        b.send_raw(b"garbage\r\n")
        msg = b.read_message()
        check(msg is not None and "error" in msg, "B: no error reply to garbage: %r" % (msg,))
        check(msg["error"]["class"] == "GenericError" and
              msg["error"]["desc"].startswith("JSON parse error"),
              "B: error for garbage: %r" % (msg,))
        if args.qemu:
            # QEMU keeps the connection; it must still answer.
            b.ok("query-status")
        else:
            b.expect_eof()
        status_is(a, "running", True)

        log("a third client gets events")
        c = vm.connect("C")
        negotiate(c, args)
        a.ok("stop")
        a.expect_event("STOP")
        c.expect_event("STOP")
        a.ok("cont")
        a.expect_event("RESUME")
        c.expect_event("RESUME")

        log("system_reset")
        reset = {"guest": False, "reason": "host-qmp-system-reset"}
        check(a.ok("system_reset") == {}, "system_reset")
        a.expect_event("RESET", reset)
        c.expect_event("RESET", reset)
        vm.wait_serial(WAITING_LINE, 2)
        status_is(a, "running", True)

        log("system_powerdown")
        shutdown = {"guest": True, "reason": "guest-shutdown"}
        check(a.ok("system_powerdown") == {}, "system_powerdown")
        a.expect_event("POWERDOWN")
        a.expect_event("SHUTDOWN", shutdown, timeout=args.timeout)
        c.expect_event("POWERDOWN")
        c.expect_event("SHUTDOWN", shutdown, timeout=args.timeout)
        status = vm.wait_exit()
        check(status == 0, "exit status %d after the guest powered off, expected 0" % status)
        a.expect_eof()
        c.expect_eof()
    except BaseException:
        vm.stop()
        vm.dump()
        raise
    vm.stop()


def test_quit(args, tmp):
    vm = Vm(args, tmp, "vm2")
    try:
        a = vm.connect("A")
        negotiate(a, args)
        w = vm.connect("W")
        negotiate(w, args)
        vm.wait_serial(WAITING_LINE)
        log("quit")
        check(a.ok("quit") == {}, "quit")
        # QEMU 7.2 sends SHUTDOWN before the reply; either order is fine.
        quit_data = {"guest": False, "reason": "host-qmp-quit"}
        a.expect_event("SHUTDOWN", quit_data)
        w.expect_event("SHUTDOWN", quit_data)
        status = vm.wait_exit()
        check(status == 0, "exit status %d after quit, expected 0" % status)
        a.expect_eof()
        w.expect_eof()
    except BaseException:
        vm.stop()
        vm.dump()
        raise
    vm.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm", help="vireo-vmm (or qemu-system-x86_64 with --qemu)")
    p.add_argument("guest", help="the powerbutton guest program (ELF)")
    p.add_argument("--qemu", action="store_true",
                   help="VMM is QEMU: run the same checks as a reference")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for the guest or the VMM to exit (default 60)")
    args = p.parse_args()

    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("SKIP: /dev/kvm is not usable")
        return SKIP
    for path in (args.vmm, args.guest):
        if not os.path.exists(path) and not shutil.which(path):
            log("FAIL: %s does not exist" % path)
            return 1
    tmp = tempfile.mkdtemp(prefix="vireo-qmp-test-")
    start = time.monotonic()
    try:
        test_main(args, tmp)
        test_quit(args, tmp)
    except TestFailure as e:
        log("FAIL: %s" % e)
        return 1
    except (OSError, ValueError) as e:
        log("FAIL: %s: %s" % (type(e).__name__, e))
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("PASS in %.1f s" % (time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
