#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""README's first command, past its package installation (suite 'slow').

`make demo` runs daemon/demo.sh with the small Linux test kernel: a private
vireod, a domain defined for the kernel, and `vireo start --console` on a
terminal. This test runs demo.sh the same way, on a pseudo-terminal, waits
for the guest's shell, runs a command in it, types `poweroff`, and checks
that demo.sh ends with status 0, having removed its daemon and its
temporary directory.

Exit status: 0 pass, 1 fail, 77 skip.
"""
import argparse
import glob
import os
import pty
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_vireod_linux import test_kernel  # noqa: E402

SKIP = 77


class Demo:
    def __init__(self, argv, timeout):
        self.timeout = timeout
        self.started = time.monotonic()
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execvp(argv[0], argv)
        self.out = b''

    def wait_text(self, text):
        needle = text.encode()
        while needle not in self.out:
            left = self.timeout - (time.monotonic() - self.started)
            if left <= 0:
                raise AssertionError('no %r on the console after %.0f s; last output:\n%s'
                                     % (text, self.timeout, self.tail()))
            ready, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b''
            if not chunk:
                raise AssertionError('demo.sh closed the terminal before %r; last output:\n%s'
                                     % (text, self.tail()))
            self.out += chunk

    def send(self, text):
        os.write(self.fd, text.encode())

    def wait_exit(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            # Keep draining the terminal so the child never blocks writing.
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    self.out += os.read(self.fd, 4096)
                except OSError:
                    pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
        raise AssertionError('demo.sh still running %.0f s after poweroff; last output:\n%s'
                             % (seconds, self.tail()))

    def kill(self):
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def tail(self):
        return self.out[-1500:].decode(errors='replace')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--demo', required=True, help='daemon/demo.sh')
    ap.add_argument('--build', required=True, help='the meson build directory')
    ap.add_argument('--initrd', required=True)
    ap.add_argument('--cmdline-script', required=True)
    ap.add_argument('--build-kernel', required=True)
    ap.add_argument('--timeout', type=float, default=400)
    args = ap.parse_args()
    if not os.access('/dev/kvm', os.W_OK):
        print('SKIP: needs /dev/kvm')
        return SKIP
    kernel = test_kernel(args, 'shell')
    if not kernel:
        return SKIP
    kdir, cmdline = kernel
    before = set(glob.glob('/tmp/vireo-demo.*'))
    demo = Demo([args.demo, args.build, kdir + '/vmlinux', args.initrd, cmdline],
                args.timeout)
    try:
        demo.wait_text('vireod: vireo+unix://')
        demo.wait_text("Type 'poweroff'")
        demo.wait_text('vireo-guest:')
        booted = time.monotonic() - demo.started
        demo.send('echo vireo-$((6*7))\n')
        demo.wait_text('vireo-42')
        demo.send('poweroff\n')
        status = demo.wait_exit(120)
    except AssertionError as e:
        demo.kill()
        print('FAIL:', e)
        return 1
    if status != 0:
        print('FAIL: demo.sh exited with %d after poweroff; last output:\n%s'
              % (status, demo.tail()))
        return 1
    left = set(glob.glob('/tmp/vireo-demo.*')) - before
    if left:
        print('FAIL: demo.sh left its directory behind: %s' % ', '.join(sorted(left)))
        return 1
    print('demo: shell through vireod + vireo console after %.1f s; a command ran, '
          'poweroff ended demo.sh with 0 and it cleaned up' % booted)
    return 0


if __name__ == '__main__':
    sys.exit(main())
