#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireo against the same daemon as Debian's virsh: for every command of
the issue, what vireo prints (stdout and stderr) and its exit status must
equal virsh's, byte for byte, on the same daemon state. A command that
changes state runs with virsh first, is undone, then runs with vireo.
Then what virsh cannot be compared with: --json shapes, edit with a
scripted $EDITOR, the console through a pty, completion.

    test_vireo.py VIREO TEST_DAEMON DATA_DIR

DATA_DIR holds dom.xml and lvrpc-test.xml (tests/rpc/data). The daemon can
be another one (VIREO_TEST_DAEMON, see clitest.py). Exit 77 (skipped)
without virsh (apt-get install libvirt-clients).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clitest import Daemon, Pty, check, env_for, failures, run  # noqa: E402

VIRSH = shutil.which('virsh') or '/usr/bin/virsh'
UUID = 'c7a5fdbd-cdaf-9455-926a-d65c16db1809'
DOM = 'lvrpc-test'
# What virsh prints on a terminal and vireo does not (virsh's polkit agent).
POLKIT = re.compile(rb'Authorization not available\.[^\n]*\n')

# Documented differences (docs/vireo.1, DIFFERENCES FROM VIRSH).
DIFFERENCES = """
- interactive banner and prompt name vireo instead of virsh;
- virsh on a terminal prints a polkit agent notice, vireo does not;
- edit without a terminal: virsh prints "Domain '(null)' XML configuration
  edited." and exits 0; vireo prints the error, keeps the old definition and
  exits 1.
"""


class T:
    def __init__(self, vireo, daemon, tmp):
        self.vireo = vireo
        self.d = daemon
        self.tmp = tmp
        self.env = env_for(tmp)

    def virsh(self, args, uri=None, stdin=None, env=None):
        return run([VIRSH, '-c', uri or self.d.uri] + args, env or self.env, stdin, self.tmp)

    def ours(self, args, uri=None, stdin=None, env=None):
        return run([self.vireo, '-c', uri or self.d.uri] + args, env or self.env, stdin, self.tmp)

    def same(self, args, undo=None, uri=None, stdin=None, env=None, norm=None):
        """virsh ARGS, [virsh UNDO], vireo ARGS: outputs and status equal."""
        want = self.virsh(args, uri, stdin, env)
        if undo:
            self.virsh(undo)
        got = self.ours(args, uri, stdin, env)
        if norm:
            want = tuple(norm(x) if isinstance(x, str) else x for x in want)
            got = tuple(norm(x) if isinstance(x, str) else x for x in got)
        label = ' '.join(args) if args else '(interactive)'
        if check(got == want, 'vireo %s differs from virsh' % label):
            print('ok   %s' % label)
        else:
            print('   virsh: rc=%d\n--stdout--\n%s--stderr--\n%s' % (want[2], want[0], want[1]))
            print('   vireo: rc=%d\n--stdout--\n%s--stderr--\n%s' % (got[2], got[0], got[1]))
        return got

    def vireo_ok(self, args, what=None, **kw):
        out, err, rc = self.ours(args, **kw)
        check(rc == 0, 'vireo %s: rc %d: %s%s' % (' '.join(args), rc, out, err))
        if what:
            check(re.search(what, out), 'vireo %s: %r not in %r' % (' '.join(args), what, out))
        return out


def host_commands(t):
    same = t.same
    if subprocess.run([VIRSH, '--version'], capture_output=True).stdout.strip() == b'9.0.0':
        same(['version'])
        same(['version', '--daemon'])
    else:
        # Only the hypervisor lines: the library lines are virsh's own version.
        out = t.vireo_ok(['version'])
        want = t.virsh(['version'])[0]
        check(out.splitlines()[3:] == want.splitlines()[3:], 'version: hypervisor lines')
    same(['hostname'])
    same(['uri'])
    same(['nodeinfo'])
    same(['capabilities'])
    same(['-q', 'nodeinfo'])


