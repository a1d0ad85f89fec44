#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Real clients against the RPC layer: Debian's virsh and python3-libvirt
talk to rpc-test-daemon (daemon/rpc/ with a fake driver) through the
recording proxy of the reference captures.

1. The reference session (the captures' record.sh: version, list, define,
   dominfo, dumpxml, autostart, domstate, start, suspend, resume, destroy,
   undefine, an unknown domain, an interactive session with keepalive, an
   event loop) is replayed; every command must print what it printed against
   libvirtd, and every packet must equal the captured one, byte for byte,
   except for the differences listed in DIFFERENCES.
2. More virsh commands the issue needs (create, shutdown, reboot, reset,
   setmem, setvcpus, vcpucount, nodeinfo, hostname, console, the read-only
   socket, an unsupported command).
3. python3-libvirt: connect, list, define, events, console stream, errors.

    test_virsh.py DAEMON CAPTURE_DIR XML OUTDIR

Exit status 77 (skipped) when virsh or python3-libvirt is not installed
(Debian: apt-get install libvirt-clients python3-libvirt).
"""
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROXY = os.path.join(HERE, 'lvrpc-proxy.py')
VIRSH = shutil.which('virsh') or '/usr/bin/virsh'
PYTHON = '/usr/bin/python3'
KEEPALIVE_PROG = '6b656570'

# What may differ from the captures, and why (also in docs/rpc.md).
DIFFERENCES = """
- keepalive: PING/PONG packets are compared by presence, not position: their
  timing depends on the clock (both sides ping after 5 idle seconds).
