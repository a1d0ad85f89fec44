#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""qemu-img compatibility of the storage library, through tests/storage/blocktool.

Images qemu writes must read identically through the library; images the
library writes must pass `qemu-img check` and convert to the expected
bytes; snapshots, backing chains, compressed clusters, locks and block
status must agree both ways.

usage: compat.py BLOCKTOOL
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

TOOL = None
FAILURES = []
PASSED = 0


def run(*args, check=True, **kw):
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise RuntimeError("%s failed (%d): %s%s" % (" ".join(map(str, args)), p.returncode,
                                                     p.stdout, p.stderr))
    return p


def tool(*args, check=True):
    return run(TOOL, *args, check=check)


def qemu_raw(img, out):
    run("qemu-img", "convert", "-U", "-O", "raw", img, out)
    with open(out, "rb") as f:
        return f.read()


def our_raw(img, out, *opts):
    tool(*opts, "dump", img, out)
    with open(out, "rb") as f:
        return f.read()


def same_as_qemu(d, img, *opts):
    a = our_raw(img, os.path.join(d, "ours.raw"), *opts)
    b = qemu_raw(img, os.path.join(d, "ref.raw"))
    if a != b:
        first = next(i for i in range(min(len(a), len(b))) if a[i] != b[i]) \
            if len(a) == len(b) else "size %d vs %d" % (len(a), len(b))
        raise AssertionError("%s reads differently from qemu-img convert (first at %s)"
                             % (img, first))


def qemu_check_clean(img):
    p = run("qemu-img", "check", "--output=json", img, check=False)
    if p.returncode != 0:
        raise AssertionError("qemu-img check %s: %s %s" % (img, p.stdout, p.stderr))
    r = json.loads(p.stdout)
    if r.get("corruptions", 0) or r.get("leaks", 0):
        raise AssertionError("qemu-img check %s: %s" % (img, p.stdout))


def info(img, *opts):
    out = tool(*opts, "info", img).stdout
    d = {}
    for line in out.splitlines():
        k, _, v = line.partition("=")
        d.setdefault(k, v)
    return d


def case(fn):
    def wrapper():
        global PASSED
        d = tempfile.mkdtemp(prefix="vireo-compat-")
        try:
            fn(d)
            PASSED += 1
            print("ok", fn.__name__)
        except Exception as e:  # report every case, fail at the end
            FAILURES.append(fn.__name__)
            # The whole traceback: an assert without a message says nothing else.
            print("FAIL", fn.__name__, e)
            traceback.print_exc(file=sys.stdout)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    wrapper.__name__ = fn.__name__
    return wrapper


QEMU_IO_WRITES = [
    "write -P 0x5a 0 64k",
    "write -P 0xa5 1M 4k",
    "write -P 0x11 3146240 1k",
    "write -z 2M 192k",
    "write -P 0x22 4M 2M",
    "discard 4M 64k",
    "write -z -u 5M 64k",
    "write -P 0x33 7M 512",
]


@case
def test_qemu_written_images(d):
    opts = [
        "cluster_size=4096", "cluster_size=65536", "cluster_size=2097152",
        "compat=0.10", "compat=1.1,lazy_refcounts=on", "preallocation=metadata",
        "cluster_size=16384,compat=0.10", "refcount_bits=16,cluster_size=8192",
    ]
    for o in opts:
        img = os.path.join(d, "q.qcow2")
        run("qemu-img", "create", "-q", "-f", "qcow2", "-o", o, img, "8M")
        args = []
        for w in QEMU_IO_WRITES:
            args += ["-c", w]
        run("qemu-io", "-f", "qcow2", *args, img)
        same_as_qemu(d, img)
        # Our own check agrees that the image is clean.
        tool("check", img)


@case
def test_unsupported_is_clear(d):
    img = os.path.join(d, "x.qcow2")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "extended_l2=on", img, "1M")
    p = tool("info", img, check=False)
    assert p.returncode == 1 and "extended L2" in p.stderr, p.stderr
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "refcount_bits=8", img, "1M")
    p = tool("info", img, check=False)
    assert p.returncode == 1 and "refcount_order" in p.stderr, p.stderr