def list_and_info(t):
    same = t.same
    same(['list', '--all'])
    same(['list'])
    same(['define', 'dom.xml'], undo=['undefine', DOM])
    same(['define', 'nope.xml'])
    same(['define', 'bad.xml'])
    same(['-q', 'define', 'dom.xml'], undo=['undefine', DOM])
    for args in (['list', '--all'], ['list', '--all', '--name'], ['list', '--all', '--uuid'],
                 ['list', '--all', '--id'], ['list', '--all', '--title'],
                 ['list', '--all', '--uuid', '--name'], ['list', '--all', '--title', '--uuid'],
                 ['list', '--inactive'], ['list', '--state-shutoff'], ['list', '--state-running'],
                 ['list', '--state-paused'], ['list', '--state-other'], ['list', '--persistent'],
                 ['list', '--all', '--transient'], ['list', '--all', '--managed-save'],
                 ['list', '--all', '--autostart'], ['list', '--all', '--no-autostart'],
                 ['-q', 'list', '--all'], ['list', '--table', '--name'], ['list', '--bogus'],
                 ['dominfo', DOM], ['dominfo', UUID], ['dominfo', '--domain', DOM],
                 ['dominfo', 'no-such-domain'], ['dominfo'], ['dominfo', DOM, 'extra'],
                 ['domstate', DOM], ['domstate', DOM, '--reason'], ['domstate', 'nope'],
                 ['domid', DOM], ['domid', UUID], ['domid', 'nope'], ['domname', UUID],
                 ['domname', DOM], ['domuuid', DOM], ['domuuid', UUID], ['dumpxml', DOM],
                 ['dumpxml', DOM, '--inactive'], ['dumpxml', 'nope'], ['vcpucount', DOM],
                 ['vcpucount', DOM, '--maximum', '--config'], ['vcpucount', DOM, '--live'],
                 ['vcpucount', DOM, '--current', '--config'],
                 ['vcpucount', DOM, '--active', '--maximum'],
                 ['list --all; domstate %s --reason' % DOM], ['frobnicate'],
                 ['dominfo %s "unterminated' % DOM]):
        same(args)
    same(['autostart', DOM])
    same(['dominfo', DOM])
    same(['list', '--all', '--autostart'])
    same(['autostart', '--disable', DOM])
    same(['autostart', 'nope'])


def life_cycle(t):
    same = t.same
    same(['start', DOM], undo=['destroy', DOM])
    for args in (['list'], ['list', '--all'], ['list', '--id'], ['dominfo', DOM],
                 ['domstate', DOM, '--reason'], ['domid', DOM], ['vcpucount', DOM],
                 ['start', DOM], ['list', '--state-running', '--name']):
        same(args)
    same(['suspend', DOM], undo=['resume', DOM])
    same(['domstate', DOM, '--reason'])
    same(['list', '--state-paused'])
    same(['resume', DOM], undo=['suspend', DOM])
    same(['reboot', DOM])
    same(['reset', DOM])
    same(['reboot', DOM, '--mode', 'acpi'])
    same(['reboot', DOM, '--mode', 'bogus'])
    same(['shutdown', DOM, '--mode', 'bogus'])
    same(['-q', 'reset', DOM])
    same(['destroy', DOM], undo=['start', DOM])
    same(['start', DOM, '--paused'], undo=['destroy', DOM])
    same(['shutdown', DOM], undo=['start', DOM])
    for args in (['destroy', DOM], ['shutdown', DOM], ['reboot', DOM], ['reset', DOM],
                 ['suspend', DOM], ['resume', DOM], ['domstate', DOM, '--reason'],
                 ['start', 'nope'], ['destroy', 'nope'], ['suspend', 'nope']):
        same(args)
    same(['start', UUID], undo=['destroy', DOM])
    same(['destroy', UUID], undo=['start', DOM])


def memory_vcpus(t):
    same = t.same
    for args in (['setmem', DOM, '32M', '--config'], ['dominfo', DOM],
                 ['setmem', DOM, '--size', '16384', '--config'], ['setmem', DOM, '64M'],
                 ['setmem', DOM, '999G', '--config'], ['setmem', DOM, 'abc'],
                 ['setmem', DOM, '-5'], ['setmem', DOM, '1x'], ['setmem', DOM],
                 ['setmem', DOM, '1M', '--current', '--live'],
                 ['setvcpus', DOM, '2', '--maximum', '--config'],
                 ['setvcpus', DOM, '2', '--config'], ['vcpucount', DOM], ['dominfo', DOM],
                 ['setvcpus', DOM, '4', '--config'], ['setvcpus', DOM, '0', '--config'],
                 ['setvcpus', DOM, '-1', '--config'], ['setvcpus', DOM, 'abc'],
                 ['setvcpus', DOM, '2', '--maximum'], ['setvcpus'],
                 ['setvcpus', DOM, '--count', '1', '--config', '--current'],
                 ['setvcpus', DOM, '1', '--config'], ['setmem', DOM, '64M', '--config']):
        same(args)


