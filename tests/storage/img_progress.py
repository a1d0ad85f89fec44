#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""vireo-img -p: the progress line, on a terminal and off it (docs/vireo-img.1).

convert, compare, rebase and commit run on a pseudo-terminal: with -p they
draw qemu-img's "    (NN.NN/100%)" line, from 0.00 to 100.00, never
going back, and end it with a newline; with -p -q, or with stdout not a
terminal (scripts capture it), they print no progress at all. Images are
made by vireo-img itself, so qemu-utils is not needed.

usage: img_progress.py VIREO-IMG
"""
import os
import pty
import re
import select
import subprocess
import sys
import time

import compat
from compat import case, run

IMG = None
MIB = 1 << 20
PROGRESS = re.compile(rb"    \((\d+\.\d\d)/100%\)\r")


def on_tty(*args, timeout=60):
    """Runs vireo-img with stdout and stderr on a pseudo-terminal; returns
    (everything it wrote, exit status)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([IMG] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:          # EIO: the child closed its end
                break
            if not data:
                break
            out += data
        else:
            p.kill()
            raise AssertionError("%s: no end after %d s: %r" % (args[0], timeout, out[-200:]))
    finally:
        os.close(master)
    return out, p.wait()


def progress_of(out, what, steps=True):
    """Checks the progress line in @out: 0 to 100, never backwards, a newline
    after 100 (the terminal turns \\n into \\r\\n); with @steps, values in
    between too. Returns what follows the line."""
    values = [float(v) for v in PROGRESS.findall(out)]
    assert values, "%s -p printed no progress: %r" % (what, out[:200])
    assert values[0] == 0.0 and values[-1] == 100.0, (what, values)
    assert values == sorted(values), "%s: progress went back: %s" % (what, values)
    if steps:
        assert any(0 < v < 100 for v in values), "%s: only %s" % (what, values)
    end = list(PROGRESS.finditer(out))[-1].end()
    assert PROGRESS.sub(b"", out[:end]) == b"", \
        "%s: other output inside the progress line: %r" % (what, out[:end])
    rest = out[end:]
    assert rest.startswith(b"\r\n"), "%s: progress not ended by a newline: %r" % (what, rest)
    return rest[2:]


def make_images(d):
    """A 64 MiB raw file with 40 MiB of data in 1 MiB pieces and its qcow2 copy."""
    raw = os.path.join(d, "src.raw")
    with open(raw, "wb") as f:
        f.truncate(64 * MIB)
        for i in range(40):
            f.seek(i * MIB)
            f.write(bytes([i + 1]) * MIB)
    qcow2 = os.path.join(d, "src.qcow2")
    run(IMG, "convert", "-O", "qcow2", raw, qcow2)
    return raw, qcow2


def no_progress(what, *args):
    """-p with stdout a pipe prints nothing but the command's own lines."""
    v = run(IMG, *args)
    assert "/100%" not in v.stdout and v.stderr == "", (what, v.stdout, v.stderr)
    return v.stdout


@case
def test_convert(d):
    raw, qcow2 = make_images(d)
    for src, fmt in ((qcow2, "raw"), (raw, "qcow2")):
        dst = os.path.join(d, "out." + fmt)
        out, status = on_tty("convert", "-p", "-O", fmt, src, dst)
        assert status == 0, out
        assert progress_of(out, "convert -O " + fmt) == b"", out
        assert run(IMG, "compare", src, dst).returncode == 0
        os.unlink(dst)
        out, status = on_tty("convert", "-p", "-q", "-O", fmt, src, dst)
        assert (out, status) == (b"", 0), ("convert -p -q", out)
        os.unlink(dst)
        assert no_progress("convert", "convert", "-p", "-O", fmt, src, dst) == ""


@case
def test_compare(d):
    raw, qcow2 = make_images(d)
    out, status = on_tty("compare", "-p", raw, qcow2)
    assert status == 0, out
    assert progress_of(out, "compare") == b"Images are identical.\r\n", out
    out, status = on_tty("compare", "-p", "-q", raw, qcow2)
    assert (out, status) == (b"", 0), ("compare -p -q", out)
    assert no_progress("compare", "compare", "-p", raw, qcow2) == "Images are identical.\n"
    # Stopped at a difference half-way: the line keeps the figure it reached, as
    # qemu-img's does, instead of claiming 100%.
    with open(raw, "r+b") as f:
        f.seek(32 * MIB)
        f.write(b"\xff")
    out, status = on_tty("compare", "-p", raw, qcow2)
    values = [float(v) for v in PROGRESS.findall(out)]
    assert status == 1 and values and max(values) < 100.0, ("compare mismatch", values, out)
    assert out.endswith(b"\r\nContent mismatch at offset 33554432!\r\n"), out


@case
def test_rebase(d):
    raw, qcow2 = make_images(d)
    # Safe rebase onto nothing copies all 40 MiB of the backing file's data.
    for n, args in enumerate((["-p"], ["-p", "-q"])):
        top = os.path.join(d, "top%d.qcow2" % n)
        run(IMG, "create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", top)
        out, status = on_tty("rebase", *args, "-b", "", top)
        assert status == 0, out
        if "-q" in args:
            assert out == b"", ("rebase -p -q", out)
        else:
            assert progress_of(out, "rebase") == b"", out
        assert run(IMG, "compare", raw, top).returncode == 0
    top = os.path.join(d, "top.qcow2")
    run(IMG, "create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", top)
    assert no_progress("rebase", "rebase", "-p", "-b", "", top) == ""


@case
def test_commit(d):
    raw, qcow2 = make_images(d)
    # The library commits in one call: 0% before it, 100% after.
    top = os.path.join(d, "top.qcow2")
    run(IMG, "create", "-q", "-f", "qcow2", "-b", qcow2, "-F", "qcow2", top)
    out, status = on_tty("commit", "-p", top)
    assert status == 0, out
    assert progress_of(out, "commit", steps=False) == b"Image committed.\r\n", out
    out, status = on_tty("commit", "-p", "-q", top)
    assert (out, status) == (b"", 0), ("commit -p -q", out)
    assert no_progress("commit", "commit", "-p", top) == "Image committed.\n"
    assert run(IMG, "compare", raw, top).returncode == 0


def main():
    global IMG
    IMG = os.path.abspath(sys.argv[1])
    for name, fn in list(globals().items()):
        if name.startswith("test_"):
            fn()
    print("%d passed, %d failed" % (compat.PASSED, len(compat.FAILURES)))
    return 1 if compat.FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
