#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Run a guest test program under QEMU/KVM the way README.md describes.

Picks the machine each program needs, feeds serial-irq its "ping",
presses the power button over QMP for powerbutton, and checks the exit
status (33 = PASS through debug-exit, 0 = powered off) and the serial
output. Prints the serial output; exits 0 if the program behaved.

    tests/guest/qemu-run.py build/tests/guest/hello.elf
    tests/guest/qemu-run.py --append 'iters=1000' build/tests/guest/cpl3-loop.elf
"""

import argparse
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import time

PASS_STATUS = 33        # (0x10 << 1) | 1
FAIL_STATUS = 35        # (0x11 << 1) | 1

# name: (machine, extra QEMU args, expected exit status)
# QEMU 7.2 reads unassigned MMIO as 0, not all ones: exits gets mmio-any.
PROGRAMS = {
    'hello': ('microvm', [], PASS_STATUS),
    'exits': ('microvm', ['-append', 'mmio-any'], PASS_STATUS),
    'exceptions': ('microvm', [], PASS_STATUS),
    'serial-irq': ('microvm', [], PASS_STATUS),
    'pit': ('microvm,pit=on,pic=on', [], PASS_STATUS),
    'lapic-timer': ('microvm', [], PASS_STATUS),
    'rtc': ('microvm,rtc=on', [], PASS_STATUS),
    'cpl3-loop': ('microvm', [], PASS_STATUS),
    'bench-first-insn': ('microvm', [], PASS_STATUS),
    'smp': ('q35', ['-smp', '2'], PASS_STATUS),
    'poweroff': ('q35', [], 0),
    'reset': ('q35', [], PASS_STATUS),
    'powerbutton': ('q35', [], 0),
}


def qmp_command(path, command, timeout=10.0):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    f = sock.makefile('rw')
    f.readline()                                    # greeting
    for cmd in ('qmp_capabilities', command):
        f.write(json.dumps({'execute': cmd}) + '\n')
        f.flush()
        while True:
            reply = json.loads(f.readline())
            if 'return' in reply or 'error' in reply:
                break
    sock.close()
    return reply


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('elf')
    ap.add_argument('--machine', help='override the -M value')
    ap.add_argument('--append', default='', help='kernel command line')
    ap.add_argument('--timeout', type=float, default=60.0)
    ap.add_argument('--qemu', default='qemu-system-x86_64')
    ap.add_argument('--quiet', action='store_true', help='no serial echo')
    args = ap.parse_args()

    name = os.path.basename(args.elf)
    if name.endswith('.elf'):
        name = name[:-4]
    machine, extra, want_status = PROGRAMS.get(name, ('microvm', [], PASS_STATUS))
    if args.machine:
        machine = args.machine

    tmp = tempfile.mkdtemp(prefix='vireo-guest-')
    qmp_path = os.path.join(tmp, 'qmp.sock')
    cmd = [args.qemu, '-enable-kvm', '-M', machine, '-nodefaults',
           '-display', 'none', '-serial', 'stdio',
           '-device', 'isa-debug-exit,iobase=0x501,iosize=1',
           '-qmp', 'unix:%s,server=on,wait=off' % qmp_path,
           '-kernel', args.elf] + extra
    if args.append:
        if '-append' in cmd:
            i = cmd.index('-append')
            del cmd[i:i + 2]
        cmd += ['-append', args.append]

    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    out = b''
    fed = pressed = False
    timed_out = False
    os.set_blocking(proc.stdout.fileno(), False)
    while True:
        left = args.timeout - (time.monotonic() - start)
        if left <= 0:
            timed_out = True
            proc.kill()
            break
        r, _, _ = select.select([proc.stdout], [], [], min(left, 0.2))
        if r:
            chunk = proc.stdout.read()
            if not chunk:
                break
            out += chunk
            if not args.quiet:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        if not fed and b'VIREO-GUEST: serial-irq: waiting for 4 bytes' in out:
            proc.stdin.write(b'ping')
            proc.stdin.flush()
            fed = True
        if not pressed and b'VIREO-GUEST: waiting for power button' in out:
            qmp_command(qmp_path, 'system_powerdown')
            pressed = True
        if proc.poll() is not None and not r:
            break
    status = proc.wait()
    rest = proc.stdout.read() or b''
    out += rest
    if rest and not args.quiet:
        sys.stdout.buffer.write(rest)
    err = proc.stderr.read().decode(errors='replace')
    elapsed = time.monotonic() - start

    text = out.decode(errors='replace')
    ok = not timed_out and status == want_status and 'VIREO-GUEST: FAIL' not in text
    if want_status == PASS_STATUS:
        ok = ok and ('VIREO-GUEST: PASS %s' % name) in text
    if name == 'serial-irq':
        ok = ok and 'VIREO-GUEST: pong:ping' in text
    for line in err.splitlines():
        if 'host doesn\'t support requested feature' not in line:
            print('qemu: ' + line, file=sys.stderr)
    print('qemu-run: %s: status %s (want %d) in %.3f s: %s' % (
        name, 'timeout' if timed_out else status, want_status, elapsed,
        'ok' if ok else 'FAILED'), file=sys.stderr)
    try:
        os.unlink(qmp_path)
    except OSError:
        pass
    os.rmdir(tmp)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
