# SPDX-License-Identifier: GPL-2.0-or-later
"""Shared by the cli tests: a daemon to talk to, runs on pipes and ptys.

The daemon is tests/rpc/rpc-test-daemon, a fake in-memory driver started as
`rpc-test-daemon --socket {socket} --ro-socket {ro_socket} [--xml FILE]`,
unless VIREO_TEST_DAEMON names another command line. {socket}, {ro_socket} and
{root} (an empty directory) are filled in; the daemon is ready when {socket}
accepts connections. It gets SIGTERM at the end and must exit 0 (under ASan
a leak makes that fail).

vireod has no socket options: `vireod --root DIR --vmm PATH` keeps all its
state under DIR and listens on DIR/run/vireo/vireo-sock and vireo-sock-ro
(docs/vireod.8). Point {socket} and {ro_socket} at those, then exec it:

    VIREO_TEST_DAEMON="sh -c 'mkdir -p {root}/run/vireo &&
        ln -s {root}/run/vireo/vireo-sock {socket} &&
        ln -s {root}/run/vireo/vireo-sock-ro {ro_socket} &&
        exec /path/vireod --root {root} --vmm /path/vireo-vmm'"

A real daemon starts without the fake one's prepared domain (--xml), so
tests that expect it will fail there.
"""
import os
import pty
import select
import shlex
import signal
import socket
import subprocess
import time

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print('FAIL: ' + what, flush=True)
    return cond


class Daemon:
    def __init__(self, test_daemon, tmp, lvrpc_xml=None):
        self.tmp = tmp
        self.sock = os.path.join(tmp, 'sock')
        self.ro_sock = os.path.join(tmp, 'sock-ro')
        root = os.path.join(tmp, 'root')
        os.makedirs(root, exist_ok=True)
        template = os.environ.get('VIREO_TEST_DAEMON')
        if template:
            argv = [a.format(socket=self.sock, ro_socket=self.ro_sock, root=root)
                    for a in shlex.split(template)]
            self.fake = False
        else:
            argv = [test_daemon, '--socket', self.sock, '--ro-socket', self.ro_sock]
            if lvrpc_xml:
                argv += ['--xml', lvrpc_xml]
            self.fake = True
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, cwd=tmp)
        self.uri = 'qemu+unix:///system?socket=' + self.sock
        self.ro_uri = 'qemu+unix:///system?socket=' + self.ro_sock
        end = time.time() + 30
        while time.time() < end:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.sock)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('daemon did not come up: %s' % argv)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        check(self.proc.returncode == 0, 'daemon exit status %d' % self.proc.returncode)


def env_for(tmp, **extra):
    env = dict(os.environ, HOME=tmp, XDG_CONFIG_HOME=tmp + '/.config',
               XDG_CACHE_HOME=tmp + '/.cache', XDG_RUNTIME_DIR=tmp, LC_ALL='C')
    for k in ('LIBVIRT_DEFAULT_URI', 'VIRSH_DEFAULT_CONNECT_URI', 'VIREO_DEFAULT_URI',
              'VISUAL', 'EDITOR'):
        env.pop(k, None)
    env.update(extra)
    return env


def run(argv, env, stdin=None, cwd=None, timeout=60):
    """(stdout, stderr, rc); stdin is bytes or None (/dev/null)."""
    p = subprocess.run(argv, input=stdin if stdin is not None else b'',
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                       timeout=timeout)
    return p.stdout.decode(), p.stderr.decode(), p.returncode


class Pty:
    """A program on a pseudo terminal: type, read, wait."""

    def __init__(self, argv, env, cwd=None):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            if cwd:
                os.chdir(cwd)
            os.execvpe(argv[0], argv, env)
        self.buf = b''

    def expect(self, what, timeout=10):
        end = time.time() + timeout
        while what not in self.buf and time.time() < end:
            r, _, _ = select.select([self.fd], [], [], 0.1)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    break
                if not data:
                    break
                self.buf += data
        return what in self.buf

    def send(self, data):
        os.write(self.fd, data)

    def wait(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.drain()
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            self.drain(0.1)
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        return -9

    def drain(self, timeout=0.0):
        while True:
            r, _, _ = select.select([self.fd], [], [], timeout)
            if not r:
                return
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                return
            if not data:
                return
            self.buf += data
