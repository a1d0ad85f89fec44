#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Migration end to end: two vireo-vmm processes and the migrate-dirty guest.

    migrate_test.py [--timeout S] VIREO_VMM MIGRATE_DIRTY_ELF MODE

MODE:
  precopy   live migration over unix:, destination started with -S so that
            x-vireo-ram-checksum of source (postmigrate) and destination
            (paused, loaded) can be compared; then "cont" and the guest
            finishes on the destination without a pattern error
  file      save a running VM with migrate file:, restore with --incoming
            file: (reports the restore time), the guest finishes; then the
            same for a stopped VM (it stays paused after the restore)
  cancel    migrate_cancel during the migration: the source runs on, the
            guest finishes there; then killing the destination mid-way:
            same
  pingpong  A -> B -> C -> D over unix: and tcp:, with zstd on one hop
  errors    bad URIs, a hostile stream (destination exits non-zero with a
            clear error), a stream for another RAM size
  postcopy  migrate-start-postcopy on a migration that cannot converge
            (bandwidth-limited): to a -S destination, whose RAM checksum
            then equals the source's and which finishes the guest after
            "cont"; then to a running destination, whose vCPUs fault in
            the pages still missing and finish the guest
  autoconverge  a guest that dirties RAM far faster than an 8 MiB/s link
            drains it: with auto-converge off the migration stays active
            (cancelled after a while), with it on (the default) the vCPU
            throttle rises and the migration completes; the guest finishes
            on the destination. Capability and parameter checks.
  virtio    with the migrate-virtio guest instead: virtio-rng keeps writing
            guest pages during a live migration; source and destination
            RAM checksums must match, and the guest, resumed on the
            destination, finds every page equal to the hash it kept; then
            the same VM saved to a file while the device writes, restored
  virtio-blk  the same with virtio-blk reads (io_uring straight into guest
            RAM) from a raw image the test writes
  shared-disk  the virtio-blk guest on a writable qcow2 image both VMMs
            open (shared storage): the destination starts while the source
            holds the image; a save to a file lets the image go and cont
            takes it back; after a live migration the destination runs on
            it and the source can no longer resume; qemu-img check is clean
  tls       certificates made with certtool (skipped without it): bad
            credentials refused with the file named; a plain destination
            for a TLS source and a TLS destination for a plain source, a
            client certificate of another CA, a wrong host name: each fails
            cleanly, the destination exits non-zero, the source runs on;
            then through a TCP relay that records the bytes, a plain hop
            (the guest's RAM pattern is in the capture) and a TLS hop (it is
            not) to a -S destination whose RAM checksum equals the source's,
            and the guest finishes there
  tls-postcopy  postcopy-recover over TLS: post-copy with its return path,
            the cut link, and both recoveries on new TLS connections
  multifd   the capability and its refusals (post-copy, file:, fd:); a
            dirtying guest over 4 channels on unix: with a bandwidth limit
            that makes several passes, to a -S destination whose RAM
            checksum equals the source's; then from there over tcp: with
            zstd to a destination set up as QEMU's (--incoming defer,
            migrate-set-capabilities multifd, migrate-incoming); the guest
            finishes there
  multifd-tls  4 channels over TLS through a TCP relay that records every
            connection: a plain stray connection refused meanwhile, no RAM
            pattern in any connection, RAM checksums equal
  multifd-fail  migrate_cancel, a killed destination, one channel cut by a
            relay, a destination that takes the main connection and then
            stops listening: each fails cleanly, the source runs on, the
            destination exits non-zero
  multifd-stray  connections of others while the destination waits for the
            channels (garbage, another session, a silent one, a duplicate
            channel): each refused with a warning, the migration completes;
            RAM went on the channels, not on the main connection