def read_only(t):
    same = t.same
    same(['list', '--all'], uri=t.d.ro_uri)
    same(['-r', 'list', '--all'], uri=t.d.ro_uri)
    same(['-r', 'dominfo', DOM], uri=t.d.ro_uri)
    same(['-r', 'start', DOM], uri=t.d.ro_uri)
    same(['-r', 'autostart', DOM], uri=t.d.ro_uri)
    missing = 'qemu+unix:///system?socket=' + os.path.join(t.tmp, 'missing')
    same(['list'], uri=missing)
    same(['frobnicate'], uri=missing)
    # virsh then tries libvirtd's default socket; we name the scheme we do not know.
    out, err, rc = t.ours(['list'], uri='foo:///system')
    check(rc == 1 and err == 'error: failed to connect to the hypervisor\nerror: no connection '
          'driver available for foo:///system\n', 'unknown URI scheme: %r' % err)


def interactive(t):
    """A session piped in, as the captures' interactive one: same output but the name."""
    def norm(s):
        return s.replace('virsh', 'vireo')
    script = ('version\nlist --all\nfrobnicate\ndominfo nope\ndomstate %s --reason; uri\n'
              'echo-not-a-command\n\nquit\n' % DOM).encode()
    t.same([], stdin=script, norm=norm)
    t.same(['-q'], stdin=script, norm=norm)
    t.same([], stdin=b'list --all', norm=norm)           # end of input, no newline
    t.same([], stdin=b'dominfo %s\nexit\nversion\n' % DOM.encode(), norm=norm)
    t.same(['-r'], uri=t.d.ro_uri, stdin=b'list --all\nstart %s\n' % DOM.encode(), norm=norm)
    t.same([], uri='qemu+unix:///system?socket=/nonexistent', stdin=b'list\n', norm=norm)


def json_shapes(t):
    """--json: one line of JSON, documented in docs/vireo.1."""
    def js(args):
        out = t.vireo_ok(args + ['--json'])
        check(out.endswith('\n') and out.count('\n') == 1, '%s --json: one line: %r' % (args, out))
        return json.loads(out)

    doms = js(['list', '--all'])
    check(isinstance(doms, list) and doms and set(doms[0]) == {'id', 'name', 'uuid', 'state'},
          'list --json: %r' % doms)
    d = [x for x in doms if x['name'] == DOM][0]
    check(d['uuid'] == UUID and d['state'] in ('running', 'shut off'), 'list --json: %r' % d)
    check(js(['list', '--all', '--title'])[0].get('title') == '', 'list --title --json')
    info = js(['dominfo', DOM])
    for k in ('id', 'name', 'uuid', 'os_type', 'state', 'cpus', 'cpu_time_ns', 'max_memory_kib',
              'used_memory_kib', 'persistent', 'autostart', 'managed_save', 'messages'):
        check(k in info, 'dominfo --json lacks %s: %r' % (k, info))
    check(info['name'] == DOM and info['persistent'] is True, 'dominfo --json: %r' % info)
    st = js(['domstate', DOM])
    check(set(st) == {'state', 'reason'}, 'domstate --json: %r' % st)
    node = js(['nodeinfo'])
    check(node.get('cpus') == 4 or not t.d.fake, 'nodeinfo --json: %r' % node)
    check(set(node) == {'cpu_model', 'cpus', 'mhz', 'sockets', 'cores_per_socket',
                        'threads_per_core', 'numa_cells', 'memory_kib'}, 'nodeinfo: %r' % node)
    ver = js(['version', '--daemon'])
    check(ver.get('api') == '9.0.0' and 'hypervisor_version' in ver and
          ver.get('client', '').startswith('vireo '), 'version --json: %r' % ver)
    vc = js(['vcpucount', DOM])
    check('maximum' in vc and 'config' in vc['maximum'], 'vcpucount --json: %r' % vc)
    check(js(['vcpucount', DOM, '--maximum', '--config']) == {'count': vc['maximum']['config']},
          'vcpucount --maximum --config --json')
    check(js(['domuuid', DOM]) == {'uuid': UUID}, 'domuuid --json')
    check(js(['domname', UUID]) == {'name': DOM}, 'domname --json')
    check('id' in js(['domid', DOM]), 'domid --json')
    check(js(['uri']) == {'uri': t.d.uri}, 'uri --json')
    check('hostname' in js(['hostname']), 'hostname --json')
    out, err, rc = t.ours(['list', '--json', '--table'])
    check(rc == 1 and 'mutually exclusive' in err, 'list --json --table: %s' % err)


