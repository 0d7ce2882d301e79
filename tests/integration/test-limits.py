#!/usr/bin/env python3
"""Limits: message size, connections (total, per uid, 1,000 at once),
pending calls, peers that never read their replies."""

import os
import resource
import socket
import time
from kvmidtest import Daemon, Tap, Varlink

t = Tap()

# 1,000 connections need more than the usual 1,024 descriptors; the daemon
# inherits the raised limit.
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
want = min(hard, 8192)
resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


d = Daemon("[daemon]\nmax-connections = 3000\nmax-connections-per-uid = 2000\nwrite-timeout = 2\n"
           "[introspector]\nmax-message-size = 4K\n"
           "[hypervisor]\nmax-output-bytes = 2K\nmax-pending-calls = 4\n")
try:
    # Oversize: error naming the limit, then disconnect; others unaffected.
    c = d.connect("introspector")
    c.send_raw(b'{"method":"io.kvmid.Introspector.Hello","parameters":{"pad":"' + b"x" * 5000 + b'"}}\0')
    r = c.recv()
    t.eq(r, {"error": "io.kvmid.LimitExceeded", "parameters": {"limit": "max-message-size", "max": 4096}},
         "oversize message: LimitExceeded max-message-size")
    t.ok(c.at_eof(), "oversize message: connection closed")
    c.close()
    c = d.connect("introspector")
    c.send_raw(b'{"method":"io.kvmid.Introspector.Hello","parameters":{"pad":"' + b"x" * 9000)
    r = c.recv()
    t.eq(r and r.get("error"), "io.kvmid.LimitExceeded", "oversize detected before the message ends")
    c.close()
    c = d.connect("introspector")
    t.ok("nonce" in c.call("io.kvmid.Introspector.Hello")["parameters"], "listener still serves after oversize peers")
    c.close()

    # 1,000 concurrent connections, all answered.
    conns = []
    try:
        for _ in range(1000):
            conns.append(Varlink(d.socket("admin"), timeout=30))
        for x in conns:
            x.send("org.varlink.service.GetInfo")
        answered = sum(1 for x in conns if "vendor" in (x.recv() or {}).get("parameters", {}))
        t.eq(answered, 1000, "1,000 concurrent connections all answered")
        st = conns[0].call("io.kvmid.Admin.GetStatus")["parameters"]
        t.ok(st["connections"] >= 1000, "GetStatus counts 1,000 open connections")
    finally:
        for x in conns:
            x.close()

    # Per-uid limit at accept: a clear error, not a silent close.
    d2 = Daemon("[daemon]\nmax-connections-per-uid = 5\n")
    try:
        held = [d2.connect("admin") for _ in range(5)]
        for x in held:
            x.call("org.varlink.service.GetInfo")
        extra = d2.connect("admin")
        r = extra.recv()
        t.eq(r, {"error": "io.kvmid.LimitExceeded", "parameters": {"limit": "max-connections-per-uid", "max": 5}},
             "6th connection of one uid: LimitExceeded max-connections-per-uid")
        t.ok(extra.at_eof(), "refused connection is closed")
        held.pop().close()
        time.sleep(0.2)
        again = d2.connect("admin")
        t.ok("vendor" in again.call("org.varlink.service.GetInfo")["parameters"], "a slot freed is usable again")
        for x in held + [again, extra]:
            x.close()
        # The daemon sees those hang-ups asynchronously: retry until a slot is free.
        deadline = time.time() + 10
        while True:
            r = d2.connect("admin").call("io.kvmid.Admin.GetStatus")
            if "error" not in r or time.time() > deadline:
                break
            time.sleep(0.05)
        st = r["parameters"] if "error" not in r else {"listeners": [{"name": "admin", "rejected": 0}]}
        adm = [l for l in st["listeners"] if l["name"] == "admin"][0]
        t.ok(adm["rejected"] >= 1, "rejected connections are counted")
    finally:
        d2.stop()
        d2.cleanup()

    d3 = Daemon("[daemon]\nmax-connections = 3\n")
    try:
        held = [d3.connect(n) for n in ("admin", "introspector", "hypervisor")]
        for x in held:
            x.call("org.varlink.service.GetInfo")
        extra = d3.connect("introspector")
        t.eq(extra.recv(), {"error": "io.kvmid.LimitExceeded", "parameters": {"limit": "max-connections", "max": 3}},
             "connection over max-connections (across listeners): LimitExceeded")
        for x in held + [extra]:
            x.close()
    finally:
        d3.stop()
        d3.cleanup()

    # Pending calls: a peer that pipelines without reading.
    c = d.connect("hypervisor")
    c.send_raw(b'{"method":"org.varlink.service.GetInfo"}\0' * 50)
    got = []
    while True:
        r = c.recv()
        if r is None:
            break
        got.append(r)
    t.ok(len(got) >= 2 and got[-1] == {"error": "io.kvmid.LimitExceeded",
                                       "parameters": {"limit": "max-pending-calls", "max": 4}},
         "calls piling up behind unread replies: LimitExceeded max-pending-calls, then close",
         got[-1:] if got else "no reply")
    c.close()

    # A client that never reads: disconnected, memory bounded, others served.
    rss0 = rss_kib(d.proc.pid)
    stuck = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stuck.connect(d.socket("admin"))
    stuck.setblocking(False)
    sent = 0
    closed = False
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            sent += stuck.send(b'{"method":"io.kvmid.Admin.GetStatus"}\0' * 64)
        except BlockingIOError:
            time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        other = d.connect("admin")
        ok = "vendor" in other.call("org.varlink.service.GetInfo")["parameters"]
        other.close()
        if not ok:
            break
    t.ok(closed, "a peer that never reads its replies is disconnected (%d bytes sent)" % sent)
    t.ok(ok, "other clients are served while a peer is stuck")
    growth = rss_kib(d.proc.pid) - rss0
    t.ok(growth < 64 * 1024, "daemon RSS stays bounded (grew %d KiB)" % growth)
    stuck.close()
    t.ok("disconnecting" in d.logtext(), "the disconnect is logged")
    t.eq(d.stop(), 0, "kvmid exits 0 on SIGTERM")
finally:
    d.cleanup()
t.done()
