#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Peer-to-peer live migration between two vireods (docs/daemon.md, "Migration").

Two "hosts": two network namespaces joined by a veth pair, each with its
own vireod (--root in its own directory, --listen on its address, and
--listen-tls with certificates from certtool when gnutls-bin is there). The
domains run tests/guest/migrate-dirty.c, which dirties its RAM and checks
its whole pattern every pass, printing "VIREO-GUEST: error" on a mismatch.

    test_migrate.py --vireod V --vmm M --vireo C --guest migrate-dirty.elf [--virsh]

Exit status: 0 pass, 1 fail, 77 skipped (not root, no netns, no /dev/kvm).
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_vireod import Failure, check, domain_xml, wait_for  # noqa: E402
import test_tls  # noqa: E402

SKIP = 77
ADDR = {'A': '10.231.77.1', 'B': '10.231.77.2'}


def log(msg):
    print('test_migrate: ' + msg, flush=True)


def run(*argv, ok=True, timeout=120):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, LC_ALL='C'))
    if ok and p.returncode != 0:
        raise Failure('%s failed (%d): %s%s' % (' '.join(argv), p.returncode, p.stdout, p.stderr))
    return p


class Host:
    """A network namespace with a vireod listening on TCP."""

    def __init__(self, args, tag, tmp, ns, pki=None):
        self.args = args
        self.tag = tag
        self.ns = ns
        self.addr = ADDR[tag]
        self.root = os.path.join(tmp, tag)
        os.makedirs(self.root, exist_ok=True)
        self.sock = os.path.join(self.root, 'run/vireo/vireo-sock')
        self.uri = 'qemu+unix:///system?socket=' + self.sock
        self.tcp_uri = 'vireo+tcp://%s/system' % self.addr
        self.tls_uri = 'vireo+tls://%s/system' % self.addr if pki else None
        if pki:
            # libvirt's layout under --root: the server side for --listen-tls,
            # the client side for the daemon's own connection to its peer.
            server = pki.issue('server-' + tag, pki.cacert, True, ips=[self.addr])
            client = pki.issue('client-' + tag, pki.cacert, False)
            test_tls.install({'etc/pki/CA/cacert.pem': pki.cacert[0],
                              'etc/pki/vireo/servercert.pem': server[0],
                              'etc/pki/vireo/private/serverkey.pem': server[1],
                              'etc/pki/vireo/clientcert.pem': client[0],
                              'etc/pki/vireo/private/clientkey.pem': client[1]}, self.root)
            # QEMU's names in libvirt's migrate_tls_x509_cert_dir, for --tls.
            test_tls.install({'etc/pki/qemu/ca-cert.pem': pki.cacert[0],
                              'etc/pki/qemu/server-cert.pem': server[0],
                              'etc/pki/qemu/server-key.pem': server[1],
                              'etc/pki/qemu/client-cert.pem': client[0],
                              'etc/pki/qemu/client-key.pem': client[1]}, self.root)
        self.proc = None
        self.start()

    def start(self):
        self.log = open(os.path.join(self.root, 'vireod.log'), 'ab')
        self.proc = subprocess.Popen(
            ['ip', 'netns', 'exec', self.ns, self.args.vireod, '--root', self.root,
             '--vmm', self.args.vmm, '--listen', self.addr, '-v'] +
            (['--listen-tls', self.addr] if self.tls_uri else []),
            stdout=self.log, stderr=self.log)
        wait_for(lambda: self.proc.poll() is None and os.path.exists(self.sock) and
                 run('virsh', '-c', self.uri, 'uri', ok=False).returncode == 0, 10,
                 'vireod on ' + self.tag)

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.log.close()

    def virsh(self, *argv, ok=True):
        return run('virsh', '-c', self.uri, *argv, ok=ok).stdout.strip()

    def vireo(self, *argv, ok=True, timeout=120):
        return run(self.args.vireo, '-c', self.uri, *argv, ok=ok, timeout=timeout)

    def state(self, name):
        p = run('virsh', '-c', self.uri, 'domstate', '--reason', name, ok=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def vmm_pids(self):
        """vireo-vmm processes of this host's root."""
        pids = []
        for p in os.listdir('/proc'):
            if not p.isdigit():
                continue
            try:
                with open('/proc/%s/cmdline' % p, 'rb') as f:
                    argv = f.read().split(b'\0')
            except OSError:
                continue
            if argv and argv[0].endswith(b'vireo-vmm') and \
                    any(self.root.encode() + b'/' in a for a in argv):
                pids.append(int(p))
        return pids

    def domain_log(self, name):
        try:
            with open(os.path.join(self.root, 'var/log/vireo', name + '.log')) as f:
                return f.read()
        except OSError:
            return ''


class Ctx:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix='vireo-migrate-')
        os.chmod(self.tmp, 0o755)
        self.ns = {t: 'vireo-mig%d%s' % (os.getpid(), t) for t in 'AB'}
        self.hosts = {}
        self.figures = []

    def setup_net(self):
        a, b = self.ns['A'], self.ns['B']
        va, vb = 'vmA%d' % (os.getpid() % 100000), 'vmB%d' % (os.getpid() % 100000)
        self.veth = {'A': va, 'B': vb}
        run('ip', 'netns', 'add', a)
        run('ip', 'netns', 'add', b)
        run('ip', 'link', 'add', va, 'type', 'veth', 'peer', 'name', vb)
        run('ip', 'link', 'set', va, 'netns', a)
        run('ip', 'link', 'set', vb, 'netns', b)
        for ns, dev, tag in ((a, va, 'A'), (b, vb, 'B')):
            run('ip', '-n', ns, 'addr', 'add', ADDR[tag] + '/24', 'dev', dev)
            run('ip', '-n', ns, 'link', 'set', dev, 'up')
            run('ip', '-n', ns, 'link', 'set', 'lo', 'up')

    def link(self, up):
        """A's end of the link between the hosts up or down (a cable pulled)."""
        run('ip', '-n', self.ns['A'], 'link', 'set', self.veth['A'], 'up' if up else 'down')

    def cleanup(self):
        for h in self.hosts.values():
            for pid in h.vmm_pids():
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            h.stop(signal.SIGKILL)
        for ns in self.ns.values():
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)
        if os.environ.get('VIREO_TEST_KEEP'):
            log('kept ' + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def serial_path(self, name):
        return os.path.join(self.tmp, name + '.serial')

    def define(self, host, name, mem=48, dirty=64, persistent=True):
        xml = domain_xml(name, self.args.guest, memory=mem + 16,
                         serial="<serial type='file'><source path='%s'/></serial>" %
                         self.serial_path(name))
        xml = xml.replace('</kernel>', '</kernel>\n    <cmdline>mem=%d dirty=%d seconds=900'
                          '</cmdline>' % (mem, dirty))
        path = os.path.join(self.tmp, name + '.xml')
        with open(path, 'w') as f:
            f.write(xml)
        if persistent:
            host.virsh('define', path)
            host.virsh('start', name)
        else:
            host.virsh('create', path)
        wait_for(lambda: 'progress: pass' in self.serial(name), 30, name + ' guest progress')

    def serial(self, name):
        try:
            with open(self.serial_path(name), 'rb') as f:
                return f.read().decode('utf-8', errors='replace')
        except OSError:
            return ''

    def check_guest(self, name, host):
        """The guest goes on verifying its RAM on @host, without an error."""
        n = self.serial(name).count('progress: pass')
        wait_for(lambda: self.serial(name).count('progress: pass') >= n + 2, 20,
                 name + ' progress after migration')
        out = self.serial(name)
        check('VIREO-GUEST: error' not in out and 'FAIL' not in out,
              '%s: guest reported an error:\n%s' % (name, out[-2000:]))
        check(len(host.vmm_pids()) >= 1, 'no vireo-vmm on ' + host.tag)

    def one_vmm(self, name, where):
        other = self.hosts['B' if where.tag == 'A' else 'A']
        wait_for(lambda: len(other.vmm_pids()) == 0, 10, 'no vireo-vmm left on ' + other.tag)
        check(len(where.vmm_pids()) == 1, '%s: %d vireo-vmm' % (where.tag, len(where.vmm_pids())))

    def figure(self, src, name, what):
        m = re.findall(r'migrated to \S+ in (\d+) ms \(downtime (\d+) ms\)', src.domain_log(name))
        check(m, 'no migration figures in the log of ' + name)
        total, down = m[-1]
        self.figures.append('%s: total %s ms, downtime %s ms' % (what, total, down))
        log(self.figures[-1])


def t_live_and_back(ctx):
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 'm1', dirty=256)
    t0 = time.monotonic()
    A.vireo('migrate', '--live', '--verbose', 'm1', B.tcp_uri)
    log('m1 A->B: vireo migrate took %.0f ms' % ((time.monotonic() - t0) * 1000))
    ctx.figure(A, 'm1', 'dirtying guest (256 pages/pass, 48 MiB) A->B')
    check(B.state('m1') == 'running (migrated)', 'B: m1 is %r' % B.state('m1'))
    check(A.state('m1') == 'shut off (migrated)', 'A: m1 is %r' % A.state('m1'))
    check(B.virsh('dominfo', 'm1').find('Persistent:     no') >= 0, 'B: m1 transient')
    ctx.one_vmm('m1', B)
    ctx.check_guest('m1', B)
    # ... and back
    B.vireo('migrate', '--live', 'm1', A.tcp_uri)
    ctx.figure(B, 'm1', 'dirtying guest B->A')
    check(A.state('m1') == 'running (migrated)', 'A: m1 is %r' % A.state('m1'))
    check(B.state('m1') is None, 'B: transient m1 still there: %r' % B.state('m1'))
    ctx.one_vmm('m1', A)
    ctx.check_guest('m1', A)
    A.virsh('destroy', 'm1')
    A.virsh('undefine', 'm1')
    # An idle guest (its workload dirties one page per pass).
    ctx.define(A, 'idle', mem=16, dirty=1)
    A.vireo('migrate', '--live', 'idle', B.tcp_uri)
    ctx.figure(A, 'idle', 'idle guest (1 page/pass, 16 MiB) A->B')
    ctx.check_guest('idle', B)
    B.virsh('destroy', 'idle')
    A.virsh('undefine', 'idle')