The guest (tests/guest/migrate-dirty.c) verifies its whole RAM pattern
every pass at CPL3 and prints "VIREO-GUEST: error: ..." on any mismatch.
Exit status: 0 pass, 1 fail, 77 skipped (no /dev/kvm).
"""

import argparse
import array
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp_test import QmpClient, TestFailure, check  # noqa: E402

SKIP = 77
PASS_LINE = "VIREO-GUEST: PASS migrate-dirty"
FILLED = "VIREO-GUEST: filled"


def log(msg):
    print("migrate_test: " + msg, flush=True)


class Vm:
    """One vireo-vmm with serial in a file and QMP on a socket."""

    def __init__(self, args, tmp, tag, extra=(), cmdline="seconds=8", env=None,
                 pass_line=PASS_LINE):
        self.args = args
        self.tag = tag
        self.pass_line = pass_line
        self.qmp_path = os.path.join(tmp, tag + ".qmp")
        self.serial_path = os.path.join(tmp, tag + ".serial")
        self.stderr_path = os.path.join(tmp, tag + ".stderr")
        cmd = [args.vmm, "--kernel", args.guest, "--debug-exit", "--memory", "128",
               "--cmdline", cmdline, "--serial", "file:" + self.serial_path,
               "--qmp", "unix:" + self.qmp_path] + list(extra)
        self.stderr = open(self.stderr_path, "wb")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr, env=env, pass_fds=())
        self.qmp = None

    def connect(self):
        deadline = time.monotonic() + 10
        while True:
            check(self.proc.poll() is None, "%s exited with status %s before QMP" %
                  (self.tag, self.proc.returncode))
            try:
                c = QmpClient(self.qmp_path, self.tag, strict=True)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                check(time.monotonic() < deadline, "%s: no QMP socket" % self.tag)
                time.sleep(0.01)
        c.read_message()
        c.ok("qmp_capabilities")
        self.qmp = c
        return c

    def serial(self):
        try:
            with open(self.serial_path, "rb") as f:
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stderr_text(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")

    def wait_serial(self, text):
        deadline = time.monotonic() + self.args.timeout
        while text not in self.serial():
            check(self.proc.poll() is None, "%s exited (%s) waiting for %r" %
                  (self.tag, self.proc.returncode, text))
            check(time.monotonic() < deadline, "%s: no %r on serial" % (self.tag, text))
            time.sleep(0.02)

    def status(self):
        return self.qmp.ok("query-status")["status"]

    def wait_exit(self):
        try:
            return self.proc.wait(timeout=self.args.timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %.0f s" % (self.tag, self.args.timeout))

    def expect_pass(self):
        status = self.wait_exit()
        out = self.serial()
        check("VIREO-GUEST: error" not in out and "FAIL" not in out,
              "%s: guest reported an error:\n%s" % (self.tag, out))
        check(status == 33 and self.pass_line in out,
              "%s: exit status %d, expected 33 with PASS" % (self.tag, status))

    def quit(self):
        if self.proc.poll() is None:
            self.qmp.ok("quit")
            check(self.wait_exit() == 0, "%s: quit status" % self.tag)

    def kill(self):
        if self.qmp:
            self.qmp.close()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()

    def dump(self):
        sys.stderr.write("---- %s serial ----\n%s\n---- %s stderr ----\n%s\n" %
                         (self.tag, self.serial(), self.tag, self.stderr_text()))


def wait_migration(c, statuses=("completed", "failed", "cancelled"), timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        info = c.ok("query-migrate")
        if info.get("status") in statuses:
            return info
        check(time.monotonic() < deadline, "%s: migration still %r" % (c.name, info))
        time.sleep(0.02)


def check_events(c, want_last):
    # vireo-vmm's loop sends the event after the status changed, so a
    # query-migrate may see the final status first: wait for its event.
    deadline = time.monotonic() + 5
    while not any(e["event"] == "MIGRATION" and e["data"]["status"] == want_last
                  for e in c.events) and time.monotonic() < deadline:
        msg = c.read_message(max(deadline - time.monotonic(), 0.001))
        check(msg is not None and "event" in msg,
              "%s: waiting for MIGRATION %s: %r" % (c.name, want_last, msg))
        c.events.append(msg)
    statuses = [e["data"]["status"] for e in c.events if e["event"] == "MIGRATION"]
    # A VM that came in by migration saw its own incoming events first.
    if "setup" in statuses:
        statuses = statuses[len(statuses) - 1 - statuses[::-1].index("setup"):]
    check(statuses and statuses[0] == "setup" and statuses[-1] == want_last,
          "%s: MIGRATION events %r, expected setup ... %s" % (c.name, statuses, want_last))
    c.events.clear()


def migrate(src, dst, uri, params=None):
    """Migrates src to dst (already listening) and checks both ends."""
    c = src.qmp
    if params:
        c.ok("migrate-set-parameters", params)
    c.ok("migrate", {"uri": uri})
    info = wait_migration(c)
    check(info["status"] == "completed", "%s -> %s: %r" % (src.tag, dst.tag, info))
    for key in ("total-time", "downtime", "setup-time"):
        check(isinstance(info.get(key), int), "query-migrate lacks %s: %r" % (key, info))
    check(info["ram"]["dirty-sync-count"] >= 1, "no dirty sync: %r" % info)
    # "completed" is reported by the migration thread, the run state follows on the loop.
    wait_dest_status(src, "postmigrate")
    check_events(c, "completed")
    log("%s -> %s over %s: total %d ms, downtime %d ms, %d bytes, %d syncs" %
        (src.tag, dst.tag, uri.split(":")[0], info["total-time"], info["downtime"],
         info["ram"]["transferred"], info["ram"]["dirty-sync-count"]))
    return info


def wait_dest_status(dst, want):
    deadline = time.monotonic() + 10
    while dst.status() != want:
        check(time.monotonic() < deadline, "%s stays %s, expected %s" %
              (dst.tag, dst.status(), want))
        time.sleep(0.01)


def test_precopy(args, tmp, vms):
    src = Vm(args, tmp, "src")
    vms.append(src)
    sock = os.path.join(tmp, "mig.sock")
    dst = Vm(args, tmp, "dst", ["--incoming", "unix:" + sock, "-S"])
    vms.append(dst)
    src.connect()
    d = dst.connect()
    check(dst.status() == "inmigrate", "destination is %s, expected inmigrate" % dst.status())
    check(d.ok("query-migrate").get("status") == "setup", "query-migrate before the stream")
    params = src.qmp.ok("query-migrate-parameters")
    check(params["downtime-limit"] == 50, "default downtime-limit %r" % params)
    src.wait_serial(FILLED)
    time.sleep(0.5)
    migrate(src, dst, "unix:" + sock, {"max-bandwidth": 0})
    wait_dest_status(dst, "paused")
    a = src.qmp.ok("x-vireo-ram-checksum")
    b = d.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    log("RAM checksum %s over %d pages matches" % (a["checksum"], a["pages"]))
    check(d.ok("query-migrate")["status"] == "completed", "destination query-migrate")
    d.ok("cont")
    dst.expect_pass()
    check(PASS_LINE not in src.serial(), "the source finished the guest too")
    src.quit()


def restore_vm(args, tmp, tag, path, extra=()):
    vm = Vm(args, tmp, tag, ["--incoming", "file:" + path] + list(extra))
    c = vm.connect()
    wait_migration(c, ("completed", "failed"))
    info = c.ok("query-migrate")
    check(info["status"] == "completed", "restore: %r" % info)
    return vm, info


def test_file(args, tmp, vms):
    path = os.path.join(tmp, "vm.state")
    src = Vm(args, tmp, "src")
    vms.append(src)
    src.connect()
    src.wait_serial(FILLED)
    migrate(src, None and src or type("D", (), {"tag": "file"}), "file:" + path)
    size = os.path.getsize(path)
    src.quit()
    t0 = time.monotonic()
    dst, info = restore_vm(args, tmp, "restored", path)
    vms.append(dst)
    wait_dest_status(dst, "running")
    log("restore of %d bytes: %d ms in the stream reader, %.0f ms from exec to running" %
        (size, info["total-time"], (time.monotonic() - t0) * 1000))
    dst.expect_pass()

    # A stopped VM: saved paused, restored paused; cont runs it.
    src2 = Vm(args, tmp, "src2")
    vms.append(src2)
    src2.connect()
    src2.wait_serial(FILLED)
    src2.qmp.ok("stop")
    migrate(src2, type("D", (), {"tag": "file"}), "file:" + path)
    a = src2.qmp.ok("x-vireo-ram-checksum")
    src2.quit()
    dst2, _ = restore_vm(args, tmp, "restored2", path)
    vms.append(dst2)
    wait_dest_status(dst2, "paused")
    b = dst2.qmp.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs after restore: %r vs %r" % (a, b))
    dst2.qmp.ok("cont")
    dst2.expect_pass()


def test_cancel(args, tmp, vms):
    src = Vm(args, tmp, "src", cmdline="seconds=10")
    vms.append(src)
    c = src.connect()
    src.wait_serial(FILLED)
    sock = os.path.join(tmp, "mig.sock")
    dst = Vm(args, tmp, "dst", ["--incoming", "unix:" + sock])
    vms.append(dst)
    dst.connect()
    # Slow enough to be cancelled in the middle: 8 MiB/s.
    c.ok("migrate-set-parameters", {"max-bandwidth": 8 << 20})
    c.ok("migrate", {"uri": "unix:" + sock})
    wait_migration(c, ("active",))
    time.sleep(0.5)
    c.ok("migrate_cancel")
    info = wait_migration(c)
    check(info["status"] == "cancelled", "after migrate_cancel: %r" % info)
    check_events(c, "cancelled")
    check(src.status() == "running", "source is %s after cancel" % src.status())
    status = dst.wait_exit()
    check(status != 0, "destination exited with 0 after a cancel")
    log("cancelled: source runs on, destination exited with %d" % status)

    # Kill the destination in the middle.
    dst2 = Vm(args, tmp, "dst2", ["--incoming", "unix:" + sock])
    vms.append(dst2)
    dst2.connect()
    c.ok("migrate", {"uri": "unix:" + sock})
    wait_migration(c, ("active",))
    time.sleep(0.3)
    dst2.proc.kill()
    info = wait_migration(c)
    check(info["status"] == "failed" and info.get("error-desc"),
          "after killing the destination: %r" % info)
    check_events(c, "failed")
    check(src.status() == "running", "source is %s after a failed migration" % src.status())
    log("destination killed: %s; source runs on" % info["error-desc"])
    src.expect_pass()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_pingpong(args, tmp, vms):
    cur = Vm(args, tmp, "vm0", cmdline="seconds=12")
    vms.append(cur)
    cur.connect()
    cur.wait_serial(FILLED)
    hops = [("unix", None), ("tcp", None), ("unix", {"multifd-compression": "zstd"})]
    for i, (kind, params) in enumerate(hops):
        if kind == "unix":
            uri = "unix:" + os.path.join(tmp, "hop%d.sock" % i)
        else:
            uri = "tcp:127.0.0.1:%d" % free_port()
        nxt = Vm(args, tmp, "vm%d" % (i + 1), ["--incoming", uri])
        vms.append(nxt)
        nxt.connect()
        time.sleep(0.3)
        p = {"max-bandwidth": 0}
        p.update(params or {})
        migrate(cur, nxt, uri, p)
        wait_dest_status(nxt, "running")
        cur.quit()
        cur = nxt
    cur.expect_pass()


def test_errors(args, tmp, vms):
    vm = Vm(args, tmp, "src")
    vms.append(vm)
    c = vm.connect()
    for uri, text in (("bogus:1", "expected unix:PATH"), ("fd:9999", "no such open file"),
                      ("unix:" + os.path.join(tmp, "nobody"), None)):
        reply = c.execute("migrate", {"uri": uri})
        if "error" in reply:
            check(text is None or text in reply["error"]["desc"], "migrate %s: %r" % (uri, reply))
        else:
            info = wait_migration(c)
            check(info["status"] == "failed", "migrate to nobody: %r" % info)
    check(vm.status() == "running", "source is %s after failed migrations" % vm.status())
    err = c.error("migrate-set-parameters", {"downtime-limit": -1})
    check("downtime-limit" in err["desc"], "bad downtime-limit: %r" % err)
    err = c.error("migrate-incoming", {"uri": "unix:/nonexistent"})
    check("incoming" in err["desc"], "migrate-incoming without --incoming: %r" % err)
    # Another RAM size: the destination refuses the stream and exits 1.
    path = os.path.join(tmp, "vm.state")
    migrate(vm, type("D", (), {"tag": "file"}), "file:" + path)
    vm.quit()
    small = Vm(args, tmp, "small", ["--incoming", "file:" + path, "--memory", "64"])
    vms.append(small)
    check(small.wait_exit() == 1, "64 MiB destination accepted a 128 MiB stream")
    check("incoming migration failed" in small.stderr_text() and "MiB" in small.stderr_text(),
          "no clear error: %r" % small.stderr_text())
    # A corrupted stream: a flipped byte in the middle fails the checksum or a section.
    with open(path, "r+b") as f:
        f.seek(os.path.getsize(path) // 2)
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x55]))
    bad = Vm(args, tmp, "bad", ["--incoming", "file:" + path])
    vms.append(bad)
    check(bad.wait_exit() == 1, "a corrupted stream was accepted")
    log("corrupted stream: %s" % bad.stderr_text().strip())
    # Garbage on the socket.
    sock = os.path.join(tmp, "g.sock")
    g = Vm(args, tmp, "garbage", ["--incoming", "unix:" + sock])
    vms.append(g)
    g.connect()
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(b"VIREOMIG\x01\x00\x00\x00" + b"\x00\x00\x00\x08\x00\x00\x00\x00" +
              b"R\xff\xff\xff\xff" + b"x" * 100)
    s.close()
    check(g.wait_exit() == 1, "garbage accepted")
    log("garbage: %s" % g.stderr_text().strip())


def postcopy_hop(args, tmp, vms, tag, extra):
    src = Vm(args, tmp, tag + "-src", cmdline="seconds=10 dirty=256")
    vms.append(src)
    sock = os.path.join(tmp, tag + ".sock")
    dst = Vm(args, tmp, tag + "-dst", ["--incoming", "unix:" + sock] + extra)
    vms.append(dst)
    c = src.connect()
    d = dst.connect()
    src.wait_serial(FILLED)
    err = c.error("migrate-start-postcopy")
    check("No migration" in err["desc"], "migrate-start-postcopy without a migration: %r" % err)
    # 16 MiB/s and 1 ms without auto-converge: pre-copy would never end.
    set_auto_converge(c, False)
    c.ok("migrate-set-parameters", {"max-bandwidth": 16 << 20, "downtime-limit": 1})
    c.ok("migrate", {"uri": "unix:" + sock})
    wait_migration(c, ("active",))
    c.ok("migrate-start-postcopy")
    info = wait_migration(c, timeout=60)
    check(info["status"] == "completed", "post-copy: %r" % info)
    statuses = [e["data"]["status"] for e in c.events if e["event"] == "MIGRATION"]
    check("postcopy-active" in statuses, "no postcopy-active event: %r" % statuses)
    wait_dest_status(src, "postmigrate")
    dinfo = d.ok("query-migrate")
    check(dinfo["status"] == "completed", "destination: %r" % dinfo)
    log("%s: post-copy: total %d ms, downtime %d ms, %d bytes, %d page requests from the "
        "destination" % (tag, info["total-time"], info["downtime"], info["ram"]["transferred"],
                         dinfo["ram"]["postcopy-requests"]))
    return src, dst, dinfo


class Relay:
    """A TCP forwarder the test can cut, as a broken network would; with
    record, it keeps what the source sends (self.captured)."""

    def __init__(self, target_port, record=False):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.target_port = target_port
        self.socks = []
        self.captured = [] if record else None
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            a, _ = self.listener.accept()
            b = socket.create_connection(("127.0.0.1", self.target_port))
        except OSError:
            return
        self.socks = [a, b]
        for x, y, rec in ((a, b, self.captured), (b, a, None)):
            threading.Thread(target=self._pump, args=(x, y, rec), daemon=True).start()

    @staticmethod
    def _pump(x, y, rec):
        try:
            while True:
                data = x.recv(1 << 16)
                if not data:
                    break
                if rec is not None:
                    rec.append(data)
                y.sendall(data)
        except OSError:
            pass

    def cut(self):
        for s in self.socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        self.listener.close()


def wait_status(c, want, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        status = c.ok("query-migrate").get("status")
        if status == want:
            return
        check(time.monotonic() < deadline, "%s: migration %s, expected %s" % (c.name, status, want))
        time.sleep(0.02)


def recover(src, dst, tmp, name):
    """Both ends paused: a new socket, and the migration goes on."""
    wait_status(src.qmp, "postcopy-paused")
    wait_status(dst.qmp, "postcopy-paused")
    check(src.proc.poll() is None and dst.proc.poll() is None, "a side exited while paused")
    check(src.status() != "running", "the source runs again: %s" % src.status())
    uri = "unix:" + os.path.join(tmp, name + ".sock")
    dst.qmp.ok("migrate-recover", {"uri": uri})
    src.qmp.ok("migrate", {"uri": uri, "resume": True})
    deadline = time.monotonic() + 20
    while src.qmp.ok("query-migrate")["status"] in ("postcopy-paused", "postcopy-recover"):
        check(time.monotonic() < deadline, "the source does not reconnect")
        time.sleep(0.02)


def test_postcopy_recover(args, tmp, vms, tls=None):
    src = Vm(args, tmp, "rec-src", tls_object(tls, "client") if tls else [],
             cmdline="seconds=14 dirty=256")
    vms.append(src)
    port = free_port()
    dst = Vm(args, tmp, "rec-dst", (tls_incoming(tls) if tls else []) +
             ["--incoming", "tcp:127.0.0.1:%d" % port])
    vms.append(dst)
    c = src.connect()
    d = dst.connect()
    if tls:
        # Recovery goes over unix: sockets, which carry no host name.
        c.ok("migrate-set-parameters", {"tls-creds": "tls0", "tls-hostname": "localhost"})
    src.wait_serial(FILLED)
    err = d.error("migrate-recover", {"uri": "unix:" + os.path.join(tmp, "early.sock")})
    check("paused" in err["desc"], "migrate-recover before a pause: %r" % err)
    err = c.error("migrate", {"uri": "unix:/nonexistent", "resume": True})
    check("no paused migration" in err["desc"], "resume without a pause: %r" % err)
    relay = Relay(port)
    set_auto_converge(c, False)
    # 4 MiB/s: the rest of RAM takes seconds to follow the switch.
    c.ok("migrate-set-parameters", {"max-bandwidth": 4 << 20, "downtime-limit": 1})
    c.ok("migrate", {"uri": "tcp:127.0.0.1:%d" % relay.port})
    wait_migration(c, ("active",))
    c.ok("migrate-start-postcopy")
    wait_status(c, "postcopy-active")
    err = c.error("migrate_cancel")
    check("cannot be cancelled" in err["desc"], "migrate_cancel after the switch: %r" % err)
    err = d.error("migrate", {"uri": "file:" + os.path.join(tmp, "early.state")})
    # Refused either way: still loading the state (inmigrate), or fetching pages.
    check("post-copy" in err["desc"] or "inmigrate" in err["desc"],
          "migrate of a VM still fetching pages: %r" % err)
    time.sleep(0.5)
    relay.cut()
    recover(src, dst, tmp, "recover1")
    log("link cut in post-copy: both paused, recovered over a new socket")
    # Again, this time asked for.
    if c.ok("query-migrate")["status"] == "postcopy-active":
        d.ok("migrate-pause")
        recover(src, dst, tmp, "recover2")
        log("migrate-pause: both paused, recovered again")
    info = wait_migration(c, timeout=60)
    check(info["status"] == "completed", "after recovery: %r" % info)
    wait_status(d, "completed")
    dinfo = d.ok("query-migrate")
    log("recovered post-copy: total %d ms, %d page requests from the destination" %
        (info["total-time"], dinfo["ram"]["postcopy-requests"]))
    src.quit()
    dst.expect_pass()
    check(PASS_LINE not in src.serial(), "the source finished the guest too")


def test_postcopy(args, tmp, vms):
    src, dst, _ = postcopy_hop(args, tmp, vms, "paused", ["-S"])
    wait_dest_status(dst, "paused")
    a = src.qmp.ok("x-vireo-ram-checksum")
    b = dst.qmp.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    log("paused destination: RAM checksum %s over %d pages matches" % (a["checksum"], a["pages"]))
    src.quit()
    dst.qmp.ok("cont")
    dst.expect_pass()

    src, dst, dinfo = postcopy_hop(args, tmp, vms, "running", [])
    check(dst.status() == "running", "destination is %s" % dst.status())
    src.quit()
    dst.expect_pass()
    check(PASS_LINE not in src.serial(), "the source finished the guest too")


def capabilities(c):
    return {cap["capability"]: cap["state"] for cap in c.ok("query-migrate-capabilities")}


def set_auto_converge(c, on):
    c.ok("migrate-set-capabilities", {"capabilities": [{"capability": "auto-converge",
                                                         "state": on}]})
    check(capabilities(c)["auto-converge"] is on, "auto-converge did not change")


def test_autoconverge(args, tmp, vms):
    # 4 MiB of 8 rewritten per pass, a pass being a few ms at CPL3: far more than the link.
    src = Vm(args, tmp, "src", cmdline="seconds=18 mem=8 dirty=1024")
    vms.append(src)
    c = src.connect()
    caps = capabilities(c)
    check(caps.get("auto-converge") is True, "auto-converge is not on by default: %r" % caps)
    for bad, want in (({"capability": "x-bogus", "state": True}, "not supported"),
                      ({"capability": "events", "state": False}, "always on"),
                      ({"capability": "auto-converge"}, "missing")):
        err = c.error("migrate-set-capabilities", {"capabilities": [bad]})
        check(want in err["desc"], "migrate-set-capabilities %r: %r" % (bad, err))
    err = c.error("migrate-set-parameters", {"max-cpu-throttle": 100})
    check("max-cpu-throttle" in err["desc"], "max-cpu-throttle 100 accepted: %r" % err)
    params = c.ok("query-migrate-parameters")
    check((params["cpu-throttle-initial"], params["cpu-throttle-increment"],
           params["max-cpu-throttle"]) == (20, 10, 99), "throttle defaults: %r" % params)
    c.ok("migrate-set-parameters", {"max-bandwidth": 8 << 20, "cpu-throttle-increment": 20})
    src.wait_serial(FILLED)

    # Off: pre-copy goes round and round.
    set_auto_converge(c, False)
    sock = os.path.join(tmp, "mig.sock")
    dst = Vm(args, tmp, "dst", ["--incoming", "unix:" + sock])
    vms.append(dst)
    dst.connect()
    c.ok("migrate", {"uri": "unix:" + sock})
    err = c.error("migrate-set-capabilities",
                  {"capabilities": [{"capability": "auto-converge", "state": True}]})
    check("in progress" in err["desc"], "capabilities changed mid-migration: %r" % err)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        info = c.ok("query-migrate")
        check(info["status"] in ("setup", "active"), "converged without auto-converge: %r" % info)
        check("cpu-throttle-percentage" not in info, "throttle reported while off: %r" % info)
        time.sleep(0.1)
    check(info["ram"]["dirty-sync-count"] >= 3, "too few passes to tell: %r" % info)
    log("auto-converge off: still active after 4 s, %d passes, expected downtime %d ms" %
        (info["ram"]["dirty-sync-count"], info["expected-downtime"]))
    c.ok("migrate_cancel")
    check(wait_migration(c)["status"] == "cancelled", "cancel")
    dst.wait_exit()

    # On: the throttle rises until a pass fits the downtime limit.
    set_auto_converge(c, True)
    dst = Vm(args, tmp, "dst2", ["--incoming", "unix:" + sock, "-S"])
    vms.append(dst)
    d = dst.connect()
    c.events.clear()
    c.ok("migrate", {"uri": "unix:" + sock})
    highest = 0
    deadline = time.monotonic() + 20
    while True:
        info = c.ok("query-migrate")
        highest = max(highest, info.get("cpu-throttle-percentage", 0))
        if info["status"] not in ("setup", "active", "device"):
            break
        check(time.monotonic() < deadline, "auto-converge did not converge: %r" % info)
        time.sleep(0.02)
    check(info["status"] == "completed", "with auto-converge: %r" % info)
    check(highest >= 20, "the throttle never rose: highest %d%%" % highest)
    check(info.get("cpu-throttle-percentage") == 0, "throttle left on: %r" % info)
    log("auto-converge on: completed in %d ms, throttle up to %d%%, %d passes, downtime %d ms" %
        (info["total-time"], highest, info["ram"]["dirty-sync-count"], info["downtime"]))
    wait_dest_status(dst, "paused")
    a = c.ok("x-vireo-ram-checksum")
    b = d.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    src.quit()
    d.ok("cont")
    dst.expect_pass()


def make_pki(tmp):
    """QEMU's file names: DIR/ca-cert.pem, server-*.pem, client-*.pem. Returns
    (dir, foreign): foreign holds a client certificate of another CA (and
    trusts both CAs, so that it loads and trusts the destination)."""
    # certtool in a directory, as the daemon's TLS test makes its certificates.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "daemon"))
    from test_tls import Pki
    good = Pki(os.path.join(tmp, "pki"))
    ca = good.ca("ca")
    good.issue("server", ca, True, dns=["localhost"], ips=["127.0.0.1"])
    good.issue("client", ca, False)
    other = Pki(os.path.join(tmp, "other"))
    ca2 = other.ca("ca")
    other.issue("client", ca2, False)
    with open(os.path.join(other.d, "ca-cert.pem"), "ab") as f, open(ca[0], "rb") as g:
        f.write(g.read())
    return good.d, other.d


def tls_object(d, endpoint, oid="tls0"):
    return ["--object", "tls-creds-x509,id=%s,dir=%s,endpoint=%s" % (oid, d, endpoint)]


def tls_incoming(d):
    return tls_object(d, "server") + ["--migrate-tls-creds", "tls0"]


REGION_START = 0x600000
M64 = (1 << 64) - 1


def ram_pattern(page, gen=1, words=4):
    """Bytes of tests/guest/migrate-dirty.c's pattern in RAM: page @page, words 8.."""
    out = b""
    for w in range(8, 8 + words):
        addr = REGION_START + page * 4096 + 8 * w
        x = ((addr * 0x9e3779b97f4a7c15) & M64) ^ ((gen * 0xc2b2ae3d27d4eb4f) & M64)
        x ^= x >> 29
        out += struct.pack("<Q", (x * 0xbf58476d1ce4e5b9) & M64)
    return out


