#!/usr/bin/env python3
"""Conformance against an independent implementation: the varlink-go
certification client must pass against kvmid."""

import os
import subprocess
from kvmidtest import Daemon, Tap, skip_all

cert = os.environ.get("VARLINK_CERT", "no")
if cert in ("", "no"):
    skip_all("varlink-go-certification not found (apt-get install -y varlink-go)")

t = Tap()
d = Daemon("[daemon]\nvarlink-certification = yes\n")
try:
    for run in range(2):
        p = subprocess.run([cert, "--client", "--varlink", "unix:" + d.socket("admin")],
                           capture_output=True, text=True, timeout=60)
        lines = (p.stdout + p.stderr).strip().splitlines()
        t.ok(p.returncode == 0 and lines and lines[-1] == "End: 'true'",
             "varlink-go certification client passes (run %d)" % (run + 1), p.stdout + p.stderr)
    t.eq(d.stop(), 0, "kvmid exits 0")
finally:
    d.cleanup()
t.done()