@case
def test_compressed_by_qemu(d):
    src = os.path.join(d, "src.raw")
    rnd = random.Random(7)
    with open(src, "wb") as f:
        for i in range(48):
            if i % 3 == 0:
                f.write(bytes(rnd.getrandbits(8) for _ in range(65536)))
            elif i % 3 == 1:
                f.write((b"vireo %d " % i) * (65536 // 8))
            else:
                f.write(bytes(65536))
        f.write(b"tail" * 100)
    for ct in ("zlib", "zstd"):
        img = os.path.join(d, ct + ".qcow2")
        run("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", "-o",
            "compression_type=" + ct, src, img)
        same_as_qemu(d, img)
        m = tool("map", img).stdout
        assert "compressed=1" in m, m
    # And the library's own compressed writes read back in qemu.
    for ct in ("zlib", "zstd"):
        img = os.path.join(d, "ours-" + ct + ".qcow2")
        size = os.path.getsize(src)
        tool("create-qcow2", img, size, *(["zstd"] if ct == "zstd" else []))
        tool("compress", img, src)
        qemu_check_clean(img)
        with open(src, "rb") as f:
            want = f.read()
        got = qemu_raw(img, os.path.join(d, "o.raw"))
        assert got[:len(want)] == want and not any(got[len(want):]), "compressed mismatch"


@case
def test_backing_chains_by_qemu(d):
    os.mkdir(os.path.join(d, "sub"))
    for base_fmt in ("raw", "qcow2"):
        base = os.path.join(d, "base." + base_fmt)
        run("qemu-img", "create", "-q", "-f", base_fmt, base, "6M")
        run("qemu-io", "-f", base_fmt, "-c", "write -P 0x44 0 6M", base)
        mid = os.path.join(d, "sub", "mid.qcow2")
        run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "../base." + base_fmt, "-F",
            base_fmt, mid, "8M")
        run("qemu-io", "-c", "write -P 0x55 1M 1M", "-c", "write -z 1536k 64k", mid)
        top = os.path.join(d, "top.qcow2")
        run("qemu-img", "create", "-q", "-f", "qcow2", "-b", "sub/mid.qcow2", "-F", "qcow2",
            top)
        run("qemu-io", "-c", "write -P 0x66 1280k 4k", "-c", "write -P 0x67 7M 64k", top)
        same_as_qemu(d, top)
        i = info(top)
        assert i["backing_filename"] == "sub/mid.qcow2", i
        assert i["full_backing_filename"] == os.path.join(d, "sub/mid.qcow2"), i
        # Block status through the chain, as qemu-img map --output=json shows it.
        ours = []
        for line in tool("map", top).stdout.splitlines():
            f = dict(kv.split("=") for kv in line.split())
            ours.append((int(f["start"]), int(f["length"]), int(f["depth"]),
                         f["present"] == "1", f["zero"] == "1", f["data"] == "1"))
        theirs = [(e["start"], e["length"], e["depth"], e["present"], e["zero"], e["data"])
                  for e in json.loads(run("qemu-img", "map", "--output=json", top).stdout)]
        assert merge(ours) == merge(theirs), "map differs:\n%s\n%s" % (ours, theirs)
        # Writes through the library into the chain (copy-on-write from below).
        tool("write", top, 1310720 + 512, 512, "77")
        qemu_check_clean(top)
        same_as_qemu(d, top)


def merge(extents):
    out = []
    for e in extents:
        if out and out[-1][0] + out[-1][1] == e[0] and out[-1][2:] == e[2:]:
            out[-1] = (out[-1][0], out[-1][1] + e[1]) + e[2:]
        else:
            out.append(e)
    return out


@case
def test_library_images_pass_qemu_check(d):
    rnd = random.Random(11)
    for cs in (4096, 65536, 1 << 21):
        for extra in ([], ["compat=0.10"], ["lazy"], ["prealloc"]):
            img = os.path.join(d, "l.qcow2")
            size = 8 << 20
            tool("create-qcow2", img, size, "cluster_size=%d" % cs, *extra)
            qemu_check_clean(img)
            model = bytearray(size)
            for k in range(12):
                off = rnd.randrange(0, size // 512) * 512
                ln = min(rnd.randrange(1, 300) * 512, size - off)
                byte = rnd.randrange(1, 256)
                tool("write", img, off, ln, "%02x" % byte)
                model[off:off + ln] = bytes([byte]) * ln
            tool("zero", img, 65536, 4096)
            model[65536:65536 + 4096] = bytes(4096)
            tool("--discard", "discard", img, 2 << 20, 2 << 20)
            if "compat=0.10" not in extra or True:
                # Discard leaves zeroes (no backing file): whole clusters only.
                s = ((2 << 20) + cs - 1) // cs * cs
                e = (4 << 20) // cs * cs
                if e > s:
                    model[s:e] = bytes(e - s)
            qemu_check_clean(img)
            got = qemu_raw(img, os.path.join(d, "o.raw"))
            assert got == bytes(model), "cs %d %s: qemu reads other bytes" % (cs, extra)
            tool("resize", img, size * 2)
            qemu_check_clean(img)
            r = json.loads(run("qemu-img", "info", "--output=json", img).stdout)
            assert r["virtual-size"] == size * 2, r
            assert r["cluster-size"] == cs, r
            spec = r["format-specific"]["data"]
            assert spec["compat"] == ("0.10" if "compat=0.10" in extra else "1.1"), spec
            if "lazy" in extra:
                assert spec["lazy-refcounts"] is True, spec
                assert r.get("dirty-flag") is False, r


@case
def test_refcount_growth_qemu_check(d):
    img = os.path.join(d, "g.qcow2")
    tool("create-qcow2", img, 12 << 20, "cluster_size=512")
    for off in range(0, 12 << 20, 1 << 20):
        tool("write", img, off, 1 << 20, "%02x" % (off >> 20 | 1))
    qemu_check_clean(img)
    same_as_qemu(d, img)


@case
def test_snapshots_both_ways(d):
    img = os.path.join(d, "s.qcow2")
    tool("create-qcow2", img, 4 << 20)
    tool("write", img, 0, 1 << 20, "aa")
    tool("snapshot", img, "create", "ours")
    tool("write", img, 0, 65536, "bb")
    out = run("qemu-img", "snapshot", "-l", img).stdout
    assert "ours" in out, out
    qemu_check_clean(img)
    run("qemu-img", "snapshot", "-c", "theirs", img)
    run("qemu-io", "-c", "write -P 0xcc 0 2M", img)
    lst = tool("snapshot", img, "list").stdout
    assert "ours" in lst and "theirs" in lst, lst
    tool("snapshot", img, "apply", "theirs")
    got = qemu_raw(img, os.path.join(d, "a.raw"))
    assert got[:65536] == b"\xbb" * 65536 and got[65536:1 << 20] == b"\xaa" * (983040), \
        "apply theirs"
    run("qemu-img", "snapshot", "-a", "ours", img)
    got = our_raw(img, os.path.join(d, "b.raw"))
    assert got[:1 << 20] == b"\xaa" * (1 << 20) and not any(got[1 << 20:]), "apply ours"
    tool("snapshot", img, "delete", "theirs")
    run("qemu-img", "snapshot", "-d", "ours", img)
    qemu_check_clean(img)
    tool("check", img)


@case
def test_check_repair_after_crash(d):
    img = os.path.join(d, "c.qcow2")
    tool("create-qcow2", img, 16 << 20, "cluster_size=4096")
    env = dict(os.environ, VIREO_BLOCK_FAULT_AFTER="40")
    # Stops writing midway (the "crash"); leaves leaked clusters behind.
    subprocess.run([TOOL, "write", img, "0", str(8 << 20), "5e"], env=env, capture_output=True)
    p = run("qemu-img", "check", "--output=json", img, check=False)
    r = json.loads(p.stdout)
    assert r.get("corruptions", 0) == 0, p.stdout
    tool("check", img, "all")
    qemu_check_clean(img)


@case
def test_locking_with_qemu(d):
    img = os.path.join(d, "k.qcow2")
    tool("create-qcow2", img, 1 << 20)
    # qemu-io holds the image read-write while it sleeps.
    q = subprocess.Popen(["qemu-io", "-c", "sleep 5000", img], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        # Any open of ours before qemu-io has its lock would make qemu-io
        # fail; give it time, and make sure it is still there.
        time.sleep(1)
        assert q.poll() is None, q.stderr.read()
        p = tool("write", img, 0, 512, "01", check=False)
        assert p.returncode == 1 and "locked" in p.stderr and img in p.stderr, p.stderr
        p = tool("info", img, check=False)
        assert p.returncode == 1 and "locked" in p.stderr, p.stderr
        assert tool("-U", "info", img).returncode == 0
    finally:
        q.kill()
        q.wait()
    h = subprocess.Popen([TOOL, "hold", img, "5"], stdout=subprocess.PIPE, text=True)
    try:
        assert h.stdout.readline().strip() == "holding"
        p = run("qemu-img", "info", img, check=False)
        assert p.returncode != 0 and "lock" in p.stderr, p.stderr
    finally:
        h.kill()
        h.wait()


@case
def test_info_matches_qemu(d):
    base = os.path.join(d, "b.raw")
    img = os.path.join(d, "i.qcow2")
    run("qemu-img", "create", "-q", "-f", "raw", base, "3M")
    run("qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=32768,lazy_refcounts=on",
        "-b", "b.raw", "-F", "raw", img, "5M")
    q = json.loads(run("qemu-img", "info", "--output=json", img).stdout)
    o = info(img)
    assert int(o["virtual_size"]) == q["virtual-size"]
    assert int(o["cluster_size"]) == q["cluster-size"]
    assert o["backing_filename"] == q["backing-filename"]
    assert o["backing_format"] == q["backing-filename-format"]
    spec = q["format-specific"]["data"]
    assert o["compat"] == spec["compat"] and o["lazy_refcounts"] == "1"
    assert o["compression_type"] == spec["compression-type"]


def main():
    global TOOL
    TOOL = os.path.abspath(sys.argv[1])
    if not shutil.which("qemu-img") or not shutil.which("qemu-io"):
        print("SKIP: qemu-img/qemu-io not installed (Debian: qemu-utils)")
        return 77
    tests = [v for k, v in globals().items() if k.startswith("test_")]
    for t in tests:
        t()
    print("%d passed, %d failed" % (PASSED, len(FAILURES)))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
