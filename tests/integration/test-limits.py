#!/usr/bin/env python3
"""Limits: message size, connections (total, per uid, 1,000 at once),
pending calls, peers that never read their replies, running out of file
descriptors, idle connections, replies over max-output-bytes."""

import os
import re
import resource
import socket
import time
from kvmidtest import Daemon, Tap, Varlink, wait_for

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


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def listener_stats(conn, name):
    st = conn.call("io.kvmid.Admin.GetStatus")["parameters"]
    return [l for l in st["listeners"] if l["name"] == name][0]


# Out of descriptors (EMFILE): accepting pauses instead of spinning, the
# connections already accepted are served, and once descriptors are free
# again new connections are served (none of those queued meanwhile lost).
def low_nofile():
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))


d4 = Daemon("", preexec_fn=low_nofile)
try:
    conns = []
    try:
        first = d4.connect("admin", timeout=5)
        first.call("org.varlink.service.GetInfo")
        conns = [Varlink(d4.socket("admin"), timeout=5) for _ in range(60)]
        t.ok(wait_for(lambda: "admin listener: cannot accept (Too many open files), pausing for 100ms (0 more pauses" in d4.logtext(),
                      5), "EMFILE: the admin listener logs that it pauses accepting", d4.logtext()[-2000:])
        r = first.call("org.varlink.service.GetInfo")
        t.ok("vendor" in r.get("parameters", {}), "EMFILE: a connection accepted before is still served")
        tck = os.sysconf("SC_CLK_TCK")
        lines0 = d4.logtext().count("pausing for 100ms")
        cpu0, t0 = cpu_ticks(d4.proc.pid), time.time()
        time.sleep(1.0)
        used, elapsed = cpu_ticks(d4.proc.pid) - cpu0, time.time() - t0
        pauses = d4.logtext().count("pausing for 100ms") - lines0
        t.ok(used <= 0.2 * elapsed * tck, "EMFILE: the daemon does not spin (%d of %d ticks of CPU in %.1fs)"
             % (used, int(elapsed * tck), elapsed))
        t.eq(pauses, 0, "EMFILE: the pause is logged at most every 10s, not at each 100ms retry")
    finally:
        for x in conns:
            x.close()
    again = None
    deadline = time.time() + 5
    while again is None and time.time() < deadline:
        try:
            x = d4.connect("admin", timeout=5)
            again = x.call("io.kvmid.Admin.GetStatus")
            x.close()
        except OSError:
            time.sleep(0.1)
    t.ok(again is not None and "version" in again.get("parameters", {}),
         "EMFILE: once connections close, a new one is served again", again)
    t.ok(wait_for(lambda: listener_stats(first, "admin")["accepted"] >= 62, 5),
         "EMFILE: connections queued while paused are accepted later, none lost", listener_stats(first, "admin"))
    first.close()
    t.eq(d4.stop(), 0, "EMFILE: kvmid exits 0 on SIGTERM")
finally:
    d4.cleanup()

# idle-timeout closes connections with nothing going on, never one that
# calls, nor one with a call in flight; max-output-bytes drops a peer whose
# reply does not fit.
d5 = Daemon("[daemon]\nidle-timeout = 1\n[admin]\nmax-output-bytes = 8K\n")
try:
    idle = d5.connect("admin")
    after_call = d5.connect("admin")
    after_call.call("org.varlink.service.GetInfo")
    active = d5.connect("admin")
    stream = d5.connect("admin")
    stream.send("io.kvmid.Admin.TailAudit", {"follow": True}, more=True)
    while True:
        r = stream.recv()
        if r is None or "record" not in r.get("parameters", {}) or r["parameters"]["record"] is None:
            break
    t.ok(r is not None and r.get("continues") is True, "TailAudit follow: end of the backlog", r)
    t0 = time.time()
    closed = {}
    served = 0
    calls = 0
    while time.time() - t0 < 2.0:
        for name, x in (("idle", idle), ("after_call", after_call)):
            if name not in closed and x.at_eof(0.1):
                closed[name] = time.time() - t0
        calls += 1
        if "vendor" in (active.call("org.varlink.service.GetInfo") or {}).get("parameters", {}):
            served += 1
        time.sleep(0.05)
    t.ok("idle" in closed and 0.5 <= closed["idle"] <= 2.0,
         "idle-timeout = 1: a connection that never calls gets EOF after about 1s", closed)
    t.ok("after_call" in closed, "idle-timeout = 1: a connection idle since its last reply gets EOF", closed)
    t.ok(calls >= 5 and served == calls, "idle-timeout = 1: a connection that keeps calling is not closed (%d/%d answered)"
         % (served, calls))
    t.ok(not stream.at_eof(0.1), "idle-timeout = 1: a connection with a call in flight (TailAudit follow) stays open")
    active.call("io.kvmid.Admin.ReloadPolicy")
    r = stream.recv()
    t.ok(r is not None and (r["parameters"].get("record") or {}).get("kind") == "policy-reload-ok",
         "idle-timeout = 1: the waiting stream still delivers new records", r)
    t.ok("idle for 1s, closing" in d5.logtext(), "idle-timeout: the close is logged")
    for x in (idle, after_call, active, stream):
        x.close()

    big = d5.connect("admin")
    r = big.call("org.varlink.service.GetInfo")
    t.ok("vendor" in r.get("parameters", {}), "max-output-bytes = 8K: a small reply is sent")
    big.send("org.varlink.service.GetInterfaceDescription", {"interface": "io.kvmid.Admin"})
    big.sock.settimeout(5)
    try:
        r = big.recv()
    except (socket.timeout, TimeoutError):
        r = "neither a reply nor EOF within 5s"
    t.ok(isinstance(r, dict) and r.get("error") == "io.kvmid.LimitExceeded"
         and r.get("parameters") == {"limit": "max-output-bytes", "max": 8192} and big.at_eof(5),
         "max-output-bytes = 8K: a 9K reply is not sent; LimitExceeded names the limit, then EOF", r)
    t.ok(re.search(r"connection \d+ \(uid %d, pid \d+\): max-output-bytes \(8192\) exceeded, disconnecting" % os.getuid(),
                   d5.logtext()), "max-output-bytes: the disconnect is logged with the limit",
         d5.logtext()[-1500:])
    big.close()
    other = d5.connect("admin")
    r = other.call("org.varlink.service.GetInterfaceDescription", {"interface": "io.kvmid"})
    t.ok("description" in r.get("parameters", {}), "max-output-bytes: other connections are still served")
    other.close()
    t.eq(d5.stop(), 0, "kvmid exits 0 on SIGTERM")
finally:
    d5.cleanup()
t.done()