def patterns_seen(captured):
    data = b"".join(captured)
    pages = (0, 1000, 4000, 8000)
    return len(data), sum(ram_pattern(p) in data for p in pages), len(pages)


def refused(src, dst, uri, want_src, want_dst):
    """A migration that must fail: the source runs on, the destination exits non-zero."""
    c = src.qmp
    c.ok("migrate", {"uri": uri})
    info = wait_migration(c, timeout=40)
    check(info["status"] == "failed", "%s -> %s: %r" % (src.tag, dst.tag, info))
    check(want_src in info.get("error-desc", ""),
          "%s: error-desc %r lacks %r" % (src.tag, info.get("error-desc"), want_src))
    wait_dest_status(src, "running")
    status = dst.wait_exit()
    check(status != 0, "%s exited with 0" % dst.tag)
    err = dst.stderr_text()
    check("incoming migration failed" in err and want_dst in err,
          "%s: stderr %r lacks %r" % (dst.tag, err, want_dst))
    log("refused: source: %s | destination: %s" %
        (info["error-desc"], err.strip().splitlines()[-1]))
    c.events.clear()


def test_tls(args, tmp, vms):
    pki, foreign = make_pki(tmp)
    empty = os.path.join(tmp, "empty")
    os.makedirs(empty)
    # Bad credentials stop vireo-vmm at once, naming the file.
    bad = Vm(args, tmp, "badcreds", tls_object(empty, "server"))
    vms.append(bad)
    check(bad.wait_exit() == 1 and "ca-cert.pem" in bad.stderr_text(),
          "--object with no files: %r" % bad.stderr_text())
    log("bad --object: %s" % bad.stderr_text().strip())

    # Idle after the fill: the pattern stays generation 1, which the test can compute.
    src = Vm(args, tmp, "src", cmdline="seconds=10 dirty=0")
    vms.append(src)
    c = src.connect()
    err = c.error("object-add", {"qom-type": "tls-creds-x509", "id": "bad", "dir": empty,
                                 "endpoint": "client"})
    check("ca-cert.pem" in err["desc"] and "missing" in err["desc"], "object-add: %r" % err)
    err = c.error("migrate-set-parameters", {"tls-creds": "nosuch"})
    check("nosuch" in err["desc"], "tls-creds naming nothing: %r" % err)
    c.ok("object-add", {"qom-type": "tls-creds-x509", "id": "tls0", "dir": pki,
                        "endpoint": "client"})
    c.ok("object-add", {"qom-type": "tls-creds-x509", "id": "foreign", "dir": foreign,
                        "endpoint": "client"})
    c.ok("object-add", {"qom-type": "tls-creds-x509", "id": "srv", "dir": pki,
                        "endpoint": "server"})
    c.ok("migrate-set-parameters", {"tls-creds": "tls0", "max-bandwidth": 0})
    params = c.ok("query-migrate-parameters")
    check(params["tls-creds"] == "tls0" and params["tls-hostname"] == "",
          "query-migrate-parameters: %r" % params)
    err = c.error("migrate", {"uri": "unix:" + os.path.join(tmp, "x.sock")})
    check("tls-hostname" in err["desc"], "TLS over unix: without tls-hostname: %r" % err)
    c.ok("migrate-set-parameters", {"tls-creds": "srv"})
    err = c.error("migrate", {"uri": "tcp:127.0.0.1:1"})
    check("endpoint=client" in err["desc"], "server credentials on the source: %r" % err)
    src.wait_serial("migrate-dirty: idle")

    def dest(tag, tls=True, extra=()):
        port = free_port()
        vm = Vm(args, tmp, tag, (tls_incoming(pki) if tls else []) + list(extra) +
                ["--incoming", "tcp:127.0.0.1:%d" % port])
        vms.append(vm)
        vm.connect()
        return vm, port

    # A destination without TLS: it sees a ClientHello where its stream should start.
    c.ok("migrate-set-parameters", {"tls-creds": "tls0"})
    dst, port = dest("plain-dst", tls=False)
    refused(src, dst, "tcp:127.0.0.1:%d" % port, "TLS", "the source speaks TLS")
    # A TLS destination, a plain source.
    c.ok("migrate-set-parameters", {"tls-creds": ""})
    dst, port = dest("tls-dst")
    refused(src, dst, "tcp:127.0.0.1:%d" % port, "", "does not speak TLS")
    # A client certificate of another CA.
    c.ok("migrate-set-parameters", {"tls-creds": "foreign"})
    dst, port = dest("foreign-dst")
    refused(src, dst, "tcp:127.0.0.1:%d" % port, "TLS", "not issued by our CA")
    # The destination's certificate names another host.
    c.ok("migrate-set-parameters", {"tls-creds": "tls0", "tls-hostname": "elsewhere.example"})
    dst, port = dest("host-dst")
    refused(src, dst, "tcp:127.0.0.1:%d" % port, "host name", "TLS")
    c.ok("migrate-set-parameters", {"tls-hostname": ""})
    # A destination that never answers the handshake: migrate_cancel ends the wait.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    c.ok("migrate", {"uri": "tcp:127.0.0.1:%d" % silent.getsockname()[1]})
    time.sleep(0.3)
    c.ok("migrate_cancel")
    info = wait_migration(c, timeout=5)
    check(info["status"] == "cancelled", "cancel during the TLS handshake: %r" % info)
    wait_dest_status(src, "running")
    silent.close()
    log("cancelled during the TLS handshake")
    # Cancelled in the middle of the stream (8 MiB/s): the source runs on.
    dst, port = dest("cancel-dst")
    c.ok("migrate-set-parameters", {"max-bandwidth": 8 << 20})
    c.ok("migrate", {"uri": "tcp:127.0.0.1:%d" % port})
    wait_migration(c, ("active",))
    time.sleep(0.5)
    c.ok("migrate_cancel")
    info = wait_migration(c, timeout=5)
    check(info["status"] == "cancelled", "cancel of a TLS migration: %r" % info)
    wait_dest_status(src, "running")
    check(dst.wait_exit() != 0, "destination exited with 0 after a cancel")
    c.ok("migrate-set-parameters", {"max-bandwidth": 0})
    log("cancelled in the middle of a TLS stream: %s" % dst.stderr_text().strip())

    # Plain, through a relay that records: the RAM pattern is there to read.
    mid, port = dest("mid", tls=False, extra=tls_object(pki, "client"))
    m = mid.qmp
    relay = Relay(port, record=True)
    c.ok("migrate-set-parameters", {"tls-creds": ""})
    migrate(src, mid, "tcp:127.0.0.1:%d" % relay.port)
    size, seen, total = patterns_seen(relay.captured)
    check(seen == total, "plain stream: %d of %d RAM patterns in %d bytes" % (seen, total, size))
    log("plain stream: %d of %d RAM patterns found in %d bytes" % (seen, total, size))
    wait_dest_status(mid, "running")
    src.quit()

    # TLS through the same kind of relay: nothing of RAM shows. No tls-hostname: the
    # certificate must name the tcp: host, 127.0.0.1.
    dst, port = dest("dst", extra=["-S"])
    d = dst.qmp
    relay = Relay(port, record=True)
    m.ok("migrate-set-parameters", {"tls-creds": "tls0", "max-bandwidth": 0})
    migrate(mid, dst, "tcp:127.0.0.1:%d" % relay.port)
    size, seen, total = patterns_seen(relay.captured)
    check(seen == 0 and size > 8 << 20,
          "TLS stream: %d of %d RAM patterns in %d bytes" % (seen, total, size))
    log("TLS stream: no RAM pattern in %d bytes" % size)
    wait_dest_status(dst, "paused")
    a = m.ok("x-vireo-ram-checksum")
    b = d.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    log("RAM checksum %s over %d pages matches" % (a["checksum"], a["pages"]))
    mid.quit()
    d.ok("cont")
    dst.expect_pass()


