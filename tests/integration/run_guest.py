#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs one guest program (or kernel) in vireo-vmm and checks what it did.

The guest's serial port is vireo-vmm's stdio. The run passes when the exit
status and the serial output match every expectation given; on failure the
whole serial output and stderr are printed.
"""
import argparse
import datetime
import os
import re
import selectors
import subprocess
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vmm", required=True, help="path of vireo-vmm")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--expect-exit", type=int, default=33,
                   help="exit status (33 = debug-exit PASS code 0x10)")
    p.add_argument("--expect", action="append", default=[],
                   help="text that must appear in the serial output")
    p.add_argument("--expect-count", nargs=2, action="append", default=[],
                   metavar=("TEXT", "N"), help="TEXT must appear exactly N times")
    p.add_argument("--expect-stderr", action="append", default=[],
                   help="text that must appear on vireo-vmm's stderr")
    p.add_argument("--reject", action="append", default=["VIREO-GUEST: FAIL"],
                   help="text that must not appear in the serial output")
    p.add_argument("--send-after", nargs=2, action="append", default=[],
                   metavar=("MARKER", "TEXT"),
                   help="write TEXT to the guest's serial input once MARKER appears")
    p.add_argument("--check-rtc", action="store_true",
                   help="the guest prints rtc=YYYY-MM-DDTHH:MM:SS; it must match UTC")
    p.add_argument("--check-rtc-seconds", action="store_true",
                   help="the guest prints rtc=EPOCH_SECONDS; it must match the host clock")
    p.add_argument("vmm_args", nargs=argparse.REMAINDER,
                   help="arguments for vireo-vmm (after --)")
    return p.parse_args()


def main():
    args = parse_args()
    vmm_args = args.vmm_args[1:] if args.vmm_args[:1] == ["--"] else args.vmm_args
    cmd = [args.vmm] + vmm_args
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    os.set_blocking(proc.stdout.fileno(), False)
    os.set_blocking(proc.stderr.fileno(), False)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "out")
    sel.register(proc.stderr, selectors.EVENT_READ, "err")
    out, err = bytearray(), bytearray()
    pending = [(m.encode(), t.encode()) for m, t in args.send_after]
    timed_out = False
    open_streams = 2
    while open_streams:
        left = args.timeout - (time.monotonic() - start)
        if left <= 0:
            timed_out = True
            proc.kill()
            break
        for key, _ in sel.select(timeout=min(left, 0.5)):
            data = os.read(key.fileobj.fileno(), 65536)
            if not data:
                sel.unregister(key.fileobj)
                open_streams -= 1
                continue
            (out if key.data == "out" else err).extend(data)
        while pending and pending[0][0] in out:
            proc.stdin.write(pending.pop(0)[1])
            proc.stdin.flush()
    status = proc.wait()
    elapsed = time.monotonic() - start
    text = out.decode(errors="replace")
    problems = []
    if timed_out:
        problems.append(f"timed out after {args.timeout} s")
    elif status != args.expect_exit:
        problems.append(f"exit status {status}, expected {args.expect_exit}")
    for e in args.expect:
        if e not in text:
            problems.append(f"serial output lacks {e!r}")
    for e, n in args.expect_count:
        if text.count(e) != int(n):
            problems.append(f"{e!r} appears {text.count(e)} times, expected {n}")
    for e in args.expect_stderr:
        if e not in err.decode(errors="replace"):
            problems.append(f"stderr lacks {e!r}")
    for r in args.reject:
        if r in text:
            problems.append(f"serial output has {r!r}")
    if pending:
        problems.append(f"never saw {pending[0][0].decode()!r} to send input after")
    if args.check_rtc or args.check_rtc_seconds:
        check_rtc(text, args.check_rtc_seconds, problems)
    print(f"$ {' '.join(cmd)}\n[{elapsed:.2f} s, exit {status}]")
    if problems:
        print("--- serial output ---\n" + text)
        print("--- stderr ---\n" + err.decode(errors="replace"))
        for p in problems:
            print("FAILED: " + p)
        return 1
    return 0


def check_rtc(text, seconds, problems):
    now = datetime.datetime.now(datetime.timezone.utc)
    if seconds:
        m = re.search(r"rtc=(\d+)", text)
        if not m:
            problems.append("no rtc=SECONDS line")
            return
        guest = datetime.datetime.fromtimestamp(int(m.group(1)), datetime.timezone.utc)
    else:
        m = re.search(r"rtc=(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)", text)
        if not m:
            problems.append("no rtc=YYYY-MM-DDTHH:MM:SS line")
            return
        guest = datetime.datetime(*map(int, m.groups()), tzinfo=datetime.timezone.utc)
    # The guest read its clock during the run; allow for the run's length.
    delta = abs((now - guest).total_seconds())
    if delta > 120:
        problems.append(f"guest RTC {guest.isoformat()} is {delta:.0f} s off the host's")


if __name__ == "__main__":
    sys.exit(main())