def t_persistent(ctx):
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 'm2')
    A.vireo('migrate', '--live', '--persistent', '--undefinesource', 'm2', B.tcp_uri)
    check(B.state('m2') == 'running (migrated)', 'B: m2 is %r' % B.state('m2'))
    check('Persistent:     yes' in B.virsh('dominfo', 'm2'), 'B: m2 not persistent')
    check(os.path.exists(os.path.join(B.root, 'var/lib/vireo/domains/m2.xml')), 'B: no m2.xml')
    check(A.state('m2') is None, 'A: m2 still defined: %r' % A.state('m2'))
    check(not os.path.exists(os.path.join(A.root, 'var/lib/vireo/domains/m2.xml')),
          'A: m2.xml left')
    ctx.one_vmm('m2', B)
    ctx.check_guest('m2', B)
    # --suspend: paused on the destination
    B.vireo('migrate', '--live', '--suspend', 'm2', A.tcp_uri)
    check(A.state('m2').startswith('paused'), 'A: m2 is %r' % A.state('m2'))
    check(B.state('m2') == 'shut off (migrated)', 'B: m2 is %r' % B.state('m2'))
    A.virsh('resume', 'm2')
    ctx.check_guest('m2', A)
    A.virsh('destroy', 'm2')
    B.virsh('undefine', 'm2')


