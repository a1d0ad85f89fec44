#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Makes certificates with certtool (tests/daemon/test_tls.py's Pki) in QEMU's
file names and runs a test program on them:

    tls_pki.py PROGRAM

PROGRAM gets PKI_DIR (a CA with a server certificate for localhost and a
client certificate) and FOREIGN_DIR (a client certificate of another CA,
ca-cert.pem trusting both CAs). Exit status: PROGRAM's, or 77 without
certtool.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "daemon"))
from test_tls import CERTTOOL, Pki  # noqa: E402


def main():
    if not CERTTOOL:
        print("SKIP: no certtool (gnutls-bin)")
        return 77
    tmp = tempfile.mkdtemp(prefix="vireo-tls-pki-")
    try:
        good = Pki(os.path.join(tmp, "pki"))
        ca = good.ca("ca")
        good.issue("server", ca, True, dns=["localhost"], ips=["127.0.0.1"])
        good.issue("client", ca, False)
        other = Pki(os.path.join(tmp, "foreign"))
        other.issue("client", other.ca("ca"), False)
        with open(os.path.join(other.d, "ca-cert.pem"), "ab") as f, open(ca[0], "rb") as g:
            f.write(g.read())
        return subprocess.run([sys.argv[1], good.d, other.d]).returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
