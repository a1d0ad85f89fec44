#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireod --listen-tls end to end (docs/daemon.md, "TLS").

Makes a CA, a second CA and their certificates with certtool (gnutls-bin),
starts vireod under a temporary --root with the files in libvirt's layout
(ROOT/etc/pki/...) and --listen-tls on 127.0.0.1, then checks that our
vireo and Debian's virsh connect over vireo+tls:// and qemu+tls://, and
that a foreign client certificate, a wrong host name, a plain TCP client
and a stalled handshake are dealt with.

  test_tls.py --vireod PATH --vmm PATH --vireo PATH

Exit 0 when all passed, 1 otherwise, 77 when certtool is missing.
"""
import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
CERTTOOL = shutil.which('certtool')
VIRSH = shutil.which('virsh')


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def log(msg):
    print('test_tls: ' + msg, flush=True)


class Pki:
    """certtool in a directory: keys, self-signed CAs, issued certificates."""

    def __init__(self, d):
        self.d = d
        os.makedirs(d, exist_ok=True)

    def _run(self, *args):
        subprocess.run([CERTTOOL] + list(args), check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def key(self, name):
        path = os.path.join(self.d, name + '-key.pem')
        # RSA: libvirt's client insists on the key encipherment usage, which
        # certtool sets for RSA keys only.
        self._run('--generate-privkey', '--key-type', 'rsa', '--bits', '2048', '--outfile', path)
        return path

    def _template(self, name, lines):
        path = os.path.join(self.d, name + '.info')
        with open(path, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        return path

    def ca(self, name):
        key = self.key(name)
        cert = os.path.join(self.d, name + '-cert.pem')
        t = self._template(name, ['cn = "%s"' % name, 'ca', 'cert_signing_key',
                                  'expiration_days = 30'])
        self._run('--generate-self-signed', '--load-privkey', key, '--template', t,
                  '--outfile', cert)
        return (cert, key)

    def issue(self, name, ca, server, dns=(), ips=(), expired=False):
        key = self.key(name)
        cert = os.path.join(self.d, name + '-cert.pem')
        lines = ['cn = "%s"' % name, 'signing_key', 'encryption_key',
                 'tls_www_server' if server else 'tls_www_client']
        lines += ['dns_name = "%s"' % n for n in dns]
        lines += ['ip_address = "%s"' % a for a in ips]
        if expired:
            lines += ['activation_date = "2020-01-01 00:00:00"',
                      'expiration_date = "2021-01-01 00:00:00"']
        else:
            lines.append('expiration_days = 30')
        t = self._template(name, lines)
        self._run('--generate-certificate', '--load-privkey', key, '--load-ca-certificate',
                  ca[0], '--load-ca-privkey', ca[1], '--template', t, '--outfile', cert)
        return (cert, key)


def install(files, dest):
    """{name: source} copied into dest (directories made)."""
    for name, src in files.items():
        path = os.path.join(dest, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(src, 'rb') as f:
            data = f.read()
        with open(path, 'wb') as f:
            f.write(data)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Ctx:
    pass


def run(cmd, timeout=20, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def start_vireod(ctx, root, extra):
    logf = open(os.path.join(root, 'vireod.log'), 'ab')
    cmd = [ctx.args.vireod, '--root', root, '--vmm', ctx.args.vmm, '-v'] + extra
    return subprocess.Popen(cmd, stdout=logf, stderr=logf)


def vireod_fails(ctx, root, extra):
    """vireod must refuse to start; returns its stderr."""
    os.makedirs(root, exist_ok=True)
    r = run([ctx.args.vireod, '--root', root, '--vmm', ctx.args.vmm] + extra, timeout=15)
    check(r.returncode != 0, 'vireod started with %r' % extra)
    return r.stderr


def vireo(ctx, uri, *cmd):
    return run([ctx.args.vireo, '-c', uri] + list(cmd))


def uri(ctx, scheme='vireo', host='localhost', pki=None, query=''):
    u = '%s+tls://%s:%d/system' % (scheme, host, ctx.port)
    q = []
    if pki:
        q.append('pkipath=' + pki)
    if query:
        q.append(query)
    return u + ('?' + '&'.join(q) if q else '')


def t_vireo_list(ctx):
    r = vireo(ctx, uri(ctx, pki=ctx.client_dir), 'list', '--all')
    check(r.returncode == 0, 'vireo list over tls: %r' % (r.stdout + r.stderr))
    check('Name' in r.stdout, 'vireo list output: %r' % r.stdout)
    r = vireo(ctx, uri(ctx, pki=ctx.client_dir), 'hostname')
    check(r.returncode == 0, 'vireo hostname over tls: %r' % (r.stdout + r.stderr))


def t_virsh_list(ctx):
    if not VIRSH:
        log('virsh missing: skipping its check')
        return
    r = run([VIRSH, '-c', uri(ctx, scheme='qemu', pki=ctx.client_dir), 'list', '--all'])
    check(r.returncode == 0, 'virsh list over tls: %r' % (r.stdout + r.stderr))
    check('Name' in r.stdout, 'virsh list output: %r' % r.stdout)


def t_foreign_client(ctx):
    # The client trusts both CAs, so it gets past its own checks; the
    # server trusts only its CA and must refuse the certificate.
    for prog in [ctx.args.vireo] + ([VIRSH] if VIRSH else []):
        scheme = 'vireo' if prog == ctx.args.vireo else 'qemu'
        r = run([prog, '-c', uri(ctx, scheme=scheme, pki=ctx.foreign_dir), 'list'])
        check(r.returncode != 0, '%s with a foreign certificate connected' % prog)
    check('refused' in r.stderr or 'verification' in r.stderr or 'failed' in r.stderr,
          'foreign certificate error: %r' % r.stderr)
    r = vireo(ctx, uri(ctx, pki=ctx.foreign_dir), 'list')
    check('refused our certificate' in r.stderr, 'vireo foreign certificate: %r' % r.stderr)


def t_wrong_host(ctx):
    # The certificate names localhost only, not 127.0.0.1.
    r = vireo(ctx, uri(ctx, host='127.0.0.1', pki=ctx.client_dir), 'list')
    check(r.returncode != 0, 'wrong host name accepted')
    check('host name mismatch' in r.stderr and '127.0.0.1' in r.stderr,
          'wrong host name error: %r' % r.stderr)
    if VIRSH:
        r = run([VIRSH, '-c', uri(ctx, scheme='qemu', host='127.0.0.1', pki=ctx.client_dir),
                 'list'])
        check(r.returncode != 0, 'virsh: wrong host name accepted')
    # no_verify=1, as libvirt's: the server's certificate is not checked.
    r = vireo(ctx, uri(ctx, host='127.0.0.1', pki=ctx.client_dir, query='no_verify=1'), 'list')
    check(r.returncode == 0, 'no_verify=1: %r' % r.stderr)


def t_client_files(ctx):
    r = vireo(ctx, uri(ctx, pki=os.path.join(ctx.tmp, 'nowhere')), 'list')
    check(r.returncode != 0 and 'cacert.pem' in r.stderr and 'missing' in r.stderr,
          'missing client files: %r' % r.stderr)
    r = vireo(ctx, uri(ctx, pki=ctx.expired_dir), 'list')
    check(r.returncode != 0 and 'clientcert.pem' in r.stderr and 'expired' in r.stderr,
          'expired client certificate: %r' % r.stderr)


def t_plain_tcp(ctx):
    t0 = time.time()
    r = run([ctx.args.vireo, '-c', 'vireo+tcp://localhost:%d/system' % ctx.port, 'list'],
            timeout=30)
    check(r.returncode != 0, 'plain TCP client served on the TLS port')
    check(time.time() - t0 < 15, 'plain TCP client took %.1fs' % (time.time() - t0))
    t_vireo_list(ctx)


def t_slow_handshake(ctx):
    # One client sends half a ClientHello, one nothing at all: others go on.
    stalled = []
    try:
        for data in (b'\x16\x03\x01\x00', b''):
            s = socket.create_connection(('127.0.0.1', ctx.port))
            if data:
                s.sendall(data)
            stalled.append(s)
        time.sleep(0.2)
        t0 = time.time()
        t_vireo_list(ctx)
        t_virsh_list(ctx)
        check(time.time() - t0 < 10, 'served slowly beside stalled handshakes')
    finally:
        for s in stalled:
            s.close()
    t_vireo_list(ctx)


def t_server_files(ctx):
    err = vireod_fails(ctx, os.path.join(ctx.tmp, 'r-missing'),
                       ['--listen-tls', '127.0.0.1:%d' % free_port()])
    check('cacert.pem' in err and 'missing' in err, 'missing server files: %r' % err)
    err = vireod_fails(ctx, os.path.join(ctx.tmp, 'r-expired'),
                       ['--listen-tls', '127.0.0.1:%d' % free_port(), '--tls-dir',
                        ctx.expired_server_dir])
    check('servercert.pem' in err and 'expired' in err, 'expired server certificate: %r' % err)
    err = vireod_fails(ctx, os.path.join(ctx.tmp, 'r-wrongca'),
                       ['--listen-tls', '127.0.0.1:%d' % free_port(), '--tls-dir',
                        ctx.wrongca_server_dir])
    check('servercert.pem' in err and 'not issued by the CA' in err,
          'server certificate of another CA: %r' % err)


TESTS = [t_vireo_list, t_virsh_list, t_foreign_client, t_wrong_host, t_client_files,
         t_plain_tcp, t_slow_handshake, t_server_files]


def make_pki(ctx):
    pki = Pki(os.path.join(ctx.tmp, 'pki'))
    ca = pki.ca('vireo-test-ca')
    other = pki.ca('other-ca')
    server = pki.issue('server', ca, True, dns=['localhost'])
    client = pki.issue('client', ca, False)
    foreign = pki.issue('foreign-client', other, False)
    expired = pki.issue('expired-client', ca, False, expired=True)
    expired_server = pki.issue('expired-server', ca, True, dns=['localhost'], expired=True)
    wrongca_server = pki.issue('other-server', other, True, dns=['localhost'])

    # The daemon: libvirt's layout under --root.
    install({'etc/pki/CA/cacert.pem': ca[0],
             'etc/pki/vireo/servercert.pem': server[0],
             'etc/pki/vireo/private/serverkey.pem': server[1]}, ctx.root)
    # Clients: pkipath= directories (flat, as libvirt's).
    ctx.client_dir = os.path.join(ctx.tmp, 'client')
    install({'cacert.pem': ca[0], 'clientcert.pem': client[0], 'clientkey.pem': client[1]},
            ctx.client_dir)
    ctx.foreign_dir = os.path.join(ctx.tmp, 'foreign')
    both = os.path.join(pki.d, 'both-cas.pem')
    with open(both, 'w') as f:
        f.write(open(ca[0]).read() + open(other[0]).read())
    install({'cacert.pem': both, 'clientcert.pem': foreign[0], 'clientkey.pem': foreign[1]},
            ctx.foreign_dir)
    ctx.expired_dir = os.path.join(ctx.tmp, 'expired')
    install({'cacert.pem': ca[0], 'clientcert.pem': expired[0], 'clientkey.pem': expired[1]},
            ctx.expired_dir)
    ctx.expired_server_dir = os.path.join(ctx.tmp, 'expired-server')
    install({'cacert.pem': ca[0], 'servercert.pem': expired_server[0],
             'serverkey.pem': expired_server[1]}, ctx.expired_server_dir)
    ctx.wrongca_server_dir = os.path.join(ctx.tmp, 'wrongca-server')
    install({'cacert.pem': ca[0], 'servercert.pem': wrongca_server[0],
             'serverkey.pem': wrongca_server[1]}, ctx.wrongca_server_dir)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vireod', required=True)
    ap.add_argument('--vmm', required=True)
    ap.add_argument('--vireo', required=True)
    ap.add_argument('--keep', action='store_true', help='keep the temporary directory')
    args = ap.parse_args()
    if not CERTTOOL:
        print('test_tls: certtool (gnutls-bin) missing: skipped')
        return SKIP
    ctx = Ctx()
    ctx.args = args
    ctx.tmp = tempfile.mkdtemp(prefix='vireo-tls-')
    ctx.root = os.path.join(ctx.tmp, 'root')
    ctx.port = free_port()
    passed = failed = 0
    proc = None
    try:
        make_pki(ctx)
        proc = start_vireod(ctx, ctx.root, ['--listen-tls', '127.0.0.1:%d' % ctx.port])
        end = time.time() + 10
        while True:
            try:
                socket.create_connection(('127.0.0.1', ctx.port)).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > end:
                    raise Failure('vireod did not listen on TLS (see %s/vireod.log)' % ctx.root)
                time.sleep(0.05)
        for t in TESTS:
            try:
                t(ctx)
                check(proc.poll() is None, 'vireod exited')
                log('PASS ' + t.__name__)
                passed += 1
            except (Failure, subprocess.TimeoutExpired) as e:
                log('FAIL %s: %s' % (t.__name__, e))
                failed += 1
    except Failure as e:
        log('FAIL setup: %s' % e)
        failed += 1
    finally:
        if proc and proc.poll() is None:
            proc.terminate()
            proc.wait(10)
        if failed or args.keep:
            log('kept %s' % ctx.tmp)
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)
    log('%d passed, %d failed' % (passed, failed))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