def migrate_async(host, *argv):
    box = {}

    def go():
        box['p'] = host.vireo(*argv, ok=False, timeout=120)
    th = threading.Thread(target=go)
    th.start()
    return th, box


def wait_transferring(host, name):
    def busy():
        p = run('virsh', '-c', host.uri, 'domjobinfo', name, ok=False)
        return 'Data processed' in p.stdout or 'Memory processed' in p.stdout
    wait_for(busy, 20, 'migration of %s under way' % name)


def t_cancel(ctx):
    A, B = ctx.hosts['A'], ctx.hosts['B']
    # A bandwidth limit keeps the migration going long enough to interrupt it.
    ctx.define(A, 'm3', mem=128, dirty=256)
    for how in ('domjobabort', 'kill-dest-vmm', 'kill-dest-vireod'):
        log('cancel by ' + how)
        th, box = migrate_async(A, 'migrate', '--live', '--bandwidth', '8', 'm3', B.tcp_uri)
        if how == 'domjobabort':
            wait_transferring(A, 'm3')
            A.virsh('domjobabort', 'm3')
        elif how == 'kill-dest-vmm':
            wait_for(lambda: B.vmm_pids(), 20, 'incoming vireo-vmm on B')
            time.sleep(1)
            for pid in B.vmm_pids():
                os.kill(pid, signal.SIGKILL)
        else:
            wait_for(lambda: B.vmm_pids(), 20, 'incoming vireo-vmm on B')
            time.sleep(1)
            B.stop(signal.SIGKILL)
        th.join(120)
        check(box['p'].returncode != 0, '%s: migrate succeeded: %s' % (how, box['p'].stdout))
        log('  migrate said: ' + box['p'].stderr.strip().replace('\n', ' | '))
        check(A.state('m3') == 'running (booted)', '%s: A: m3 is %r' % (how, A.state('m3')))
        if how == 'kill-dest-vireod':
            # The orphaned incoming vireo-vmm ends with its stream.
            wait_for(lambda: not B.vmm_pids(), 15, 'orphan vireo-vmm on B gone')
            B.start()
        wait_for(lambda: not B.vmm_pids(), 15, 'no vireo-vmm on B')
        check(B.state('m3') is None, '%s: B: m3 left: %r' % (how, B.state('m3')))
        check(len(A.vmm_pids()) == 1, '%s: vireo-vmm on A: %s' % (how, A.vmm_pids()))
        ctx.check_guest('m3', A)
    # And it still migrates afterwards.
    A.vireo('migrate', '--live', 'm3', B.tcp_uri)
    ctx.one_vmm('m3', B)
    ctx.check_guest('m3', B)
    B.virsh('destroy', 'm3')
    A.virsh('undefine', 'm3')