def write_editor(tmp, name, body):
    path = os.path.join(tmp, name)
    with open(path, 'w') as f:
        f.write('#!/bin/sh\n' + body)
    os.chmod(path, 0o755)
    return path


EDOM = 'edit-test'


def edit(t):
    """vireo edit with a scripted $EDITOR; the old definition is never lost."""
    tmp = t.tmp
    DOM = EDOM
    tmpfile = re.compile(r'/\S*/vi(rsh|reo)\w{6}\.xml')

    def norm(s):
        return tmpfile.sub('TMPFILE', s)
    none = write_editor(tmp, 'ed-none', 'true\n')
    good = write_editor(tmp, 'ed-good', 'sed -i "s|</domain>|  <title>edited</title>\\n</domain>|" "$1"\n')
    bad = write_editor(tmp, 'ed-bad', 'echo "<domain><name>x</name>" > "$1"\n')
    garbage = write_editor(tmp, 'ed-garbage', 'echo garbage > "$1"\n')
    # the first call breaks the XML, the second starts again from the original and fixes it
    state, orig = os.path.join(tmp, 'flip.state'), os.path.join(tmp, 'flip.orig')
    flip = write_editor(tmp, 'ed-flip',
                        'if [ -e %s ]; then cp %s "$1"; '
                        'sed -i "s|</domain>|  <title>second</title>\\n</domain>|" "$1"; '
                        'else touch %s; cp "$1" %s; echo garbage > "$1"; fi\n'
                        % (state, orig, state, orig))
    t.vireo_ok(['define', 'edit.xml'])
    before = t.ours(['dumpxml', DOM, '--inactive'])[0]
    t.same(['edit', DOM], env=env_for(tmp, EDITOR=none))
    t.same(['edit', 'nope'], env=env_for(tmp, EDITOR=none))
    t.same(['edit', DOM], env=env_for(tmp, EDITOR='false'), norm=norm)
    out, err, rc = t.ours(['edit', DOM], env=env_for(tmp, EDITOR=good))
    check(rc == 0 and out == "Domain '%s' XML configuration edited.\n\n" % DOM,
          'edit good: rc %d %r %r' % (rc, out, err))
    after = t.ours(['dumpxml', DOM, '--inactive'])[0]
    check('<title>edited</title>' in after, 'edit good: not defined: %s' % after)
    check(t.ours(['list', '--all', '--title', '--name'])[2] == 0, 'list after edit')
    # VISUAL wins over EDITOR
    out, err, rc = t.ours(['edit', DOM], env=env_for(tmp, EDITOR=good, VISUAL=none))
    check(rc == 0 and 'not changed' in out, 'edit VISUAL: %r %r' % (out, err))
    for ed in (bad, garbage):
        out, err, rc = t.ours(['edit', DOM], env=env_for(tmp, EDITOR=ed))
        check(rc == 1 and 'not well-formed' in err and 'not changed' in err,
              'edit bad without a terminal: rc %d %r %r' % (rc, out, err))
        check(t.ours(['dumpxml', DOM, '--inactive'])[0] == after,
              'edit bad: the old definition was not kept')
    # On a terminal: the question, '?', then 'n' keeps the old definition.
    p = Pty([t.vireo, '-c', t.d.uri, 'edit', DOM], env_for(tmp, EDITOR=garbage), cwd=tmp)
    check(p.expect(b'Failed. Try again? [y,n,i,f,?]: '), 'edit pty: no question: %r' % p.buf)
    p.send(b'?')
    check(p.expect(b'? - print this help\r\n'), 'edit pty: no help: %r' % p.buf)
    p.send(b'n')
    check(p.wait() == 1, 'edit pty n: exit status')
    check(t.ours(['dumpxml', DOM, '--inactive'])[0] == after, 'edit n: definition changed')
    # 'i' drops validation and asks again without 'i'; then 'y' edits again and succeeds.
    p = Pty([t.vireo, '-c', t.d.uri, 'edit', DOM], env_for(tmp, EDITOR=flip), cwd=tmp)
    check(p.expect(b'[y,n,i,f,?]: '), 'edit flip: no question: %r' % p.buf)
    p.send(b'i')
    check(p.expect(b'[y,n,f,?]: '), 'edit flip: i did not drop validation: %r' % p.buf)
    p.send(b'y')
    check(p.expect(b"XML configuration edited."), 'edit flip: not edited: %r' % p.buf)
    check(p.wait() == 0, 'edit flip: exit status')
    check('<title>second</title>' in t.ours(['dumpxml', DOM, '--inactive'])[0],
          'edit flip: second edit not defined')
    # virsh on a terminal shows the same question and help.
    p = Pty([VIRSH, '-c', t.d.uri, 'edit', DOM], env_for(tmp, EDITOR=garbage), cwd=tmp)
    vq = p.expect(b'[y,n,i,f,?]: ')
    p.send(b'?')
    p.expect(b'? - print this help\r\n')
    p.send(b'n')
    p.wait()
    q = Pty([t.vireo, '-c', t.d.uri, 'edit', DOM], env_for(tmp, EDITOR=garbage), cwd=tmp)
    q.expect(b'[y,n,i,f,?]: ')
    q.send(b'?')
    q.expect(b'? - print this help\r\n')
    q.send(b'n')
    q.wait()
    tail_v = POLKIT.sub(b'', p.buf).split(b'\rFailed', 1)[-1]
    tail_o = q.buf.split(b'\rFailed', 1)[-1]
    check(vq and tail_v == tail_o, 'edit question differs:\n virsh %r\n vireo %r' % (tail_v, tail_o))
    t.vireo_ok(['undefine', DOM])
    check(before, 'edit: no XML at first')