def set_multifd(c, on, channels=None):
    c.ok("migrate-set-capabilities", {"capabilities": [{"capability": "multifd", "state": on}]})
    check(capabilities(c)["multifd"] is on, "multifd did not change")
    if channels:
        c.ok("migrate-set-parameters", {"multifd-channels": channels})


def check_multifd_info(info, what):
    ram = info["ram"]
    check(ram["multifd-bytes"] > 0.9 * ram["transferred"],
          "%s: %d of %d bytes on the multifd channels" % (what, ram["multifd-bytes"],
                                                          ram["transferred"]))


def test_multifd(args, tmp, vms):
    src = Vm(args, tmp, "src", cmdline="seconds=12 dirty=512")
    vms.append(src)
    c = src.connect()
    caps = capabilities(c)
    check(caps.get("multifd") is False and caps.get("postcopy-ram") is True,
          "default capabilities: %r" % caps)
    err = c.error("migrate-set-capabilities", {"capabilities": [
        {"capability": "multifd", "state": True}, {"capability": "postcopy-ram", "state": True}]})
    check("Postcopy is not yet compatible with multifd" in err["desc"], "both: %r" % err)
    set_multifd(c, True, 4)
    caps = capabilities(c)
    check(caps["postcopy-ram"] is False, "postcopy-ram with multifd: %r" % caps)
    err = c.error("migrate-set-capabilities",
                  {"capabilities": [{"capability": "postcopy-ram", "state": True}]})
    check("not yet compatible" in err["desc"], "postcopy-ram after multifd: %r" % err)
    check(c.ok("query-migrate-parameters")["multifd-channels"] == 4, "multifd-channels")
    for uri in ("file:" + os.path.join(tmp, "x.state"), "fd:0"):
        err = c.error("migrate", {"uri": uri})
        check("multifd is not supported by" in err["desc"], "migrate %s: %r" % (uri, err))
    check(not os.path.exists(os.path.join(tmp, "x.state")), "file: was created")
    src.wait_serial(FILLED)

    # 4 channels over unix:, limited so that the dirtying guest takes several passes.
    sock = os.path.join(tmp, "mig.sock")
    dst = Vm(args, tmp, "dst", ["--incoming", "unix:" + sock, "-S"])
    vms.append(dst)
    d = dst.connect()
    c.ok("migrate-set-parameters", {"max-bandwidth": 48 << 20, "downtime-limit": 20})
    c.ok("migrate", {"uri": "unix:" + sock})
    wait_migration(c, ("active",))
    err = c.error("migrate-start-postcopy")
    check("not yet compatible with multifd" in err["desc"], "post-copy with multifd: %r" % err)
    info = wait_migration(c)
    check(info["status"] == "completed", "multifd migration: %r" % info)
    check(info["ram"]["dirty-sync-count"] >= 3, "too few passes to tell: %r" % info)
    check_multifd_info(info, "unix: hop")
    wait_dest_status(src, "postmigrate")
    check_events(c, "completed")
    wait_dest_status(dst, "paused")
    dinfo = d.ok("query-migrate")
    check(dinfo["status"] == "completed" and
          dinfo["ram"]["transferred"] == info["ram"]["transferred"] and
          dinfo["ram"]["multifd-bytes"] == info["ram"]["multifd-bytes"],
          "destination's figures %r, source's %r" % (dinfo, info))
    a = c.ok("x-vireo-ram-checksum")
    b = d.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    log("4 channels over unix: %d passes, total %d ms, downtime %d ms, %d bytes (%d on the "
        "channels); RAM checksum %s matches" %
        (info["ram"]["dirty-sync-count"], info["total-time"], info["downtime"],
         info["ram"]["transferred"], info["ram"]["multifd-bytes"], a["checksum"]))
    src.quit()
    d.ok("cont")
    dst.wait_serial("VIREO-GUEST: progress")

    # On over tcp: with zstd; the destination asks for multifd as QEMU's would (no effect:
    # the stream announces its channels).
    port = free_port()
    dst2 = Vm(args, tmp, "dst2", ["--incoming", "defer", "-S"])
    vms.append(dst2)
    d2 = dst2.connect()
    set_multifd(d2, True, 4)
    d2.ok("migrate-incoming", {"uri": "tcp:127.0.0.1:%d" % port})
    set_multifd(d, True, 4)
    info = migrate(dst, dst2, "tcp:127.0.0.1:%d" % port,
                   {"max-bandwidth": 0, "multifd-compression": "zstd"})
    check_multifd_info(info, "tcp: hop")
    wait_dest_status(dst2, "paused")
    a = d.ok("x-vireo-ram-checksum")
    b = d2.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs after the zstd hop: %r vs %r" % (a, b))
    dst.quit()
    d2.ok("cont")
    dst2.expect_pass()