def t_postcopy(ctx):
    """Post-copy: migrate-postcopy's refusals, then --postcopy --postcopy-after-precopy."""
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ro_uri = 'qemu+unix:///system?socket=' + A.sock + '-ro'
    dest = 'qemu+tcp://%s/system' % B.addr

    def same(*argv, uri=A.uri):
        """vireo prints what Debian's virsh prints against the same vireod."""
        want = run('virsh', '-c', uri, *argv, ok=False)
        got = run(ctx.args.vireo, '-c', uri, *argv, ok=False)
        want = (want.returncode, want.stdout, want.stderr.replace('virsh', 'vireo'))
        got = (got.returncode, got.stdout, got.stderr)
        check(got == want, 'vireo %s: %r, virsh: %r' % (' '.join(argv), got, want))
        log('  %s: %s' % (' '.join(argv), got[2].strip()))
        return got

    # 128 MiB at 8 MiB/s: several seconds per pass, more dirtied meanwhile than the link carries.
    ctx.define(A, 'p1', mem=128, dirty=256)
    r = same('migrate-postcopy', 'p1')
    check(r[0] == 1 and 'post-copy can only be started while outgoing migration is in '
          'progress' in r[2], 'migrate-postcopy without a migration: %r' % (r,))
    r = same('migrate-postcopy', 'p1', uri=ro_uri)
    check('read only access prevents virDomainMigrateStartPostCopy' in r[2],
          'migrate-postcopy read-only: %r' % (r,))
    r = same('migrate', '--p2p', '--postcopy-after-precopy', 'p1', dest)
    check('Option --postcopy is required by option --postcopy-after-precopy' in r[2],
          '--postcopy-after-precopy alone: %r' % (r,))
    r = same('migrate', '--p2p', '--postcopy', 'p1', dest)
    check('post-copy migration is not supported with non-live or paused migration' in r[2],
          'non-live post-copy: %r' % (r,))
    check(A.state('p1') == 'running (booted)', 'A: p1 is %r' % A.state('p1'))

    # A migration started without --postcopy cannot switch.
    th, box = migrate_async(A, 'migrate', '--live', '--bandwidth', '8', 'p1', B.tcp_uri)
    wait_transferring(A, 'p1')
    r = same('migrate-postcopy', 'p1')
    check(r[0] == 1 and 'switching to post-copy requires migration to be started with '
          'VIR_MIGRATE_POSTCOPY flag' in r[2], 'migrate-postcopy on pre-copy: %r' % (r,))
    A.virsh('domjobabort', 'p1')
    th.join(120)
    check(box['p'].returncode != 0, 'aborted migration succeeded: %s' % box['p'].stdout)
    check(A.state('p1') == 'running (booted)', 'A: p1 is %r' % A.state('p1'))
    wait_for(lambda: not B.vmm_pids(), 15, 'no vireo-vmm on B')

    # The switch after the first pass: A pauses for good, B runs while its RAM arrives.
    t0 = time.monotonic()
    th, box = migrate_async(A, 'migrate', '--live', '--postcopy', '--postcopy-after-precopy',
                            '--verbose', '--bandwidth', '8', 'p1', B.tcp_uri)
    seen = {}

    def switched():
        st = A.state('p1')
        if st == 'paused (post-copy)' and 'job' not in seen:
            seen['job'] = run('virsh', '-c', A.uri, 'domjobinfo', 'p1', ok=False).stdout
            seen['abort'] = run('virsh', '-c', A.uri, 'domjobabort', 'p1', ok=False).stderr
        return st != 'running (booted)' or box.get('p') is not None
    wait_for(switched, 120, 'the switch to post-copy')

    def running_on_b():
        st = B.state('p1')
        return st if st and st.startswith('running') else None
    # A's finish call resumes it on B right after the switch.
    seen['B'] = wait_for(running_on_b, 20, 'B: p1 running')
    th.join(180)
    secs = time.monotonic() - t0
    p = box['p']
    check(p.returncode == 0, 'post-copy migration failed: %s%s' % (p.stdout, p.stderr))
    m = re.search(r'post-copy from (\d+) ms, resumed on the destination (\d+) ms after',
                  A.domain_log('p1'))
    check(m, 'no post-copy figures in the log of p1 on A')
    log('p1 A->B with post-copy after the first pass: vireo migrate took %.1f s, switch at %s '
        'ms, B resumed it %s ms later' % (secs, m.group(1), m.group(2)))
    ctx.figure(A, 'p1', 'post-copy after the first pass (256 pages/pass, 128 MiB, 8 MiB/s)')
    check('job' in seen, 'never saw A paused (post-copy)')
    check('Memory remaining' in seen['job'] and 'Iteration' in seen['job'],
          'domjobinfo during post-copy: %r' % seen['job'])
    check('cannot abort migration in post-copy mode' in seen['abort'],
          'domjobabort during post-copy: %r' % seen['abort'])
    log('  during post-copy: B is %r' % seen['B'])
    check(seen['B'] in ('running (post-copy)', 'running (migrated)'), 'B: p1 was %r' % seen['B'])
    wait_for(lambda: B.state('p1') == 'running (migrated)', 20, 'B: p1 running (migrated)')
    check(A.state('p1') == 'shut off (migrated)', 'A: p1 is %r' % A.state('p1'))
    ctx.one_vmm('p1', B)
    ctx.check_guest('p1', B)

    # Back, and the destination's vireo-vmm dies once it runs the guest: the source never
    # resumes, although it has all of the memory.
    th, box = migrate_async(B, 'migrate', '--live', '--postcopy', '--postcopy-after-precopy',
                            '--bandwidth', '8', 'p1', A.tcp_uri)
    wait_for(lambda: A.state('p1') == 'running (post-copy)' or box.get('p') is not None, 120,
             'A: p1 running (post-copy)')
    check(box.get('p') is None, 'migration back ended early: %r' % box.get('p'))
    check(B.state('p1') == 'paused (post-copy)', 'B: p1 is %r' % B.state('p1'))
    for pid in A.vmm_pids():
        os.kill(pid, signal.SIGKILL)
    th.join(120)
    p = box['p']
    check(p.returncode != 0, 'post-copy migration survived its destination: %s' % p.stdout)
    log('  migrate said: ' + p.stderr.strip().replace('\n', ' | '))
    check('the source stays paused (it ran on the destination' in p.stderr,
          'migrate error: %r' % p.stderr)
    check(B.state('p1') == 'paused (post-copy failed)', 'B: p1 is %r' % B.state('p1'))
    check(len(B.vmm_pids()) == 1, 'B: vireo-vmm %s' % B.vmm_pids())
    n = ctx.serial('p1').count('progress: pass')
    time.sleep(2)
    check(ctx.serial('p1').count('progress: pass') == n, 'p1 runs somewhere after the failure')
    # The incoming domain on A ended with its vireo-vmm.
    wait_for(lambda: (A.state('p1') or '').startswith('shut off'), 10, 'A: p1 shut off')
    B.virsh('destroy', 'p1')
    A.virsh('undefine', 'p1')


