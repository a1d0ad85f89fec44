#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireo-img against qemu-img 7.2, both directions (docs/vireo-img.1).

Images vireo-img makes and changes must pass `qemu-img check` and convert
to the expected bytes; images qemu-img makes (and qemu-io writes) must
convert identically through vireo-img; info, map and check must print what
qemu-img prints; bad input must fail clearly with qemu-img's exit codes.
Reuses the helpers of compat.py (the library-level comparison).

usage: img_compat.py VIREO-IMG
"""
import json
import os
import random
import shutil
import subprocess
import sys
import time

import compat
from compat import case, qemu_check_clean, qemu_raw, run

IMG = None


def img(*args, check=True):
    return run(IMG, *args, check=check)


def img_raw(path, out, *opts):
    img("convert", *opts, "-O", "raw", path, out)
    with open(out, "rb") as f:
        return f.read()


def same_reading(d, path):
    """vireo-img convert and qemu-img convert give the same raw bytes."""
    a = img_raw(path, os.path.join(d, "ours.raw"))
    b = qemu_raw(path, os.path.join(d, "ref.raw"))
    assert a == b, "%s: vireo-img convert differs from qemu-img convert" % path


def both(d, *args, files=()):
    """Runs a subcommand in both tools; returns (ours, theirs) stdout+status."""
    q = run("qemu-img", *args, check=False)
    v = img(*args, check=False)
    return (v.stdout, v.returncode), (q.stdout, q.returncode)


def assert_same(d, *args):
    ours, theirs = both(d, *args)
    assert ours == theirs, "%s differs:\n--- vireo-img (%d)\n%s--- qemu-img (%d)\n%s" % (
        " ".join(map(str, args)), ours[1], ours[0], theirs[1], theirs[0])


def pattern(size, seed):
    rnd = random.Random(seed)
    out = bytearray(size)
    for off in range(0, size, 65536):
        kind = rnd.randrange(3)
        if kind == 0:
            out[off:off + 65536] = rnd.randbytes(65536)
        elif kind == 1:
            out[off:off + 4096] = bytes([rnd.randrange(1, 256)]) * 4096
    return bytes(out)


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


@case
def test_ours_pass_qemu_check(d):
    size = 4 << 20
    data = pattern(size, 1)
    src = os.path.join(d, "src.raw")
    write_file(src, data)
    for opts in (["-o", "cluster_size=4k"], [], ["-o", "cluster_size=2M,lazy_refcounts=on"],
                 ["-o", "compat=0.10"], ["-o", "compression_type=zstd"],
                 ["-o", "preallocation=metadata"]):
        out = os.path.join(d, "o.qcow2")
        img("create", "-q", "-f", "qcow2", *opts, out, str(size))
        qemu_check_clean(out)
        img("convert", "-n", "-O", "qcow2", src, out)
        qemu_check_clean(out)
        assert qemu_raw(out, os.path.join(d, "r.raw")) == data, opts
        for compress in (False, True) if "preallocation=metadata" not in opts else (False,):
            out2 = os.path.join(d, "c.qcow2")
            img("convert", *(["-c"] if compress else []), "-O", "qcow2", *opts, src, out2)
            qemu_check_clean(out2)
            assert qemu_raw(out2, os.path.join(d, "r.raw")) == data, (opts, compress)
            if compress:
                m = json.loads(run("qemu-img", "map", "--output=json", out2).stdout)
                assert any(e["data"] and "offset" not in e for e in m), "nothing compressed"
    # Raw targets are sparse where the source is zero.
    out = os.path.join(d, "o.raw")
    img("convert", "-O", "raw", os.path.join(d, "c.qcow2"), out)
    with open(out, "rb") as f:
        assert f.read() == data
    assert os.stat(out).st_blocks * 512 < size


@case
def test_snapshots_resize_by_us(d):
    p = os.path.join(d, "s.qcow2")
    img("create", "-q", "-f", "qcow2", p, "2M")
    run("qemu-io", "-c", "write -P 0xaa 0 1M", p)
    img("snapshot", "-c", "one", p)
    run("qemu-io", "-c", "write -P 0xbb 0 64k", p)
    out = run("qemu-img", "snapshot", "-l", p).stdout
    assert "one" in out, out
    assert_same(d, "snapshot", "-l", p)
    qemu_check_clean(p)
    img("snapshot", "-a", "one", p)
    qemu_check_clean(p)
    got = qemu_raw(p, os.path.join(d, "a.raw"))
    assert got == b"\xaa" * (1 << 20) + bytes(1 << 20), "apply"
    img("snapshot", "-d", "one", p)
    qemu_check_clean(p)
    assert "one" not in run("qemu-img", "snapshot", "-l", p).stdout
    p2 = img("snapshot", "-d", "nope", p, check=False)
    assert p2.returncode == 1 and p in p2.stderr and "nope" in p2.stderr, p2.stderr
    # Resize (grow, relative), then writes past the old end.
    assert img("resize", p, "+3M").stdout == "Image resized.\n"
    run("qemu-io", "-c", "write -P 0xcc 4M 64k", p)
    qemu_check_clean(p)
    got = qemu_raw(p, os.path.join(d, "a.raw"))
    assert len(got) == 5 << 20 and got[4 << 20:(4 << 20) + 65536] == b"\xcc" * 65536
    r = img("resize", p, "1M", check=False)
    assert r.returncode == 1 and "--shrink" in r.stderr, r.stderr
    raw = os.path.join(d, "s.raw")
    img("create", "-q", "-f", "raw", raw, "3M")
    img("resize", "-f", "raw", "--shrink", raw, "-1M")
    assert os.path.getsize(raw) == 2 << 20


@case
def test_chains_by_us(d):
    base = os.path.join(d, "base.qcow2")
    img("create", "-q", "-f", "qcow2", base, "4M")
    run("qemu-io", "-c", "write -P 0x11 0 4M", base)
    os.mkdir(os.path.join(d, "sub"))
    top = os.path.join(d, "sub", "top.qcow2")
    img("create", "-q", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", top)
    run("qemu-io", "-c", "write -P 0x22 1M 64k", top)
    qemu_check_clean(top)
    same_reading(d, top)
    want = qemu_raw(top, os.path.join(d, "want.raw"))
    # Safe rebase onto an empty base keeps the contents.
    other = os.path.join(d, "other.qcow2")
    img("create", "-q", "-f", "qcow2", other, "4M")
    run("qemu-io", "-c", "write -P 0x33 2M 64k", other)
    img("rebase", "-b", "../other.qcow2", "-F", "qcow2", top)
    qemu_check_clean(top)
    assert qemu_raw(top, os.path.join(d, "r.raw")) == want, "safe rebase"
    info = json.loads(run("qemu-img", "info", "--output=json", top).stdout)
    assert info["backing-filename"] == "../other.qcow2", info
    # Unsafe rebase back (same data below 2M+64k differs: only the header changes).
    img("rebase", "-u", "-b", "../base.qcow2", "-F", "qcow2", top)
    assert json.loads(run("qemu-img", "info", "--output=json", top).stdout)[
        "backing-filename"] == "../base.qcow2"
    qemu_check_clean(top)
    # Commit into the base, which then reads like the top did.
    run("qemu-io", "-c", "write -P 0x44 3M 4k", top)
    want = qemu_raw(top, os.path.join(d, "want.raw"))
    assert img("commit", top).stdout == "Image committed.\n"
    qemu_check_clean(top)
    qemu_check_clean(base)
    assert qemu_raw(base, os.path.join(d, "b.raw")) == want, "commit"
    assert qemu_raw(top, os.path.join(d, "t.raw")) == want, "top after commit"
    # Removing the backing file with a safe rebase copies everything in.
    img("rebase", "-b", "", top)
    qemu_check_clean(top)
    assert qemu_raw(top, os.path.join(d, "t.raw")) == want, "rebase -b ''"
    assert "backing-filename" not in run("qemu-img", "info", "--output=json", top).stdout


QEMU_CREATE_OPTS = [
    [], ["-o", "cluster_size=4k"], ["-o", "cluster_size=2M"], ["-o", "compat=0.10"],
    ["-o", "lazy_refcounts=on"], ["-o", "preallocation=metadata"],
    ["-o", "compression_type=zstd"], ["-o", "preallocation=off,cluster_size=16k"],
]


@case
def test_qemu_images_read_by_us(d):
    writes = []
    for w in compat.QEMU_IO_WRITES:
        writes += ["-c", w]
    for opts in QEMU_CREATE_OPTS:
        p = os.path.join(d, "q.qcow2")
        run("qemu-img", "create", "-q", "-f", "qcow2", *opts, p, "10M")
        # Compressed writes need clusters nothing was ever allocated to.
        plain = any("preallocation=metadata" in o for o in opts)
        run("qemu-io", "-f", "qcow2", *writes, "-c",
            "write %s-P 0x77 8M 2M" % ("" if plain else "-c "), p)
        same_reading(d, p)
        for out in ("human", "json"):
            assert_same(d, "info", "--output", out, p)
            assert_same(d, "map", "--output", out, p) if out == "json" else None
            assert_same(d, "check", "--output", out, p)
        run("qemu-img", "snapshot", "-c", "s1", p)
        assert_same(d, "info", "--output", "json", p)
        assert_same(d, "snapshot", "-l", p)
    # compressed clusters converted by qemu, both compression types
    src = os.path.join(d, "src.raw")
    write_file(src, pattern(2 << 20, 5))
    for ct in ("zlib", "zstd"):
        p = os.path.join(d, ct + ".qcow2")
        run("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "compression_type=" + ct, src, p)
        same_reading(d, p)
        assert_same(d, "map", "--output", "json", p)
        assert_same(d, "check", p)
    # raw, and a chain with a relative path, human and JSON, --backing-chain
    raw = os.path.join(d, "b.raw")
    run("qemu-img", "create", "-q", "-f", "raw", raw, "3M")
    run("qemu-io", "-f", "raw", "-c", "write -P 1 64k 64k", raw)
    os.mkdir(os.path.join(d, "sub"))
    top = os.path.join(d, "sub", "t.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "../b.raw", "-F", "raw", top, "5M")
    run("qemu-io", "-c", "write -P 2 1M 4k", top)
    same_reading(d, top)
    for out in ("human", "json"):
        for p in (raw, top):
            assert_same(d, "info", "--output", out, p)
            assert_same(d, "map", "--output", out, p)
        assert_same(d, "info", "--backing-chain", "--output", out, top)
    assert_same(d, "compare", top, top)
    assert_same(d, "compare", raw, top)


@case
def test_check_agrees(d):
    p = os.path.join(d, "l.qcow2")
    for repair in ([], ["-r", "leaks"], ["-r", "all"]):
        for out in ("human", "json"):
            for name in ("q", "v"):
                path = os.path.join(d, name + ".qcow2")
                run("qemu-img", "create", "-q", "-f", "qcow2", path, "10M")
                run("qemu-io", "-c", "write 0 128k", path)
                leak(path, 3)
            q = run("qemu-img", "check", *repair, "--output", out,
                    os.path.join(d, "q.qcow2"), check=False)
            v = img("check", *repair, "--output", out, os.path.join(d, "v.qcow2"), check=False)
            assert v.returncode == q.returncode == (0 if repair else 3), (v, q)
            assert v.stdout.replace("v.qcow2", "q.qcow2") == q.stdout, (v.stdout, q.stdout)
            qemu_check_clean(os.path.join(d, "v.qcow2")) if repair else None
    # A corruption: exit status 2 from both, repaired by -r all in both.
    for name in ("q", "v"):
        path = os.path.join(d, name + ".qcow2")
        run("qemu-img", "create", "-q", "-f", "qcow2", path, "10M")
        run("qemu-io", "-c", "write 0 128k", path)
        corrupt(path, 5)
    assert run("qemu-img", "check", os.path.join(d, "q.qcow2"), check=False).returncode == 2
    v = img("check", os.path.join(d, "v.qcow2"), check=False)
    assert v.returncode == 2 and "errors were found on the image" in v.stdout, v.stdout
    v = img("check", "-r", "all", os.path.join(d, "v.qcow2"), check=False)
    assert v.returncode == 0, v.stdout + v.stderr
    qemu_check_clean(os.path.join(d, "v.qcow2"))
    raw = os.path.join(d, "r.raw")
    img("create", "-q", "-f", "raw", raw, "1M")
    for out in ("human", "json"):
        v = img("check", "--output", out, raw, check=False)
        assert v.returncode == 63 == run("qemu-img", "check", raw, check=False).returncode
        assert raw in v.stderr and "does not support checks" in v.stderr, v.stderr
    del p


def refcount_block(f):
    import struct
    f.seek(0)
    h = f.read(104)
    cs = 1 << struct.unpack(">I", h[20:24])[0]
    f.seek(struct.unpack(">Q", h[48:56])[0])
    return cs, struct.unpack(">Q", f.read(8))[0]


def leak(path, n):
    """Counts n clusters past the end of the file (which grows to hold them)."""
    import struct
    with open(path, "r+b") as f:
        cs, rb = refcount_block(f)
        first = (f.seek(0, 2) + cs - 1) // cs
        f.truncate((first + n) * cs)
        for i in range(n):
            f.seek(rb + 2 * (first + i))
            f.write(struct.pack(">H", 1))


def corrupt(path, cluster):
    """Drops the refcount of a cluster in use."""
    import struct
    with open(path, "r+b") as f:
        _, rb = refcount_block(f)
        f.seek(rb + 2 * cluster)
        f.write(struct.pack(">H", 0))


@case
def test_bad_input(d):
    missing = os.path.join(d, "missing.qcow2")
    for args in (["info", missing], ["check", missing], ["map", missing],
                 ["convert", "-O", "raw", missing, os.path.join(d, "x.raw")]):
        v = img(*args, check=False)
        assert v.returncode == 1 and missing in v.stderr and "No such file" in v.stderr, \
            (args, v.stderr)
    v = img("compare", missing, missing, check=False)
    assert v.returncode == 2 and missing in v.stderr, v.stderr
    p = os.path.join(d, "x.qcow2")
    for size in ("12X", "1.5", "abc", "99999999999E"):
        v = img("create", "-f", "qcow2", p, size, check=False)
        assert v.returncode == 1 and "Invalid image size '%s'" % size in v.stderr and \
            p in v.stderr, (size, v.stderr)
    # Taken for an option, as by qemu-img.
    v = img("create", "-f", "qcow2", p, "-5", check=False)
    assert v.returncode == 1 and "invalid option" in v.stderr, (v.returncode, v.stderr)
    v = img("create", "-f", "vmdk", p, "1M", check=False)
    assert v.returncode == 1 and "Unknown file format 'vmdk'" in v.stderr, v.stderr
    img("create", "-q", "-f", "qcow2", p, "1M")
    v = img("info", "-f", "vmdk", p, check=False)
    assert v.returncode == 1 and "vmdk" in v.stderr, v.stderr
    v = img("create", "-f", "qcow2", "-o", "bogus=1", p, "1M", check=False)
    assert v.returncode == 1 and "bogus" in v.stderr, v.stderr
    v = img("frobnicate", check=False)
    assert v.returncode == 1 and "frobnicate" in v.stderr, v.stderr
    # Locked: qemu-io holds the image for writing.
    q = subprocess.Popen(["qemu-io", "-c", "sleep 5000", p], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 5
        while time.time() < deadline:
            v = img("info", p, check=False)
            if v.returncode:
                break
            time.sleep(0.1)
        assert v.returncode == 1 and "locked" in v.stderr and p in v.stderr, v.stderr
        for args in (["check", p], ["snapshot", "-c", "x", p], ["resize", p, "2M"]):
            v = img(*args, check=False)
            assert v.returncode == 1 and "locked" in v.stderr, (args, v.stderr)
        assert img("info", "-U", p).returncode == 0
    finally:
        q.kill()
        q.wait()


@case
def test_bench_runs(d):
    p = os.path.join(d, "b.qcow2")
    img("create", "-q", "-f", "qcow2", p, "16M")
    for args in ([], ["-w"], ["-w", "--flush-interval=64", "--pattern=5"],
                 ["-d", "1", "-S", "8k", "-o", "4096"]):
        a = ["bench", "-c", "500", "-f", "qcow2", *args, p]
        v = img(*a).stdout.splitlines()
        q = run("qemu-img", *a).stdout.splitlines()
        assert v[:-1] == q[:-1], (v, q)
        assert v[-1].startswith("Run completed in ") and v[-1].endswith(" seconds."), v
    qemu_check_clean(p)


def main():
    global IMG
    IMG = os.path.abspath(sys.argv[1])
    if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        print("SKIP: qemu-img/qemu-io not installed (Debian: qemu-utils)")
        return 77
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
    print("%d passed, %d failed" % (compat.PASSED, len(compat.FAILURES)))
    return 1 if compat.FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