- python-listAllDomains prints an object address that changes every run.
"""

# label, virsh arguments (None: special), as in the captures' record.sh
SESSION = [
    ('version', ['version']),
    ('list-all-empty', ['list', '--all']),
    ('define', ['define', 'dom.xml']),
    ('list-all-defined', ['list', '--all']),
    ('dominfo', ['dominfo', 'lvrpc-test']),
    ('dumpxml', ['dumpxml', 'lvrpc-test']),
    ('autostart', ['autostart', 'lvrpc-test']),
    ('autostart-disable', ['autostart', '--disable', 'lvrpc-test']),
    ('domstate-reason-shutoff', ['domstate', 'lvrpc-test', '--reason']),
    ('start', ['start', 'lvrpc-test']),
    ('domstate-reason', ['domstate', 'lvrpc-test', '--reason']),
    ('dominfo-running', ['dominfo', 'lvrpc-test']),
    ('list-all-running', ['list', '--all']),
    ('python-listAllDomains', None),
    ('suspend', ['suspend', 'lvrpc-test']),
    ('domstate-reason-paused', ['domstate', 'lvrpc-test', '--reason']),
    ('resume', ['resume', 'lvrpc-test']),
    ('destroy', ['destroy', 'lvrpc-test']),
    ('undefine', ['undefine', 'lvrpc-test']),
    ('error-dominfo-nosuchdomain', ['dominfo', 'no-such-domain']),
    ('interactive', None),
    ('event-all-loop', None),
]


failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print('FAIL: ' + what, flush=True)
    return cond


class Env:
    def __init__(self, daemon, xml, tmp):
        self.tmp = tmp
        self.sock = os.path.join(tmp, 'libvirt-sock')
        self.ro_sock = os.path.join(tmp, 'libvirt-sock-ro')
        self.proxy_sock = os.path.join(tmp, 'proxy.sock')
        self.uri = 'qemu+unix:///system?socket=' + self.proxy_sock
        self.direct = 'qemu+unix:///system?socket=' + self.sock
        self.env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=tmp + '/.config',
                        XDG_CACHE_HOME=tmp + '/.cache', XDG_RUNTIME_DIR=tmp + '/run',
                        LVRPC_DIR=tmp, LC_ALL='C')
        for k in ('LIBVIRT_DEFAULT_URI', 'VIRSH_DEFAULT_CONNECT_URI'):
            self.env.pop(k, None)
        os.makedirs(tmp + '/run', mode=0o700)
        os.makedirs(tmp + '/raw')
        # The domain the captures defined (data/dom.xml, the captures' own).
        shutil.copy(os.path.join(os.path.dirname(xml), 'dom.xml'), os.path.join(tmp, 'dom.xml'))
        self.daemon = subprocess.Popen([daemon, '--socket', self.sock, '--ro-socket', self.ro_sock,
                                        '--xml', xml], stdout=subprocess.PIPE, cwd=tmp)
        assert self.daemon.stdout.readline().strip() == b'ready'
        self.proxy = subprocess.Popen([PYTHON, PROXY, self.sock, self.proxy_sock],
                                      stdout=subprocess.PIPE, env=self.env, cwd=tmp)
        self.proxy.stdout.readline()
        self.label('unlabeled')

    def label(self, name):
        with open(os.path.join(self.tmp, 'label'), 'w') as f:
            f.write(name + '\n')

    def virsh(self, args, uri=None, stdin=None, timeout=60):
        p = subprocess.run([VIRSH, '-c', uri or self.uri] + args, input=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=self.env, cwd=self.tmp, timeout=timeout)
        return p.stdout.decode(), p.returncode

    def close(self):
        for p in (self.proxy, self.daemon):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # Under ASan a leak or error report makes this non-zero.
        check(self.daemon.returncode == 0, 'rpc-test-daemon exit status %d' %
              self.daemon.returncode)


def load(path):
    pkts = []
    for line in open(path):
        r = json.loads(line)
        if 'hex' in r:
            pkts.append((r['dir'], r['hex']))
    return pkts


def is_keepalive(pkt):
    return pkt[1][8:16] == KEEPALIVE_PROG


def describe(pkt):
    h = bytes.fromhex(pkt[1][:56])
    words = [int.from_bytes(h[i:i + 4], 'big') for i in range(0, 28, 4)]
    return '%s proc=%d type=%d serial=%d status=%d len=%d' % (
        pkt[0], words[3], words[4], words[5], words[6], words[0])


def compare_packets(label, ours, theirs):
    if label in ('interactive', 'event-all-loop'):
        for who in ('C->S', 'S->C'):
            kt = [p for p in theirs if is_keepalive(p) and p[0] == who]
            ko = [p for p in ours if is_keepalive(p) and p[0] == who]
            check(bool(kt) == bool(ko) or who == 'C->S',
                  '%s: keepalive from %s: captured %d, ours %d' % (label, who, len(kt), len(ko)))
        theirs = [p for p in theirs if not is_keepalive(p)]
        ours = [p for p in ours if not is_keepalive(p)]
    if not check(len(ours) == len(theirs),
                 '%s: %d packets, captured %d' % (label, len(ours), len(theirs))):
        for i in range(max(len(ours), len(theirs))):
            a = describe(ours[i]) if i < len(ours) else '-'
            b = describe(theirs[i]) if i < len(theirs) else '-'
            print('   ours %-50s captured %s' % (a, b))
        return
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if not check(a == b, '%s: packet %d differs' % (label, i + 1)):
            print('   ours     %s\n            %s' % (describe(a), a[1]))
            print('   captured %s\n            %s' % (describe(b), b[1]))
            return


def captured_stdout(capture_dir):
    out, label = {}, None
    for line in open(os.path.join(capture_dir, 'virsh-stdout.txt')):
        if line.startswith('=== '):
            label = line[4:].split(':', 1)[0]
            out[label] = ''
        elif label:
            out[label] += line
    return out


PYTHON_LIST = ("import libvirt; c=libvirt.open('%s'); print(c.listAllDomains())")


def replay(e, capture_dir):
    """Part 1: the reference session, output and packets compared."""
    want = captured_stdout(capture_dir)
    for label, args in SESSION:
        e.label(label)
        if label == 'python-listAllDomains':
            p = subprocess.run([PYTHON, '-c', PYTHON_LIST % e.uri], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=e.env, timeout=60)
            out, rc = p.stdout.decode(), p.returncode
        elif label == 'interactive':
            script = "(echo version; sleep 13; echo 'list --all'; sleep 2; echo quit) | %s -c '%s'"
            p = subprocess.run(['bash', '-c', script % (VIRSH, e.uri)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=e.env, timeout=60)
            out, rc = p.stdout.decode(), p.returncode
        elif label == 'event-all-loop':
            out, rc = event_loop(e)
        else:
            out, rc = e.virsh(args)
        out += 'rc=%d\n' % rc
        if label == 'python-listAllDomains':
            out = re.sub(r'0x[0-9a-f]+', '0xADDR', out)
            want[label] = re.sub(r'0x[0-9a-f]+', '0xADDR', want[label])
        check(out == want.get(label), '%s: virsh printed\n%s\ncaptured\n%s' %
              (label, out, want.get(label)))
    e.label('done')
    time.sleep(0.5)
    for label, _ in SESSION:
        compare_packets(label, load(os.path.join(e.tmp, 'raw', label + '.jsonl')),
                        load(os.path.join(capture_dir, label + '.jsonl')))


def event_loop(e):
    """virsh event --all --loop through the proxy; operations on the direct socket."""
    e.virsh(['define', 'dom.xml'], uri=e.direct)
    p = subprocess.Popen([VIRSH, '-c', e.uri, 'event', '--all', '--loop', '--timeout', '12'],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e.env, cwd=e.tmp)
    time.sleep(2)
    e.label('done')
    for op in ('start', 'suspend', 'resume', 'destroy', 'undefine'):
        e.virsh([op, 'lvrpc-test'], uri=e.direct)
        time.sleep(1)
    out = p.communicate(timeout=60)[0].decode()
    return out, p.returncode


def more_virsh(e):
    """Part 2: the other commands of the issue."""
    def ok(args, expect=None, uri=None):
        out, rc = e.virsh(args, uri=uri)
        check(rc == 0, 'virsh %s: rc %d: %s' % (' '.join(args), rc, out))
        if expect:
            check(re.search(expect, out), 'virsh %s: %r not in %r' % (' '.join(args), expect, out))
        return out

    def err(args, expect, uri=None):
        out, rc = e.virsh(args, uri=uri)
        check(rc != 0 and expect in out, 'virsh %s: wanted error %r, got rc %d: %s' %
              (' '.join(args), expect, rc, out))

    e.label('more')
    ok(['hostname'], re.escape(os.uname().nodename))
    ok(['uri'], re.escape(e.uri))
    ok(['nodeinfo'], r'CPU\(s\):\s+4')
    ok(['capabilities'], '<capabilities>')
    ok(['maxvcpus'], '255')
    ok(['create', 'dom.xml'], "Domain 'lvrpc-test' created")
    ok(['list'], r'\s+\d+\s+lvrpc-test\s+running')
    ok(['domid', 'lvrpc-test'], r'^\d+')
    ok(['domuuid', 'lvrpc-test'], 'c7a5fdbd-cdaf-9455-926a-d65c16db1809')
    ok(['vcpucount', 'lvrpc-test'], r'current\s+live\s+1')
    ok(['vcpuinfo', 'lvrpc-test'], r'VCPU:\s+0')
    ok(['reboot', 'lvrpc-test'], 'is being rebooted')
    ok(['reset', 'lvrpc-test'], 'was reset')
    console(e)
    ok(['shutdown', 'lvrpc-test'], 'is being shutdown')
    ok(['list', '--all'], r'-{5,}\n\n')      # transient: gone
    ok(['define', 'dom.xml'])
    ok(['setmem', 'lvrpc-test', '32M', '--config'])
    ok(['dominfo', 'lvrpc-test'], r'Used memory:\s+32768 KiB')
    ok(['setmaxmem', 'lvrpc-test', '128M', '--config'])
    ok(['setvcpus', 'lvrpc-test', '2', '--config', '--maximum'])
    ok(['setvcpus', 'lvrpc-test', '2', '--config'])
    ok(['dominfo', 'lvrpc-test'], r'CPU\(s\):\s+2')
    err(['setvcpus', 'lvrpc-test', '4', '--config'], 'greater than max allowable vcpus')
    err(['schedinfo', 'lvrpc-test'],
        'this function is not supported by the connection driver: virDomainGetSchedulerType')
    err(['start', 'no-such'], "failed to get domain 'no-such'")
    ro = 'qemu+unix:///system?socket=' + e.ro_sock
    ok(['-r', 'list', '--all'], 'lvrpc-test', uri=ro)
    ok(['list', '--all'], 'lvrpc-test', uri=ro)
    err(['start', 'lvrpc-test'], 'operation forbidden: read only access prevents virDomainCreate',
        uri=ro)
    ok(['undefine', 'lvrpc-test'])


def console(e):
    """virsh console needs a terminal: run it on a pty, type, leave with ^]."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(VIRSH, [VIRSH, '-c', e.uri, 'console', 'lvrpc-test'], e.env)
    buf = b''

    def expect(what, timeout=10):
        nonlocal buf
        end = time.time() + timeout
        while what not in buf and time.time() < end:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    buf += os.read(fd, 4096)
                except OSError:
                    break
        return what in buf

    check(expect(b'Escape character is'), 'console: no greeting: %r' % buf)
    check(expect(b'vireo test console'), 'console: no banner: %r' % buf)
    os.write(fd, b'hello\r')
    check(expect(b'HELLO'), 'console: no echo: %r' % buf)
    os.write(fd, b'\x1d')
    _, status = os.waitpid(pid, 0)
    check(os.WEXITSTATUS(status) == 0, 'console: virsh exit status %d' % status)
    os.close(fd)


