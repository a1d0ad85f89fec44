#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireo-install: --print-xml for each set of options compared with the
expected XML files (data/install/<case>.xml; VIREO_TEST_REGENERATE=1
rewrites them), errors, --dry-run, image creation, and whole runs against
the daemon (define, start, autostart, transient, console on a pty).

    test_install.py VIREO_INSTALL VIREO TEST_DAEMON EXPECTED_DIR
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Daemon, Pty, check, env_for, failures, run  # noqa: E402

UUID = '5c0c2f0e-3b1d-4e5a-9a8e-1f2e3d4c5b6a'

# name -> arguments; {tmp} is the test's directory (replaced by /TMP in the output)
CASES = {
    'import-debian12': ['--name', 'deb', '--osinfo', 'debian12', '--import',
                        '--disk', '{tmp}/deb.qcow2', '--graphics', 'none',
                        '--network', 'network=default,mac=52:54:00:12:34:56'],
    'cdrom-win11': ['--name', 'win', '--os-variant', 'win11', '--cdrom', '{tmp}/install.iso',
                    '--disk', 'size=1', '--network', 'bridge=br0,mac=52:54:00:00:00:01'],
    'kernel-boot': ['--name', 'kern', '--memory', '256', '--vcpus', '1',
                    '--boot', 'kernel={tmp}/vmlinuz,initrd={tmp}/initrd.img,'
                    'kernel_args="console=ttyS0 root=/dev/vda rw"', '--disk', '{tmp}/root.raw',
                    '--network', 'none', '--osinfo', 'generic'],
    'disk-options': ['--name', 'disks', '--memory', '1024', '--import', '--osinfo', 'linux2022',
                     '--disk', 'path={tmp}/a.qcow2,size=2,format=qcow2,bus=virtio,boot_order=2',
                     '--disk', 'path={tmp}/b.raw,size=1,format=raw,bus=sata',
                     '--disk', 'path={tmp}/install.iso,device=cdrom,readonly=on,boot_order=1',
                     '--disk', '{tmp}/deb.qcow2,bus=scsi,readonly=yes', '--network', 'none'],
    'network-models': ['--name', 'nets', '--memory', '512', '--pxe', '--osinfo', 'fedora39',
                       '--network', 'network=lan,model=e1000e,mac=52:54:00:aa:bb:cc',
                       '--network', 'bridge=br1,model=virtio,mac=52:54:00:aa:bb:cd',
                       '--disk', 'none'],
    'cpu-topology': ['--name', 'topo', '--memory', 'memory=2048,currentMemory=1024',
                     '--vcpus', '2,maxvcpus=4,sockets=1,cores=2,threads=2', '--cpu', 'qemu64',
                     '--import', '--disk', '{tmp}/deb.qcow2', '--osinfo', 'ubuntu22.04',
                     '--network', 'none', '--machine', 'q35'],
    'uefi-host-model': ['--name', 'efi', '--memory', '1024', '--boot', 'uefi,hd',
                        '--cpu', 'host', '--disk', '{tmp}/deb.qcow2', '--network', 'none',
                        '--console', 'pty', '--graphics', 'none'],
}

ERRORS = [
    (['--memory', '512', '--import', '--disk', '{tmp}/deb.qcow2'], '--name is required'),
    (['--name', 'x', '--osinfo', 'nosuchos', '--import', '--disk', '{tmp}/deb.qcow2'],
     "Unknown OS name 'nosuchos'"),
    (['--name', 'x', '--disk', '{tmp}/deb.qcow2'], 'An install method must be specified'),
    (['--name', 'x', '--import', '--disk', '{tmp}/deb.qcow2,frob=1'],
     "Unknown --disk options: ['frob']"),
    (['--name', 'x', '--import', '--disk', '{tmp}/new.qcow2'],
     'Size must be specified for non existent volume'),
    (['--name', 'x', '--import', '--disk', '{tmp}/deb.qcow2', '--graphics', 'vnc'],
     'Vireo has no display devices'),
    (['--name', 'x', '--cdrom', '{tmp}/missing.iso'], 'does not exist'),
    (['--name', 'x', '--import', '--disk', '{tmp}/deb.qcow2', '--transient', '--autostart'],
     'cannot be used together'),
    (['--name', 'x', '--import', '--disk', '{tmp}/deb.qcow2', '--vcpus', '3,sockets=1,cores=2'],
     'must equal the maximum'),
    (['--name', 'x', '--import', '--disk', '{tmp}/deb.qcow2', '--network', 'mac=zz'],
     'is not a MAC address'),
    (['--name', 'x', '--location', 'http://example/'], '--location is not supported'),
    (['--name', 'x', '--import', '--disk', '{tmp}/deb.qcow2', '--bogus'],
     'unrecognized arguments: --bogus'),
    (['--name', 'x', '--import', '--disk', '{tmp}/deb.qcow2', '--uuid', 'not-a-uuid'],
     'the domain XML is not valid'),
]