def console(t):
    """Console on a pty: greeting, data both ways, ^] (or -e) to leave."""
    if t.ours(['domstate', DOM])[0] != 'running\n\n':
        t.vireo_ok(['start', DOM])

    def session(argv, escape=b'\x1d'):
        p = Pty(argv, t.env, cwd=t.tmp)
        ok = p.expect(b'vireo test console\r\n') if t.d.fake else p.expect(b'Escape character')
        p.send(b'hello\r')
        if t.d.fake:
            ok = ok and p.expect(b'HELLO')
        p.send(escape)
        rc = p.wait()
        return POLKIT.sub(b'', p.buf), rc, ok

    for extra, esc in (([], b'\x1d'), (['-e', '^a'], b'\x01'), (['-e', '~'], b'~')):
        vb, vrc, vok = session([VIRSH] + extra + ['-c', t.d.uri, 'console', DOM], esc)
        ob, orc, ook = session([t.vireo] + extra + ['-c', t.d.uri, 'console', DOM], esc)
        check(ook and orc == 0, 'console %s: rc %d %r' % (extra, orc, ob))
        check(vb == ob and vrc == orc, 'console %s differs:\n virsh %r\n vireo %r' %
              (extra, vb, ob))
    t.same(['console', DOM])                          # no terminal
    t.same(['console', 'nope'])
    # the server ends the stream: the domain stops under the console
    p = Pty([t.vireo, '-c', t.d.uri, 'console', DOM], t.env, cwd=t.tmp)
    p.expect(b'Escape character')
    if t.d.fake:
        p.expect(b'vireo test console')     # the stream is open
    else:
        time.sleep(1)
    t.vireo_ok(['destroy', DOM])
    check(p.wait() == 0, 'console: domain stopped: exit status: %r' % p.buf)
    t.same(['console', DOM])                          # not running
    # start --console
    p = Pty([t.vireo, '-c', t.d.uri, 'start', DOM, '--console'], t.env, cwd=t.tmp)
    check(p.expect(b"Domain '%s' started" % DOM.encode()) and p.expect(b'Escape character is ^]')
          and (not t.d.fake or p.expect(b'vireo test console')), 'start --console: %r' % p.buf)
    p.send(b'\x1d')
    check(p.wait() == 0, 'start --console: exit status')


