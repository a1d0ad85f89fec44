#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""virtio-net on a real tap, under KVM, inside a throwaway network namespace.

The namespace holds a tap whose host side is 10.0.2.2/24; vireo-vmm runs in
it with the guest program tests/guest/virtio-net.c, which ARPs for 10.0.2.2
and pings it. The host's own network stack answers both; the test checks the
guest's report (the tap's MAC as the ARP answer, the echo reply) and the
tap's counters on the host side. Three ways to get the tap to the device:

  tap=NAME           vireo-vmm opens an existing tap by name
  fd=N               this script opens the tap (IFF_VNET_HDR) and passes the fd,
                     as the daemon will
  tap=NAME,queues=2  a multiqueue tap: two queue fds, the second detached
                     while the guest uses one pair

Needs root (network namespaces, /dev/net/tun) and /dev/kvm; exits 77 (skip)
without them. Usage: net_test.py VMM GUEST_ELF
"""
import fcntl
import os
import re
import shutil
import struct
import subprocess
import sys
import time

SKIP = 77
HOST_IP = "10.0.2.2/24"
TUNSETIFF = 0x400454CA
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000


def log(msg):
    print("net_test: " + msg, flush=True)


def run(*cmd):
    subprocess.run(cmd, check=True)


def tap_counters(tap):
    base = "/sys/class/net/%s/statistics/" % tap
    with open(base + "rx_packets") as rx, open(base + "tx_packets") as tx:
        return int(rx.read()), int(tx.read())


def tap_mac(tap):
    with open("/sys/class/net/%s/address" % tap) as f:
        return f.read().strip()


def make_tap(name, multi_queue=False):
    run("ip", "tuntap", "add", "dev", name, "mode", "tap", *(["multi_queue"] if multi_queue else []))
    run("ip", "link", "set", name, "up")
    run("ip", "addr", "add", HOST_IP, "dev", name)


def boot(vmm, elf, net, pass_fds=()):
    """Runs the guest program; returns (exit status, serial output, stderr)."""
    cmd = [vmm, "--kernel", elf, "--debug-exit", "--serial", "stdio", "--net", net]
    log("starting: " + " ".join(cmd))
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=60, pass_fds=pass_fds)
    return p.returncode, p.stdout, p.stderr


def check_run(name, tap, vmm, elf, net, pass_fds=()):
    before = tap_counters(tap)
    status, out, err = boot(vmm, elf, net, pass_fds)
    after = tap_counters(tap)
    got_rx, got_tx = after[0] - before[0], after[1] - before[1]
    problems = []
    if status != 33 or "VIREO-GUEST: PASS virtio-net" not in out:
        problems.append("exit status %d, no PASS line" % status)
    m = re.search(r"10\.0\.2\.2 is at ([0-9a-f:]{17})", out)
    if not m or m.group(1) != tap_mac(tap):
        problems.append("ARP answer %s, the tap's MAC is %s" %
                        (m.group(1) if m else None, tap_mac(tap)))
    if "ping 10.0.2.2: 74-byte reply" not in out:
        problems.append("no echo reply")
    # The tap received the ARP request and the echo request from the guest,
    # and sent it the ARP reply and the echo reply (plus whatever else the
    # host sends on a new link, e.g. IPv6 router solicitations).
    if got_rx < 2 or got_tx < 2:
        problems.append("tap counters: %d frames from the guest, %d to it" % (got_rx, got_tx))
    if problems:
        sys.stderr.write("---- serial ----\n%s\n---- stderr ----\n%s\n" % (out, err))
        log("FAIL %s: %s" % (name, "; ".join(problems)))
        return False
    log("PASS %s: ARP and ping through %s; the tap counted %d frames in, %d out" %
        (name, tap, got_rx, got_tx))
    return True


def inside(vmm, elf):
    """In the namespace: the three ways of getting a tap to the device."""
    run("ip", "link", "set", "lo", "up")
    make_tap("vtap0")
    ok = check_run("tap=NAME", "vtap0", vmm, elf, "tap=vtap0")

    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
    ifr = struct.pack("16sH22x", b"vtap0", IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    os.set_inheritable(fd, True)
    ok &= check_run("fd=N", "vtap0", vmm, elf, "fd=%d" % fd, pass_fds=(fd,))
    os.close(fd)

    # One tap with 10.0.2.2 at a time, or the host routes replies out of the other.
    run("ip", "link", "del", "vtap0")
    make_tap("vtapmq", multi_queue=True)
    ok &= check_run("queues=2", "vtapmq", vmm, elf, "tap=vtapmq,queues=2")
    return 0 if ok else 1


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--inside":
        return inside(sys.argv[2], sys.argv[3])
    if len(sys.argv) != 3:
        print(__doc__)
        return 2
    vmm, elf = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    if os.geteuid() != 0:
        log("SKIP: needs root for a network namespace and a tap")
        return SKIP
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        log("SKIP: no /dev/kvm")
        return SKIP
    if not os.path.exists("/dev/net/tun") or not shutil.which("ip"):
        log("SKIP: no /dev/net/tun or no ip(8) (Debian: iproute2)")
        return SKIP
    ns = "vireo-net-%d" % os.getpid()
    if subprocess.run(["ip", "netns", "add", ns]).returncode != 0:
        log("SKIP: cannot create a network namespace")
        return SKIP
    try:
        start = time.monotonic()
        status = subprocess.run(["ip", "netns", "exec", ns, sys.executable,
                                 os.path.abspath(__file__), "--inside", vmm, elf]).returncode
        log("%s in %.1f s" % ("PASS" if status == 0 else "FAIL", time.monotonic() - start))
        return status
    finally:
        subprocess.run(["ip", "netns", "del", ns])


if __name__ == "__main__":
    sys.exit(main())
