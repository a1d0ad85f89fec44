#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
# The recording proxy of the reference capture set (docs/rpc.md), unchanged
# but for this header: test_virsh.py records what virsh and rpc-test-daemon say.
"""Recording UNIX-socket proxy for libvirt RPC.
Listens on LISTEN, forwards each accepted connection to UPSTREAM, splits each
direction into libvirt packets (4-byte BE length incl. itself) and appends one
JSON line per packet to RAWDIR/<label>.jsonl (label read from LABELFILE at accept)."""
import socket, threading, json, time, os, sys, array, struct

LISTEN = sys.argv[2] if len(sys.argv) > 2 else os.environ.get('LVRPC_DIR', '/srv/lvrpc') + '/proxy.sock'
UPSTREAM = sys.argv[1] if len(sys.argv) > 1 else os.environ.get('LVRPC_DIR', '/srv/lvrpc') + '/sock/libvirt-sock'
RAWDIR = os.environ.get('LVRPC_DIR', '/srv/lvrpc') + '/raw'
LABELFILE = os.environ.get('LVRPC_DIR', '/srv/lvrpc') + '/label'
lock = threading.Lock()
counter = [0]

def pump(src, dst, direction, logf, connid, t0):
    buf = b''
    fdsize = array.array('i').itemsize
    while True:
        try:
            data, anc, flags, addr = src.recvmsg(262144, socket.CMSG_SPACE(16 * fdsize))
        except OSError:
            data, anc = b'', []
        fds = []; fds_logged = False
        for lvl, typ, cdata in anc:
            if lvl == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
                a = array.array('i'); a.frombytes(cdata[:len(cdata) - len(cdata) % fdsize]); fds.extend(a)
        if not data:
            with lock:
                logf.write(json.dumps({'t': round(time.time() - t0, 6), 'conn': connid, 'dir': direction, 'event': 'EOF'}) + '\n'); logf.flush()
            try: dst.shutdown(socket.SHUT_WR)
            except OSError: pass
            return
        buf += data
        while len(buf) >= 4:
            (plen,) = struct.unpack('>I', buf[:4])
            if len(buf) < plen:
                break
            pkt, buf = buf[:plen], buf[plen:]
            rec = {'t': round(time.time() - t0, 6), 'conn': connid, 'dir': direction, 'len': plen, 'hex': pkt.hex()}
            if fds and not fds_logged:
                rec['scm_rights_fds'] = len(fds); fds_logged = True
            with lock:
                logf.write(json.dumps(rec) + '\n'); logf.flush()
        try:
            if fds:
                dst.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', fds).tobytes())])
                for fd in fds: os.close(fd)
            else:
                dst.sendall(data)
        except OSError:
            pass


def handle(cli):
    with lock:
        counter[0] += 1
        connid = counter[0]
    try:
        label = open(LABELFILE).read().strip() or 'unlabeled'
    except OSError:
        label = 'unlabeled'
    up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    up.connect(UPSTREAM)
    logf = open(os.path.join(RAWDIR, '%s.jsonl' % label), 'a')
    t0 = time.time()
    logf.write(json.dumps({'t': 0, 'conn': connid, 'event': 'CONNECT', 'label': label, 'wallclock': t0}) + '\n'); logf.flush()
    a = threading.Thread(target=pump, args=(cli, up, 'C->S', logf, connid, t0))
    b = threading.Thread(target=pump, args=(up, cli, 'S->C', logf, connid, t0))
    a.start(); b.start(); a.join(); b.join()
    cli.close(); up.close(); logf.close()

def main():
    try: os.unlink(LISTEN)
    except FileNotFoundError: pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(LISTEN); os.chmod(LISTEN, 0o777); s.listen(16)
    print('proxy pid %d listening on %s -> %s' % (os.getpid(), LISTEN, UPSTREAM), flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()

main()