def completion(t):
    def comp(*words):
        out, err, rc = run([t.vireo, '-c', t.d.uri, 'complete', '--'] + list(words), t.env)
        check(rc == 0, 'complete %s: rc %d' % (words, rc))
        return out.split()

    check('list' in comp('li') and 'start' not in comp('li'), 'complete li: %r' % comp('li'))
    check(comp('list', '--al') == ['--all'], 'complete list --al: %r' % comp('list', '--al'))
    check(DOM in comp('dominfo', ''), 'complete dominfo: %r' % comp('dominfo', ''))
    check(DOM in comp('dominfo', '--domain', 'lv'), 'complete --domain value')
    check('--reason' in comp('domstate', DOM, '--'), 'complete domstate options')
    check(comp('nosuchcommand', '') == [], 'complete unknown command')
    # the bash completion script (cli/vireo.bash-completion) on top of it
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'cli',
                          'vireo.bash-completion')
    bash = ('source %s; COMP_WORDS=(vireo -c "%s" dominfo lv); COMP_CWORD=4; _vireo_complete; '
            'echo "${COMPREPLY[*]}"; COMP_WORDS=(vireo --q); COMP_CWORD=1; _vireo_complete; '
            'echo "${COMPREPLY[*]}"' % (script, t.d.uri))
    out, err, rc = run(['bash', '-c', bash], dict(t.env, PATH=os.path.dirname(t.vireo) + ':' +
                                                   os.environ.get('PATH', '')))
    check(out == '%s\n--quiet\n' % DOM, 'bash completion: %r %r' % (out, err))
    # readline in the interactive shell: TAB completes a command and a domain
    p = Pty([t.vireo, '-c', t.d.uri], t.env, cwd=t.tmp)
    p.expect(b'vireo # ')
    p.send(b'domst\t%s\t--rea\t\r' % DOM[:3].encode())
    check(p.expect(b'domstate %s --reason' % DOM.encode()), 'readline completion: %r' % p.buf)
    check(p.expect(b'running (') or p.expect(b'shut off ('), 'readline command ran: %r' % p.buf)
    p.send(b'quit\r')
    check(p.wait() == 0, 'interactive quit on a terminal')
    hist = os.path.join(t.tmp, '.cache', 'vireo', 'history')
    check(os.path.exists(hist) and 'domstate' in open(hist).read(), 'history file')


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    vireo, daemon, data = (os.path.abspath(a) for a in sys.argv[1:])
    if not os.path.exists(VIRSH):
        print('SKIP: virsh not installed (apt-get install libvirt-clients)')
        return 77
    tmp = tempfile.mkdtemp(prefix='vireo-cli-')
    shutil.copy(os.path.join(data, 'dom.xml'), tmp)
    with open(os.path.join(data, 'dom.xml')) as f:
        xml = f.read().replace('lvrpc-test', EDOM).replace(UUID, UUID[:-4] + 'e017')
    with open(os.path.join(tmp, 'edit.xml'), 'w') as f:
        f.write(xml)
    with open(os.path.join(tmp, 'bad.xml'), 'w') as f:
        f.write('<foo/>\n')
    d = Daemon(daemon, tmp, os.path.join(data, 'lvrpc-test.xml'))
    t = T(vireo, d, tmp)
    try:
        host_commands(t)
        list_and_info(t)
        memory_vcpus(t)
        json_shapes(t)
        edit(t)
        read_only(t)
        interactive(t)
        life_cycle(t)
        json_shapes(t)
        completion(t)
        console(t)
        t.same(['undefine', DOM], undo=['define', 'dom.xml'])
        t.same(['undefine', DOM])
        t.same(['list', '--all'])
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print('documented differences from virsh:' + DIFFERENCES)
    if failures:
        print('%d failure(s)' % len(failures))
        return 1
    print('all vireo checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