class MultiRelay:
    """A TCP forwarder for every connection a source makes (the main one, then its
    channels): records what each carries from the source, can cut one; @before_channels
    and @after_first_channel run while the source's second connection waits, before and
    after it is forwarded, to connect strays to the destination."""

    def __init__(self, target_port, before_channels=None, after_first_channel=None):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.target = ("127.0.0.1", target_port)
        self.conns = []
        self.extra = []
        self.hooks = (before_channels, after_first_channel)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.listener.accept()
                if len(self.conns) == 1 and self.hooks[0]:
                    self.hooks[0](self)
                b = socket.create_connection(self.target)
            except OSError:
                return
            rec = []
            self.conns.append((a, b, rec))
            for x, y, r in ((a, b, rec), (b, a, None)):
                threading.Thread(target=Relay._pump, args=(x, y, r), daemon=True).start()
            if len(self.conns) == 2 and self.hooks[1]:
                self.hooks[1](self)

    def stray(self, data):
        s = socket.create_connection(self.target)
        if data:
            s.sendall(data)
        self.extra.append(s)
        return s

    def session(self):
        """The main connection's MULTIFD record: header (20), 'M' + length (5), u16 channels,
        session (16)."""
        deadline = time.monotonic() + 10
        while True:
            data = b"".join(self.conns[0][2]) if self.conns else b""
            if len(data) >= 43:
                check(data[20:21] == b"M", "no MULTIFD record: %r" % data[:43])
                return struct.unpack("<H", data[25:27])[0], data[27:43]
            check(time.monotonic() < deadline, "no MULTIFD record from the source")
            time.sleep(0.01)

    def cut(self, i):
        for s in self.conns[i][:2]:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.listener.close()
        for conn in self.conns:
            for s in conn[:2]:
                s.close()
        for s in self.extra:
            s.close()