def t_evacuate(ctx):
    A, B = ctx.hosts['A'], ctx.hosts['B']
    for i in range(3):
        ctx.define(A, 'e%d' % i, mem=16, dirty=16)
    t0 = time.monotonic()
    p = A.vireo('host-evacuate', B.tcp_uri, '--batch', '2', timeout=300)
    log('host-evacuate of 3 domains, batch 2: %.1f s' % (time.monotonic() - t0))
    for i in range(3):
        check('e%d' % i in p.stdout and 'failed' not in p.stdout, 'evacuate: %s' % p.stdout)
        check(B.state('e%d' % i) == 'running (migrated)', 'B: e%d is %r' % (i, B.state('e%d' % i)))
        check(A.state('e%d' % i) is None, 'A: e%d left' % i)
        ctx.check_guest('e%d' % i, B)
    check(not A.vmm_pids() and len(B.vmm_pids()) == 3, 'vireo-vmm: A %s, B %s' %
          (A.vmm_pids(), B.vmm_pids()))
    for i in range(3):
        B.virsh('destroy', 'e%d' % i)
        B.virsh('undefine', 'e%d' % i)


def t_virsh_p2p(ctx):
    """Debian's virsh migrate --p2p against our daemons."""
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 'v1', mem=16, dirty=16)
    p = run('virsh', '-c', A.uri, 'migrate', '--p2p', '--live', '--verbose', 'v1',
            'qemu+tcp://%s/system' % B.addr, ok=False)
    log('virsh migrate --p2p: status %d, %s%s' % (p.returncode, p.stdout.strip(), p.stderr.strip()))
    check(p.returncode == 0, 'virsh migrate --p2p failed: %s' % p.stderr)
    check(B.state('v1') == 'running (migrated)', 'B: v1 is %r' % B.state('v1'))
    ctx.check_guest('v1', B)
    B.virsh('destroy', 'v1')
    A.virsh('undefine', 'v1')


