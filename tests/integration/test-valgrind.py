#!/usr/bin/env python3
"""The daemon under valgrind: a workload through every path of this release,
then zero errors and no definite leaks."""

import os
import re
import signal
import time
from kvmidtest import Daemon, Tap, skip_all, SANITIZERS, run_sim, kvmi_socket, KVMI_SIM

vg = os.environ.get("VALGRIND", "no")
if vg in ("", "no"):
    skip_all("valgrind not found (apt-get install -y valgrind)")
if SANITIZERS:
    skip_all("sanitizer build: ASan and valgrind cannot run together (the plain build runs this test)")

t = Tap()
U1, U2 = "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e61", "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e62"
d = Daemon("[daemon]\nvarlink-certification = yes\n[introspector]\nmax-message-size = 4K\n"
           "[kvmi]\nhandshake-timeout = 3\n[domain t1]\nuuid = %s\ncookie = none\n[domain t2]\nuuid = %s\n"
           "cookie = none\n" % (U1, U2), valgrind=True)
try:
    # KVMI: two targets with events, then peers that break the protocol.
    rc, rep, err = run_sim(["--socket", kvmi_socket(d), "--vcpus", "2", "--events", "50", "--unhook-at-exit",
                            "--timeout", "60", "--vm", "t1,%s" % U1, "--vm", "t2,%s" % U2], timeout=120)
    t.eq(rc, 0, "KVMI traffic under valgrind: every event acked")
    for mode in ("truncated-handshake", "nonzero-padding", "unexpected-seq", "oversize", "duplicate-uuid"):
        run_sim(["--socket", kvmi_socket(d), "--misbehave", mode, "--timeout", "30", "--vm", "t1,%s" % U1],
                timeout=120)
    d.kvmictl("domains", timeout=60)
    d.kvmictl("domain", "t1", timeout=60)
    d.kvmictl("policy", "show", timeout=60)
    d.kvmictl("policy", "explain", "--introspector", "x", "--target", "t1", "--perm", "map", timeout=60)
    for args in (["status"], ["--json", "status"], ["introspect"], ["introspect", "io.kvmid.Admin"],
                 ["call", "io.kvmid.Admin.Nope"], ["call", "io.kvmid.Admin.GetStatus", '{"x":[1,{"y":2}]}'],
                 ["call", "--oneway", "org.varlink.service.GetInfo"]):
        d.kvmictl(*args, timeout=60)
    i = d.connect("introspector", timeout=60)
    i.call("io.kvmid.Introspector.Hello")
    i.call("io.kvmid.Introspector.Hello")
    i.send_raw(b'{"method":"x.y.Z","parameters":{"pad":"' + b"x" * 5000 + b'"}}\0')
    i.at_eof(30)
    for raw in (b'{"bad json\0', b'[1]\0', b'{"method":"a.b.C","parameters":' + b'[' * 50 + b']' * 50 + b'}\0'):
        c = d.connect("hypervisor", timeout=60)
        c.send_raw(raw)
        c.recv()
        c.close()
    c = d.connect("admin", timeout=60)
    c.send_raw(b'{"method":"org.varlink.service.GetInfo"}\0' * 10)
    c.close()  # hang up with replies unread
    d.signal(signal.SIGHUP)
    time.sleep(1)
    rc = d.stop(timeout=120)
    log = open(d.valgrind_log).read()
    m = re.search(r"ERROR SUMMARY: (\d+) errors", log)
    t.ok(m is not None and m.group(1) == "0", "valgrind: 0 errors", log[-3000:])
    m = re.search(r"definitely lost: ([\d,]+) bytes", log)
    t.ok(m is None or m.group(1) == "0", "valgrind: no definite leaks", log[-3000:])
    t.eq(rc, 0, "kvmid under valgrind exits 0")
finally:
    d.cleanup()
t.done()