def channel_hello(session, index, channels, ram=128 << 20):
    return (b"VIREOMIG" + struct.pack("<IQ", 2, ram) + b"H" + struct.pack("<I", 20) + session +
            struct.pack("<HH", index, channels))


def test_multifd_tls(args, tmp, vms):
    pki, _ = make_pki(tmp)
    # Idle after the fill: the pattern stays generation 1, which the test can compute.
    src = Vm(args, tmp, "src", tls_object(pki, "client"), cmdline="seconds=10 dirty=0")
    vms.append(src)
    c = src.connect()
    port = free_port()
    dst = Vm(args, tmp, "dst", tls_incoming(pki) + ["--incoming", "tcp:127.0.0.1:%d" % port,
                                                    "-S"])
    vms.append(dst)
    d = dst.connect()
    set_multifd(c, True, 4)
    c.ok("migrate-set-parameters", {"tls-creds": "tls0", "max-bandwidth": 8 << 20})
    src.wait_serial("migrate-dirty: idle")
    # Cancelled in the middle: the source runs on with no channel, pump thread or fd left.
    pid = src.proc.pid
    before = len(os.listdir("/proc/%d/task" % pid)), len(os.listdir("/proc/%d/fd" % pid))
    cport = free_port()
    cdst = Vm(args, tmp, "cancel-dst", tls_incoming(pki) + ["--incoming",
                                                           "tcp:127.0.0.1:%d" % cport])
    vms.append(cdst)
    cdst.connect()
    c.ok("migrate", {"uri": "tcp:127.0.0.1:%d" % cport})
    wait_migration(c, ("active",))
    time.sleep(0.5)
    c.ok("migrate_cancel")
    info = wait_migration(c, timeout=10)
    check(info["status"] == "cancelled", "cancel of a TLS multifd migration: %r" % info)
    wait_dest_status(src, "running")
    check(cdst.wait_exit() != 0, "destination exited with 0 after a cancel")
    deadline = time.monotonic() + 5
    while (len(os.listdir("/proc/%d/task" % pid)), len(os.listdir("/proc/%d/fd" % pid))) != before:
        check(time.monotonic() < deadline, "threads and fds left after the cancel: %r, before %r"
              % ((len(os.listdir("/proc/%d/task" % pid)), len(os.listdir("/proc/%d/fd" % pid))),
                 before))
        time.sleep(0.05)
    log("cancelled in the middle of 4 TLS channels: %s" %
        cdst.stderr_text().strip().splitlines()[-1])
    c.events.clear()
    c.ok("migrate-set-parameters", {"max-bandwidth": 0})
    # A plain connection among the channels: it does not speak TLS, it is refused.
    relay = MultiRelay(port, before_channels=lambda r: r.stray(b"VIREOMIG"))
    info = migrate(src, dst, "tcp:127.0.0.1:%d" % relay.port)
    check_multifd_info(info, "TLS")
    check(len(relay.conns) == 5, "%d connections, expected 5" % len(relay.conns))
    for i, (_, _, rec) in enumerate(relay.conns):
        size, seen, total = patterns_seen(rec)
        check(seen == 0, "connection %d: %d of %d RAM patterns in %d bytes" %
              (i, seen, total, size))
        check(i == 0 or size > 1 << 20, "channel %d carried only %d bytes" % (i, size))
    wait_dest_status(dst, "paused")
    a = c.ok("x-vireo-ram-checksum")
    b = d.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    err = dst.stderr_text()
    check("refused a connection" in err and "does not speak TLS" in err,
          "the plain stray: %r" % err)
    log("4 TLS channels: no RAM pattern in %s bytes; stray: %s" %
        ([patterns_seen(rec)[0] for _, _, rec in relay.conns],
         err.strip().splitlines()[-1]))
    relay.close()
    src.quit()
    d.ok("cont")
    dst.expect_pass()