def t_postcopy_recover(ctx):
    """The link dropped in post-copy pauses both sides; --postcopy-resume recovers."""
    A, B = ctx.hosts['A'], ctx.hosts['B']
    # 64 MiB at 4 MiB/s: the rest of the memory takes seconds to follow the switch.
    ctx.define(A, 'r1', mem=64, dirty=64)
    p = A.vireo('migrate', '--live', '--postcopy', '--postcopy-resume', 'r1', B.tcp_uri,
                ok=False)
    check(p.returncode != 0 and 'paused after a failed post-copy' in p.stderr,
          'resume of a running domain: %s' % p.stderr)
    # Debian's virsh switches on vireod's MIGRATION_ITERATION event of iteration 2;
    # without it the migration would go on as pre-copy.
    box = {}

    def go():
        box['p'] = run('virsh', '-c', A.uri, 'migrate', '--p2p', '--live', '--postcopy',
                       '--postcopy-after-precopy', '--bandwidth', '4', 'r1',
                       'qemu+tcp://%s/system' % B.addr, ok=False, timeout=120)
    th = threading.Thread(target=go)
    th.start()
    wait_for(lambda: B.state('r1') == 'running (post-copy)', 60, 'B: r1 running (post-copy)')
    time.sleep(0.5)
    ctx.link(False)
    t0 = time.monotonic()
    try:
        th.join(120)
        p = box['p']
        check(p.returncode != 0 and 'post-copy, the source stays paused' in p.stderr,
              'migration over a dropped link: %d %s' % (p.returncode, p.stderr))
        check(A.state('r1') == 'paused (post-copy failed)', 'A: r1 is %r' % A.state('r1'))
        wait_for(lambda: B.state('r1') == 'running (post-copy failed)', 30,
                 'B: r1 running (post-copy failed)')
        ctx.figures.append('link down in post-copy: both sides paused after %.1f s' %
                           (time.monotonic() - t0))
        log(ctx.figures[-1])
        # A recovery while the link is still down fails and changes nothing.
        p = A.vireo('migrate', '--live', '--postcopy', '--postcopy-resume', 'r1', B.tcp_uri,
                    ok=False)
        check(p.returncode != 0, 'recovery over a down link succeeded')
        log('recovery with the link down: %s' % p.stderr.strip())
        check(A.state('r1') == 'paused (post-copy failed)', 'A: r1 is %r' % A.state('r1'))
    finally:
        ctx.link(True)
    # Debian's virsh sends the same flags (VIR_MIGRATE_POSTCOPY_RESUME).
    t0 = time.monotonic()
    p = run('virsh', '-c', A.uri, 'migrate', '--p2p', '--live', '--postcopy', '--postcopy-resume',
            'r1', 'qemu+tcp://%s/system' % B.addr, ok=False, timeout=120)
    check(p.returncode == 0, 'virsh migrate --postcopy-resume failed: %s' % p.stderr)
    log('recovered and completed in %.1f s' % (time.monotonic() - t0))
    check(A.state('r1') == 'shut off (migrated)', 'A: r1 is %r' % A.state('r1'))
    wait_for(lambda: B.state('r1') == 'running (migrated)', 30, 'B: r1 running (migrated)')
    ctx.one_vmm('r1', B)
    ctx.check_guest('r1', B)
    B.virsh('destroy', 'r1')
    A.virsh('undefine', 'r1')