PYTHON_CHECKS = r'''
import libvirt, sys, threading, time
uri, xml = sys.argv[1], sys.argv[2]
libvirt.virEventRegisterDefaultImpl()
c = libvirt.open(uri)
assert c.getType() == 'QEMU' and c.getVersion() == 7002022 and c.getLibVersion() == 9000000
assert c.listAllDomains() == []
events = []
def lifecycle(conn, dom, event, detail, opaque):
    events.append((dom.name(), event, detail))
cb = c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
stop = []
def loop():
    while not stop:
        libvirt.virEventRunDefaultImpl()
threading.Thread(target=loop, daemon=True).start()
d = c.defineXML(open(xml).read())
assert d.name() == 'lvrpc-test' and d.UUIDString() == 'c7a5fdbd-cdaf-9455-926a-d65c16db1809'
assert d.info() == [5, 65536, 65536, 1, 0] and d.state() == [5, 0]
d.create(); d.suspend(); d.resume()
assert d.isActive() and d.state() == [1, 1]
st = c.newStream(0)
d.openConsole(None, st, 0)
assert st.recv(100) == b'vireo test console\r\n'
st.send(b'python')
assert st.recv(100) == b'PYTHON'
st.finish()
d.destroy(); d.undefine()
for _ in range(50):
    if len(events) >= 8:
        break
    time.sleep(0.1)
want = [('lvrpc-test', 0, 0), ('lvrpc-test', 4, 0), ('lvrpc-test', 2, 0), ('lvrpc-test', 3, 0),
        ('lvrpc-test', 4, 0), ('lvrpc-test', 6, 2), ('lvrpc-test', 5, 1), ('lvrpc-test', 1, 0)]
assert events == want, events
try:
    c.lookupByName('nope')
    assert False
except libvirt.libvirtError as e:
    assert e.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN
    assert str(e) == "Domain not found: no domain with matching name 'nope'", str(e)
c.domainEventDeregisterAny(cb)
stop.append(1)
c.close()
print('python ok')
'''