def test_multifd_fail(args, tmp, vms):
    src = Vm(args, tmp, "src", cmdline="seconds=16")
    vms.append(src)
    c = src.connect()
    set_multifd(c, True, 4)
    src.wait_serial(FILLED)
    sock = os.path.join(tmp, "mig.sock")

    def resources():
        """The source's threads and open fds: a failed migration leaves none behind."""
        pid = src.proc.pid
        return len(os.listdir("/proc/%d/task" % pid)), len(os.listdir("/proc/%d/fd" % pid))

    baseline = resources()

    def failed(what, info, dst, want_dst):
        check(src.status() == "running", "%s: source is %s" % (what, src.status()))
        deadline = time.monotonic() + 5
        while resources() != baseline:
            check(time.monotonic() < deadline, "%s: source threads and fds %r, before %r" %
                  (what, resources(), baseline))
            time.sleep(0.05)
        status = dst.wait_exit() if dst else 1
        check(status != 0, "%s: the destination exited with 0" % what)
        if dst:
            err = dst.stderr_text()
            check("incoming migration failed" in err and want_dst in err,
                  "%s: destination stderr %r lacks %r" % (what, err, want_dst))
        log("%s: source %s (%s), runs on; destination exited with %d%s" %
            (what, info["status"], info.get("error-desc", ""), status,
             ": " + dst.stderr_text().strip().splitlines()[-1] if dst else ""))
        c.events.clear()

    # Cancelled in the middle (8 MiB/s).
    dst = Vm(args, tmp, "cancel-dst", ["--incoming", "unix:" + sock])
    vms.append(dst)
    dst.connect()
    c.ok("migrate-set-parameters", {"max-bandwidth": 8 << 20})
    c.ok("migrate", {"uri": "unix:" + sock})
    wait_migration(c, ("active",))
    time.sleep(0.5)
    c.ok("migrate_cancel")
    info = wait_migration(c, timeout=10)
    check(info["status"] == "cancelled", "after migrate_cancel: %r" % info)
    check_events(c, "cancelled")
    failed("cancelled", info, dst, "")

    # The destination killed in the middle.
    dst = Vm(args, tmp, "killed-dst", ["--incoming", "unix:" + sock])
    vms.append(dst)
    dst.connect()
    c.ok("migrate", {"uri": "unix:" + sock})
    wait_migration(c, ("active",))
    time.sleep(0.3)
    dst.proc.kill()
    info = wait_migration(c, timeout=10)
    check(info["status"] == "failed" and "multifd channel" in info.get("error-desc", ""),
          "after killing the destination: %r" % info)
    check_events(c, "failed")
    failed("destination killed", info, None, "")

    # One channel cut (a relay between): both ends fail.
    port = free_port()
    dst = Vm(args, tmp, "cut-dst", ["--incoming", "tcp:127.0.0.1:%d" % port])
    vms.append(dst)
    dst.connect()
    relay = MultiRelay(port)
    c.ok("migrate", {"uri": "tcp:127.0.0.1:%d" % relay.port})
    wait_migration(c, ("active",))
    time.sleep(0.5)
    relay.cut(2)
    info = wait_migration(c, timeout=10)
    check(info["status"] == "failed" and "multifd channel" in info.get("error-desc", ""),
          "after a channel was cut: %r" % info)
    failed("channel 1 cut", info, dst, "multifd channel")
    relay.close()

    # The main connection goes through, the channels cannot connect.
    fake = socket.socket(socket.AF_UNIX)
    fake.bind(sock + ".fake")
    fake.listen(1)
    c.ok("migrate", {"uri": "unix:" + sock + ".fake"})
    main, _ = fake.accept()
    fake.close()
    os.unlink(sock + ".fake")
    info = wait_migration(c, timeout=10)
    # Refused; a channel that came before the listener closed is reset instead.
    check(info["status"] == "failed" and "multifd channel " in info.get("error-desc", ""),
          "channels that cannot connect: %r" % info)
    main.close()
    failed("channels cannot connect", info, None, "")
    c.ok("migrate-set-parameters", {"max-bandwidth": 0})

    # A source that announces channels and goes away: the destination gives up at once.
    session = os.urandom(16)
    announce = (b"VIREOMIG" + struct.pack("<IQ", 2, 128 << 20) + b"M" + struct.pack("<IH", 18, 4) +
                session)
    for what, data, want in (
            ("source gone after its announce", announce, "truncated"),
            ("HELLO on the main connection", announce + channel_hello(session, 0, 4)[20:],
             "unexpected 'H' section on the main channel"),
            ("no MULTIFD record", announce[:20] + b"S\x01\x00\x00\x00\x00", "not MULTIFD"),
            ("5000 channels", announce[:25] + struct.pack("<H", 5000) + session,
             "announces 5000 multifd channels")):
        path = os.path.join(tmp, "fake.sock")
        dst = Vm(args, tmp, "fake-" + what.split()[0], ["--incoming", "unix:" + path])
        vms.append(dst)
        dst.connect()
        s = socket.socket(socket.AF_UNIX)
        s.connect(path)
        t0 = time.monotonic()
        s.sendall(data)
        s.close()
        status = dst.wait_exit()
        err = dst.stderr_text()
        check(status == 1 and want in err, "%s: status %d, stderr %r" % (what, status, err))
        check(time.monotonic() - t0 < 5, "%s: the destination took %.1f s to give up" %
              (what, time.monotonic() - t0))
        log("%s: %s" % (what, err.strip().splitlines()[-1]))
    src.expect_pass()