def t_parallel(ctx):
    """--parallel: the stream over several connections (vireo-vmm's multifd)."""
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 'par', mem=64, dirty=64)
    p = A.vireo('migrate', '--live', '--postcopy', '--parallel', 'par', B.tcp_uri, ok=False)
    check(p.returncode != 0 and 'not supported with parallel' in p.stderr,
          'post-copy with --parallel: %s' % p.stderr)
    A.vireo('migrate', '--live', '--parallel', '--parallel-connections', '4', 'par', B.tcp_uri)
    ctx.figure(A, 'par', '4 parallel connections (64 pages/pass, 64 MiB) A->B')
    m = re.search(r'(\d+) parallel connections carried (\d+) MiB', A.domain_log('par'))
    check(m and m.group(1) == '4' and int(m.group(2)) >= 32,
          'A: no multifd figures in the log: %r' % (m and m.group(0)))
    check(B.state('par') == 'running (migrated)', 'B: par is %r' % B.state('par'))
    ctx.one_vmm('par', B)
    ctx.check_guest('par', B)
    # ... and back with Debian's virsh (VIR_MIGRATE_PARALLEL, parallel.connections).
    p = run('virsh', '-c', B.uri, 'migrate', '--p2p', '--live', '--parallel',
            '--parallel-connections', '3', 'par', 'qemu+tcp://%s/system' % A.addr, ok=False)
    check(p.returncode == 0, 'virsh migrate --parallel failed: %s' % p.stderr)
    check(re.search(r'3 parallel connections carried', B.domain_log('par')),
          'B: virsh --parallel did not use 3 connections')
    check(A.state('par') == 'running (migrated)', 'A: par is %r' % A.state('par'))
    ctx.check_guest('par', A)
    A.virsh('destroy', 'par')
    A.virsh('undefine', 'par')


def t_tls(ctx):
    """The daemons talk over TLS (vireod --listen-tls, its own client certificate)."""
    A, B = ctx.hosts['A'], ctx.hosts['B']
    ctx.define(A, 't1', mem=16, dirty=16)
    A.vireo('migrate', '--live', '--verbose', 't1', B.tls_uri)
    check(B.state('t1') == 'running (migrated)', 'B: t1 is %r' % B.state('t1'))
    ctx.one_vmm('t1', B)
    ctx.check_guest('t1', B)
    # ... and back with Debian's virsh naming the destination qemu+tls://.
    p = run('virsh', '-c', B.uri, 'migrate', '--p2p', '--live', 't1',
            'qemu+tls://%s/system' % A.addr, ok=False)
    check(p.returncode == 0, 'virsh migrate --p2p over tls failed: %s' % p.stderr)
    check(A.state('t1') == 'running (migrated)', 'A: t1 is %r' % A.state('t1'))
    ctx.check_guest('t1', A)
    A.virsh('destroy', 't1')
    A.virsh('undefine', 't1')