def python_checks(e):
    """Part 3: python3-libvirt."""
    e.label('python')
    p = subprocess.run([PYTHON, '-c', PYTHON_CHECKS, e.uri, os.path.join(e.tmp, 'dom.xml')],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=e.env, timeout=60)
    out = p.stdout.decode()
    check(p.returncode == 0 and 'python ok' in out, 'python3-libvirt: %s' % out)


def main():
    if len(sys.argv) != 5:
        print(__doc__)
        return 2
    daemon, capture_dir, xml, outdir = (os.path.abspath(a) for a in sys.argv[1:])
    if not os.path.exists(VIRSH):
        print('SKIP: virsh not installed (apt-get install libvirt-clients)')
        return 77
    if subprocess.run([PYTHON, '-c', 'import libvirt'], capture_output=True).returncode:
        print('SKIP: python3-libvirt not installed')
        return 77
    tmp = tempfile.mkdtemp(prefix='vireo-virsh-')
    e = Env(daemon, xml, tmp)
    try:
        replay(e, capture_dir)
        more_virsh(e)
        python_checks(e)
    finally:
        e.close()
        rec = os.path.join(outdir, 'virsh-recordings')
        shutil.rmtree(rec, ignore_errors=True)
        shutil.copytree(os.path.join(tmp, 'raw'), rec)
        shutil.rmtree(tmp, ignore_errors=True)
    print('recordings in %s' % rec)
    print('documented differences from the captures:' + DIFFERENCES)
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('all virsh and python3-libvirt checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