def normalize(xml, tmp):
    xml = xml.replace(tmp, '/TMP')
    xml = re.sub(r"<uuid>[0-9a-f-]{36}</uuid>", '<uuid>UUID</uuid>', xml)
    return xml


def fmt(args, tmp):
    return [a.replace('{tmp}', tmp) for a in args]


def qcow2_size(path):
    with open(path, 'rb') as f:
        hdr = f.read(32)
    return hdr[:4] == b'QFI\xfb', int.from_bytes(hdr[24:32], 'big')


def print_xml(inst, tmp, expected_dir, env):
    regen = os.environ.get('VIREO_TEST_REGENERATE') == '1'
    for name, args in CASES.items():
        out, err, rc = run([inst] + fmt(args, tmp) + ['--uuid', UUID, '--print-xml', '--dry-run'],
                           env)
        if not check(rc == 0, '%s: rc %d: %s' % (name, rc, err)):
            continue
        got = normalize(out, tmp)
        path = os.path.join(expected_dir, name + '.xml')
        if regen:
            with open(path, 'w') as f:
                f.write(got)
        want = open(path).read() if os.path.exists(path) else None
        if check(got == want, '%s: --print-xml differs from %s' % (name, path)):
            print('ok   %s' % name)
        else:
            print(got)
        # the XML is a fixed point of the daemon's parser: vireo define takes it as it is
        check(not os.path.exists(os.path.join(tmp, 'win.qcow2')), '--dry-run created an image')


def errors(inst, tmp, env):
    for args, want in ERRORS:
        out, err, rc = run([inst] + fmt(args, tmp) + ['--dry-run'], env)
        check(rc == 1 and err.startswith('ERROR    ') and want in err,
              'error %s: rc %d, wanted %r, got %r' % (args, rc, want, err))
    out, err, rc = run([inst, '--osinfo', 'list'], env)
    check(rc == 0 and out.split() == ['generic', 'linux2022', 'debian12', 'fedora39',
                                      'ubuntu22.04', 'win11'], '--osinfo list: %r' % out)
    out, err, rc = run([inst, '--help'], env)
    check(rc == 0 and '--print-xml' in out, '--help')
    out, err, rc = run([inst, '--name', 'dry', '--import', '--disk', 'size=3', '--dry-run'], env)
    check(rc == 0 and out == 'Dry run completed successfully\n' and
          not os.listdir(env['VIREO_IMAGE_DIR']), '--dry-run: %r %r' % (out, err))


def images(inst, tmp, env):
    """--print-xml without --dry-run makes the images, as virt-install does."""
    out, err, rc = run([inst, '--name', 'img', '--import', '--disk', 'size=1.5',
                        '--disk', 'path=%s/r.raw,size=0.5,format=raw' % tmp, '--print-xml'], env)
    check(rc == 0, 'images: %s' % err)
    q = os.path.join(env['VIREO_IMAGE_DIR'], 'img.qcow2')
    check(os.path.exists(q) and qcow2_size(q) == (True, 1536 * 1024 * 1024),
          'images: qcow2 %r' % (qcow2_size(q) if os.path.exists(q) else 'missing',))
    check("<source file='%s'/>" % q in out and "type='qcow2'" in out, 'images: xml')
    r = os.path.join(tmp, 'r.raw')
    check(os.path.getsize(r) == 512 * 1024 * 1024 and os.stat(r).st_blocks == 0,
          'images: sparse raw')
    if shutil.which('qemu-img'):
        p = subprocess.run(['qemu-img', 'check', q], capture_output=True)
        check(p.returncode == 0, 'qemu-img check: %s' % p.stdout.decode())
        info = json.loads(subprocess.run(['qemu-img', 'info', '--output', 'json', q],
                                         capture_output=True).stdout)
        check(info.get('format') == 'qcow2' and info.get('virtual-size') == 1536 << 20,
              'qemu-img info: %r' % info)
    # neither path nor size: the OS's recommended size
    out, err, rc = run([inst, '--name', 'rec', '--osinfo', 'ubuntu22.04', '--import', '--disk',
                        'bus=sata', '--print-xml'], env)
    q = os.path.join(env['VIREO_IMAGE_DIR'], 'rec.qcow2')
    check(rc == 0 and os.path.exists(q) and qcow2_size(q) == (True, 25 << 30),
          'recommended size: %s' % err)
    # a second size-only disk of the same name gets the next free name
    out, err, rc = run([inst, '--name', 'img', '--import', '--disk', 'size=1', '--print-xml',
                        '--dry-run'], env)
    check("img-1.qcow2" in out, 'images: next free name')