def t_tls_stream(ctx):
    """--tls: the migration stream itself over TLS, the daemons on plain TCP."""
    A, B = ctx.hosts['A'], ctx.hosts['B']
    pki = os.path.join(A.root, 'etc/pki/qemu')
    ctx.define(A, 't2', mem=32, dirty=64)
    # The source's client certificate missing: refused before the destination hears of it.
    os.rename(os.path.join(pki, 'client-cert.pem'), os.path.join(pki, 'client-cert.pem.off'))
    p = A.vireo('migrate', '--live', '--tls', 't2', B.tcp_uri, ok=False)
    os.rename(os.path.join(pki, 'client-cert.pem.off'), os.path.join(pki, 'client-cert.pem'))
    check(p.returncode != 0 and 'client-cert.pem' in p.stderr,
          'missing client certificate: %d %s' % (p.returncode, p.stderr))
    check(A.state('t2') == 'running (booted)', 'A: t2 is %r' % A.state('t2'))
    check(B.state('t2') is None and not B.vmm_pids(), 'B: t2 left behind')
    # The destination's certificates come from another CA: neither side trusts the
    # other, the handshake fails, the source runs on.
    other = test_tls.Pki(os.path.join(ctx.tmp, 'other-ca'))
    oca = other.ca('other-ca')
    oserver = other.issue('server-B', oca, True, ips=[B.addr])
    bpki = os.path.join(B.root, 'etc/pki/qemu')
    os.rename(bpki, bpki + '.good')
    test_tls.install({'etc/pki/qemu/ca-cert.pem': oca[0], 'etc/pki/qemu/server-cert.pem':
                      oserver[0], 'etc/pki/qemu/server-key.pem': oserver[1]}, B.root)
    p = A.vireo('migrate', '--live', '--tls', 't2', B.tcp_uri, ok=False)
    shutil.rmtree(bpki)
    os.rename(bpki + '.good', bpki)
    log('other CA: %s' % p.stderr.strip())
    check(p.returncode != 0 and 'TLS' in p.stderr and 'CA' in p.stderr,
          'other CA: %d %s' % (p.returncode, p.stderr))
    check(A.state('t2') == 'running (booted)', 'A: t2 is %r' % A.state('t2'))
    wait_for(lambda: B.state('t2') is None and not B.vmm_pids(), 10, 'B cleaned up')
    ctx.check_guest('t2', A)
    # The real thing, with the figures.
    A.vireo('migrate', '--live', '--verbose', '--tls', 't2', B.tcp_uri)
    ctx.figure(A, 't2', 'TLS stream (64 pages/pass, 32 MiB) A->B')
    check(B.state('t2') == 'running (migrated)', 'B: t2 is %r' % B.state('t2'))
    check('--migrate-tls-creds' in B.domain_log('t2'), 'B: vireo-vmm started without TLS')
    ctx.one_vmm('t2', B)
    ctx.check_guest('t2', B)
    # ... and back with Debian's virsh --tls (tls.destination: the address's name here).
    p = run('virsh', '-c', B.uri, 'migrate', '--p2p', '--live', '--tls', '--tls-destination',
            A.addr, 't2', 'qemu+tcp://%s/system' % A.addr, ok=False)
    check(p.returncode == 0, 'virsh migrate --tls failed: %s' % p.stderr)
    check(A.state('t2') == 'running (migrated)', 'A: t2 is %r' % A.state('t2'))
    ctx.check_guest('t2', A)
    A.virsh('destroy', 't2')
    A.virsh('undefine', 't2')


def run_suite(tests, tls_tests=()):
    """Two hosts in network namespaces, then @tests (and @tls_tests when certtool is there)."""
    ap = argparse.ArgumentParser()
    ap.add_argument('--vireod', required=True)
    ap.add_argument('--vmm', required=True)
    ap.add_argument('--vireo', required=True)
    ap.add_argument('--guest', required=True)
    ap.add_argument('--only')
    args = ap.parse_args()
    if os.geteuid() != 0:
        log('SKIP: needs root for network namespaces')
        return SKIP
    if not os.access('/dev/kvm', os.R_OK | os.W_OK) or not shutil.which('virsh') or \
            not shutil.which('ip'):
        log('SKIP: no /dev/kvm, virsh or ip')
        return SKIP
    ctx = Ctx(args)
    try:
        try:
            ctx.setup_net()
        except Failure as e:
            log('SKIP: cannot create network namespaces: %s' % e)
            return SKIP
        pki = None
        if tls_tests and test_tls.CERTTOOL:
            pki = test_tls.Pki(os.path.join(ctx.tmp, 'pki'))
            pki.cacert = pki.ca('vireo-migrate-ca')
        elif tls_tests:
            log('certtool missing: no TLS case')
        ctx.hosts = {t: Host(args, t, ctx.tmp, ctx.ns[t], pki) for t in 'AB'}
        for t in list(tests) + (list(tls_tests) if pki else []):
            if args.only and args.only not in t.__name__:
                continue
            log('--- ' + t.__name__)
            t(ctx)
        if ctx.figures:
            log('figures: ' + '; '.join(ctx.figures))
        log('PASS')
        return 0
    except Failure as e:
        log('FAIL: %s' % e)
        for h in ctx.hosts.values():
            sys.stderr.write('---- %s vireod.log (tail) ----\n' % h.tag)
            try:
                with open(os.path.join(h.root, 'vireod.log'), errors='replace') as f:
                    sys.stderr.write(f.read()[-3000:])
            except OSError:
                pass
        return 1
    finally:
        ctx.cleanup()


def main():
    return run_suite([t_live_and_back, t_persistent, t_cancel, t_postcopy, t_postcopy_recover,
                      t_parallel, t_evacuate, t_virsh_p2p], tls_tests=[t_tls, t_tls_stream])


if __name__ == '__main__':
    sys.exit(main())
