#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireod with the small Linux test kernel (suite 'slow').

A domain whose kernel is tests/guest/linux's vmlinux, /init in mode
'powerdown' (acpid waits for the ACPI power button). virsh starts it,
the console (a <serial type='file'>) shows Linux reaching /init, `virsh
shutdown` presses the power button, and the domain must end in a clean
power off: acpid runs poweroff, the kernel writes S5, vireo-vmm exits 0 with
SHUTDOWN guest-shutdown, and vireod records "shut off (shutdown)". The
console bridged by vireod (pty serial, `vireo start --console`) is tested
with the same kernel by test_demo.py, and with virsh by test_vireod.py.

Exit status: 0 pass, 1 fail, 77 skip.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_vireod as tv  # noqa: E402

SKIP = 77


def test_kernel(args, mode):
    """(kernel directory, command line for /init's @mode), built or cached by
    tests/guest/linux; None if the kernel's sources are not installed."""
    if not os.path.exists('/usr/src/linux-source-6.1.tar.xz'):
        print('SKIP: linux-source-6.1 is not installed, cannot build the test kernel')
        return None
    kdir = subprocess.run([args.build_kernel], check=True, capture_output=True,
                          text=True).stdout.strip()
    cmdline = subprocess.run([args.cmdline_script, 'vireo.test=' + mode], check=True,
                             capture_output=True, text=True).stdout.strip()
    return kdir, cmdline


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vireod', required=True)
    ap.add_argument('--vmm', required=True)
    ap.add_argument('--initrd', required=True)
    ap.add_argument('--cmdline-script', required=True)
    ap.add_argument('--build-kernel', required=True)
    ap.add_argument('--timeout', type=float, default=400)
    args = ap.parse_args()
    if not os.path.exists(tv.VIRSH) or not os.access('/dev/kvm', os.W_OK):
        print('SKIP: needs virsh and /dev/kvm')
        return SKIP
    kernel = test_kernel(args, 'powerdown')
    if not kernel:
        return SKIP
    kdir, cmdline = kernel
    root = tempfile.mkdtemp(prefix='vrdl-', dir='/tmp')
    console = os.path.join(root, 'console.log')
    ctx = tv.Ctx(argparse.Namespace(vireod=args.vireod, vmm=args.vmm), root)
    try:
        d = ctx.daemon()
        xml = f'''<domain type='kvm'>
  <name>linux</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64'>hvm</type>
    <kernel>{kdir}/vmlinux</kernel>
    <initrd>{args.initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <devices>
    <serial type='file'><source path='{console}'/></serial>
  </devices>
</domain>
'''
        tv.virsh(d.uri, 'define', ctx.write('linux.xml', xml))
        t0 = time.time()
        tv.virsh(d.uri, 'start', 'linux')

        def console_has(text):
            try:
                with open(console, errors='replace') as f:
                    return text in f.read()
            except OSError:
                return False
        tv.wait_for(lambda: console_has('VIREO-INIT: waiting-for-powerdown'), args.timeout,
                    'Linux to reach /init')
        boot = time.time() - t0
        # acpid opens its input device only after /init has printed that line
        # (linux_test.py waits 1 s; emulated kernel code is slow here): a press
        # that comes too early is lost, so press again, as an admin would.
        time.sleep(3)
        t1 = time.time()
        for attempt in range(5):
            tv.virsh(d.uri, 'shutdown', 'linux')
            try:
                tv.wait_for(lambda: console_has('VIREO-INIT: power button pressed'), 30,
                            'acpid to see the power button')
                break
            except tv.Failure:
                tv.log('linux: power button press %d not seen yet' % (attempt + 1))
        tv.wait_for(lambda: tv.domstate(d, 'linux') == 'shut off (shutdown)', 300,
                    'a clean power off')
        tv.check(console_has('VIREO-INIT: power button pressed') and
                 console_has('VIREO-INIT: shutdown: poweroff'),
                 'the guest did not power off through acpid: %s' %
                 open(console, errors='replace').read()[-2000:])
        log = tv.read_log(root, 'linux')
        tv.check('exited with status 0 (last shutdown reason: guest-shutdown)' in log,
                 'vireo-vmm exit: %s' % log)
        tv.log('linux: /init %.1f s after virsh start; virsh shutdown -> power off in %.1f s' %
               (boot, time.time() - t1))
        tv.virsh(d.uri, 'undefine', 'linux')
        print('1 passed, 0 failed')
        return 0
    except Exception as e:      # noqa: BLE001
        print('FAIL: %s' % e)
        for f in sorted(os.listdir(root)):
            if f.endswith('.log'):
                print('--- ' + f)
                print(open(os.path.join(root, f), errors='replace').read()[-3000:])
        print('0 passed, 1 failed')
        return 1
    finally:
        ctx.cleanup()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
