#!/usr/bin/env python3
"""kvmictl events TARGET (Admin.WatchEvents): one line per guest request
kvmi-sim sends, --json=short lines that are the events as JSON, an unknown
target refused, and the stream ending with exit 0 when the target's KVMI
channel goes away."""

import json
import os
import re
import select
import tempfile
import time
from kvmidtest import Daemon, Tap, Sim, finish, domains_config, kvmi_socket, skip_all, wait_for, KVMI_SIM

if not os.access(KVMI_SIM, os.X_OK):
    skip_all("kvmi-sim is not built (make check builds it)")

N = 25
U1 = "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e71"
TEXT = re.compile(r"^t1 seq (\d+) vcpu 0 \d+-bit rbx=0x([0-9a-f]+) rcx=0x[0-9a-f]+ rdx=0x[0-9a-f]+ "
                  r"rsi=0x[0-9a-f]+ rip=0x[0-9a-f]+$")


class Lines:
    """The lines a running kvmictl writes, read as they come."""

    def __init__(self, proc):
        self.proc = proc
        self.buf = b""
        self.lines = []

    def wait(self, n, timeout=10):
        deadline = time.time() + timeout
        while len(self.lines) < n and time.time() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if not ready:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                break
            self.buf += chunk
            *done, self.buf = self.buf.split(b"\n")
            self.lines += [x.decode() for x in done]
        return self.lines



t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-events-")
d = Daemon(domains_config(work, [("t1", U1, None)]))
sim = None
procs = []
try:
    sim = Sim(["--socket", kvmi_socket(d), "--vcpus", "1", "--vm", "t1,%s" % U1], work)

    def t1():
        rc, out, err = d.kvmictl("--json=short", "domain", "t1")
        return json.loads(out)["domain"] if rc == 0 else {}

    t.ok(wait_for(lambda: t1().get("kvmi") == "ready"), "the simulated target is ready")
    rc, out, err = d.kvmictl("events", "nosuch")
    t.ok(rc == 4 and "DomainNotFound" in err, "kvmictl events of an unknown domain: exit 4", (rc, out, err))

    text = d.kvmictl_stream("events", "t1")
    short = d.kvmictl_stream("--json=short", "events", "t1")
    procs = [p for p in (text, short) if p]
    t.ok(text is not None and short is not None, "two kvmictl events t1 are watching")
    base = t1().get("guest_requests", 0)
    r = sim.cmd(cmd="send", vm="t1", vcpu=0, count=N, regs={"rbx": 0xbeef})
    t.ok(r.get("acked") == N, "kvmi-sim: %d guest requests acked" % N, json.dumps(r))
    want = list(range(base + 1, base + N + 1))

    tx, jx = Lines(text), Lines(short)
    tx.wait(N)
    tl = tx.wait(N + 1, 0.5)        # and nothing more
    m = [TEXT.match(x) for x in tl]
    t.eq(len(tl), N, "text: one line per guest request")
    t.ok(all(m) and [int(x.group(1)) for x in m] == want and all(x.group(2) == "beef" for x in m),
         "text: target, consecutive seq, vCPU, mode and registers", "\n".join(tl[:3]))

    jx.wait(N)
    jl = jx.wait(N + 1, 0.5)
    t.eq(len(jl), N, "--json=short: one line per guest request")
    try:
        evs = [json.loads(x) for x in jl]
    except ValueError as e:
        evs = []
        t.ok(False, "--json=short: every line parses as JSON", "%s\n%s" % (e, "\n".join(jl[:3])))
    else:
        t.ok(True, "--json=short: every line parses as JSON")
    t.ok(evs and [e.get("seq") for e in evs] == want and
         all(e["target"] == "t1" and e["uuid"] == U1 and e["vcpu"] == 0 and e["regs"]["rbx"] == 0xbeef and
             e["missed"] == 0 for e in evs),
         "--json=short: the events as the Admin interface gives them", jl[0] if jl else "")

    # The target goes away: its channel closes, the streams end cleanly.
    r = sim.cmd(cmd="unhook", vm="t1")
    t.ok(r.get("ok") is True, "kvmi-sim unhooks t1", json.dumps(r))
    for name, p in (("text", text), ("--json=short", short)):
        rc, err = finish(p, 10)
        t.ok(rc == 0 and "io.kvmid.Admin.WatchEnded" in err and "KVMI channel closed" in err,
             "%s: the stream ends with the target's channel, exit 0, saying why" % name, (rc, err))
    procs = []
    t.eq(d.stop(), 0, "kvmid exits 0")
finally:
    for p in procs:
        p.kill()
        p.wait()
    if sim:
        sim.close()
    d.cleanup()
t.done()