def test_multifd_stray(args, tmp, vms):
    src = Vm(args, tmp, "src", cmdline="seconds=12 dirty=0")
    vms.append(src)
    c = src.connect()
    port = free_port()
    dst = Vm(args, tmp, "dst", ["--incoming", "tcp:127.0.0.1:%d" % port, "-S"])
    vms.append(dst)
    d = dst.connect()
    set_multifd(c, True, 4)
    src.wait_serial("migrate-dirty: idle")

    def before(relay):
        channels, session = relay.session()
        relay.stray(b"GET / HTTP/1.1\r\nHost: example\r\n\r\n")
        relay.stray(channel_hello(bytes(16), 0, channels))
        relay.stray(b"")                                    # says nothing

    def after(relay):
        channels, session = relay.session()
        relay.stray(channel_hello(session, 0, channels))    # channel 0 again

    relay = MultiRelay(port, before, after)
    info = migrate(src, dst, "tcp:127.0.0.1:%d" % relay.port, {"max-bandwidth": 0})
    check_multifd_info(info, "strays")
    wait_dest_status(dst, "paused")
    a = c.ok("x-vireo-ram-checksum")
    b = d.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    err = dst.stderr_text()
    for want in ("bad magic", "another migration", "said nothing", "channel 0 connected twice"):
        check(want in err, "destination stderr lacks %r: %r" % (want, err))
    check(err.count("refused a connection") == 4, "refusals: %r" % err)
    # RAM went on the channels: the pattern is there, and not on the main connection.
    sizes = [patterns_seen(rec) for _, _, rec in relay.conns]
    check(sizes[0][1] == 0 and sizes[0][0] < 64 << 10, "main connection: %r" % (sizes[0],))
    check(sum(seen for _, seen, _ in sizes[1:]) > 0, "no RAM pattern on the channels: %r" % sizes)
    log("4 strays refused: %s" % "; ".join(
        line.split("refused a connection: ")[1] for line in err.splitlines()
        if "refused a connection" in line))
    log("bytes per connection (main first): %r" % [x[0] for x in sizes])
    relay.close()
    src.quit()
    d.ok("cont")
    dst.expect_pass()


def test_tls_postcopy(args, tmp, vms):
    pki, _ = make_pki(tmp)
    test_postcopy_recover(args, tmp, vms, tls=pki)


VIRTIO_PASS = "VIREO-GUEST: PASS migrate-virtio"


VIRTIO_PAGES = 2048


def blk_image(tmp):
    """A raw disk whose 4 KiB block b holds migrate-virtio.c's blk_pattern(b, w) in word w."""
    path = os.path.join(tmp, "disk.img")
    if not os.path.exists(path):
        words = array.array("Q", (((b + 1) << 32) ^ (w * 0x9e3779b9)
                                  for b in range(VIRTIO_PAGES) for w in range(512)))
        with open(path, "wb") as f:
            words.tofile(f)
    return path


def virtio_device(args, tmp):
    if args.mode == "virtio-blk":
        # Read-only: both processes hold the image at once (a shared lock).
        return ["--disk", "path=%s,format=raw,readonly=on" % blk_image(tmp)]
    return ["--device", "virtio-rng"]


def virtio_vm(args, tmp, tag, extra=()):
    return Vm(args, tmp, tag, virtio_device(args, tmp) + list(extra),
              cmdline="seconds=%d pages=%d blk=%d" % (12 if tag == "src" else 8, VIRTIO_PAGES,
                                                      args.mode == "virtio-blk"),
              pass_line=VIRTIO_PASS)


def test_shared_disk(args, tmp, vms):
    qcow2 = os.path.join(tmp, "disk.qcow2")
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", blk_image(tmp), qcow2],
                   check=True)
    disk = ["--disk", "path=%s,format=qcow2" % qcow2]
    src = Vm(args, tmp, "src", disk, cmdline="seconds=14 pages=%d blk=1" % VIRTIO_PAGES,
             pass_line=VIRTIO_PASS)
    vms.append(src)
    c = src.connect()
    src.wait_serial("VIREO-GUEST: progress")
    # A save lets the image go; cont takes it back and the guest reads on.
    migrate(src, type("D", (), {"tag": "file"}), "file:" + os.path.join(tmp, "vm.state"))
    c.ok("cont")
    check(src.status() == "running", "source is %s after cont" % src.status())
    progress = src.serial().count("progress")
    deadline = time.monotonic() + 10
    while src.serial().count("progress") == progress:
        check(time.monotonic() < deadline, "the guest made no progress after the save")
        time.sleep(0.05)
    log("saved to a file, resumed: the image was handed back")

    # The destination starts while the source has the image open for writing.
    sock = os.path.join(tmp, "mig.sock")
    dst = Vm(args, tmp, "dst", disk + ["--incoming", "unix:" + sock, "-S"],
             pass_line=VIRTIO_PASS)
    vms.append(dst)
    d = dst.connect()
    migrate(src, dst, "unix:" + sock, {"max-bandwidth": 0})
    wait_dest_status(dst, "paused")
    d.ok("cont")
    err = c.error("cont")
    check("lock" in err["desc"], "the source resumed beside the destination: %r" % err)
    check(src.status() == "postmigrate", "source is %s" % src.status())
    log("source refused to resume: %s" % err["desc"])
    src.quit()
    dst.expect_pass()
    out = subprocess.run(["qemu-img", "check", qcow2], capture_output=True, text=True)
    check(out.returncode == 0, "qemu-img check after the migration:\n%s%s" %
          (out.stdout, out.stderr))


def test_virtio(args, tmp, vms):
    src = virtio_vm(args, tmp, "src")
    vms.append(src)
    sock = os.path.join(tmp, "mig.sock")
    dst = virtio_vm(args, tmp, "dst", ["--incoming", "unix:" + sock, "-S"])
    vms.append(dst)
    src.connect()
    d = dst.connect()
    src.wait_serial("VIREO-GUEST: progress")
    migrate(src, dst, "unix:" + sock, {"max-bandwidth": 0})
    wait_dest_status(dst, "paused")
    a = src.qmp.ok("x-vireo-ram-checksum")
    b = d.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs: source %r, destination %r" % (a, b))
    log("RAM checksum %s over %d pages matches" % (a["checksum"], a["pages"]))
    src.quit()
    check("progress" not in dst.serial(), "the destination ran before cont")
    d.ok("cont")
    # The device goes on at the destination, and the guest checks every page.
    dst.wait_serial("VIREO-GUEST: progress")
    time.sleep(1)
    path = os.path.join(tmp, "vm.state")
    migrate(dst, type("D", (), {"tag": "file"}), "file:" + path)
    a = d.ok("x-vireo-ram-checksum")
    dst.quit()
    restored, _ = restore_vm(args, tmp, "restored", path, virtio_device(args, tmp) + ["-S"])
    restored.pass_line = VIRTIO_PASS
    vms.append(restored)
    wait_dest_status(restored, "paused")
    b = restored.qmp.ok("x-vireo-ram-checksum")
    check(a == b, "RAM differs after restore: %r vs %r" % (a, b))
    restored.qmp.ok("cont")
    restored.expect_pass()


TESTS = {"autoconverge": test_autoconverge, "precopy": test_precopy, "file": test_file, "cancel": test_cancel,
         "pingpong": test_pingpong, "errors": test_errors, "virtio": test_virtio, "virtio-blk": test_virtio,
         "postcopy": test_postcopy, "postcopy-recover": test_postcopy_recover, "shared-disk": test_shared_disk,
         "tls": test_tls, "tls-postcopy": test_tls_postcopy, "multifd": test_multifd,
         "multifd-tls": test_multifd_tls, "multifd-fail": test_multifd_fail,
         "multifd-stray": test_multifd_stray}


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vmm")
    p.add_argument("guest")
    p.add_argument("mode", choices=sorted(TESTS))
    p.add_argument("--timeout", type=float, default=40.0)
    args = p.parse_args()
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("SKIP: /dev/kvm is not usable")
        return SKIP
    if "tls" in args.mode and not shutil.which("certtool"):
        log("SKIP: no certtool (gnutls-bin)")
        return SKIP
    tmp = tempfile.mkdtemp(prefix="vireo-migrate-test-")
    vms = []
    start = time.monotonic()
    try:
        TESTS[args.mode](args, tmp, vms)
    except (TestFailure, OSError, ValueError, KeyError) as e:
        log("FAIL: %s: %s" % (type(e).__name__, e))
        for vm in vms:
            vm.dump()
        return 1
    finally:
        for vm in vms:
            vm.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    log("PASS %s in %.1f s" % (args.mode, time.monotonic() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