def whole_runs(inst, vireo, daemon, tmp, env):
    d = Daemon(daemon, tmp + '/d')
    e = dict(env, VIREO_DEFAULT_URI=d.uri)
    try:
        out, err, rc = run([inst, '--name', 'run1', '--import', '--disk', '%s/deb.qcow2' % tmp,
                            '--noautoconsole', '--autostart', '--network', 'none'], e)
        check(rc == 0 and 'Creating domain...' in out and 'Domain creation completed.' in out,
              'run1: rc %d %r %r' % (rc, out, err))
        out, _, _ = run([vireo, 'dominfo', 'run1', '--json'], e)
        info = json.loads(out) if out else {}
        check(info.get('state') == 'running' and info.get('autostart') is True and
              info.get('persistent') is True, 'run1: %r' % info)
        out, err, rc = run([inst, '--name', 'run2', '--import', '--disk', 'size=1',
                            '--transient', '--noautoconsole', '--network', 'none'], e)
        check(rc == 0, 'run2: %s' % err)
        out, _, _ = run([vireo, 'list', '--transient', '--name'], e)
        check(out.split() == ['run2'], 'run2 transient: %r' % out)
        check(os.path.exists(os.path.join(env['VIREO_IMAGE_DIR'], 'run2.qcow2')), 'run2 image')
        # no terminal: the console is not attached, and vireo-install says how to
        out, err, rc = run([inst, '--name', 'run3', '--import', '--disk', '%s/deb.qcow2' % tmp,
                            '--network', 'none'], e)
        check(rc == 0 and 'console run3' in out, 'run3: %r %r' % (out, err))
        # on a terminal: the console, left with ^]
        p = Pty([inst, '--name', 'run4', '--import', '--disk', '%s/deb.qcow2' % tmp,
                 '--network', 'none'], e, cwd=tmp)
        ok = p.expect(b"Connected to domain 'run4'") and p.expect(b'Escape character is ^]')
        if d.fake:
            ok = ok and p.expect(b'vireo test console')
        p.send(b'\x1d')
        check(ok and p.wait() == 0, 'run4 console: %r' % p.buf)
        # the name is taken: nothing is left behind (the image made for it is removed)
        out, err, rc = run([inst, '--name', 'run1', '--import', '--disk', 'size=1',
                            '--noautoconsole', '--network', 'none',
                            '--uuid', '00000000-0000-4000-8000-000000000001'], e)
        check(rc == 1 and err.startswith('ERROR    '), 'duplicate: rc %d %r' % (rc, err))
        check(not os.path.exists(os.path.join(env['VIREO_IMAGE_DIR'], 'run1.qcow2')),
              'duplicate: image left behind')
        out, err, rc = run([inst, '--connect', 'qemu+unix:///system?socket=/nonexistent',
                            '--name', 'x', '--import', '--disk', '%s/deb.qcow2' % tmp], env)
        check(rc == 1 and 'failed to connect to the hypervisor' in err, 'bad --connect: %r' % err)
    finally:
        d.stop()


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    inst, vireo, daemon, expected = (os.path.abspath(a) for a in sys.argv[1:])
    tmp = tempfile.mkdtemp(prefix='vireo-install-')
    os.makedirs(tmp + '/images')
    os.makedirs(tmp + '/d')
    env = env_for(tmp, VIREO_IMAGE_DIR=tmp + '/images')
    for f, size in (('deb.qcow2', 0), ('root.raw', 1 << 20), ('install.iso', 1 << 20),
                    ('vmlinuz', 4096), ('initrd.img', 4096)):
        with open(os.path.join(tmp, f), 'wb') as fh:
            if f.endswith('qcow2'):
                fh.write(b'QFI\xfb' + bytes(508))
            else:
                fh.truncate(size)
    try:
        print_xml(inst, tmp, expected, env)
        errors(inst, tmp, env)
        images(inst, tmp, env)
        whole_runs(inst, vireo, daemon, tmp, env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('all vireo-install checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
