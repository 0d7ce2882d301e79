#!/usr/bin/env python3
"""Fan-out correctness: 64 subscribers across 8 targets, per-target order
and exact counts for each, and a deliberately stalled subscriber (never
reads) that gets missed counts while the others get everything and the
daemon's memory stays bounded."""

import json
import os
import select
import signal
import socket
import tempfile
import time
from kvmidtest import Daemon, Tap, Sim, authenticate, kvmi_socket, skip_all, wait_for, KVMI_SIM

if not os.access(KVMI_SIM, os.X_OK):
    skip_all("kvmi-sim is not built (make check builds it)")

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-fanout-")
TARGETS = ["t%d" % i for i in range(8)]
UUID = {n: "00000000-0000-4000-8000-%012d" % i for i, n in enumerate(TARGETS)}
k = os.urandom(32)
kp = os.path.join(work, "tool.key")
fd = os.open(kp, os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, k)
os.close(fd)
pol = os.path.join(work, "policy")
with open(pol, "w") as f:
    f.write("allow introspector=tool target=any perm=attach,events\ndefault deny\n")
conf = ("[policy]\nfile = %s\n[daemon]\nmax-connections-per-uid = 4096\n[introspector]\nmax-output-bytes = 1M\n"
        "[session]\nsubscriber-queue-events = 64\nsubscriber-queue-bytes = 256K\n[introspector tool]\nkey-file = %s\n"
        % (pol, kp))
for n in TARGETS:
    conf += "[domain %s]\nuuid = %s\ncookie = none\n" % (n, UUID[n])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.connect(path)
        self.buf = b""

    def send(self, method, params, more=False):
        m = {"method": method, "parameters": params}
        if more:
            m["more"] = True
        self.s.sendall(json.dumps(m).encode() + b"\0")

    def messages(self):
        """Whatever complete messages are buffered now (after a recv)."""
        out = []
        while b"\0" in self.buf:
            m, _, self.buf = self.buf.partition(b"\0")
            out.append(json.loads(m))
        return out

    def _one(self):
        m, _, self.buf = self.buf.partition(b"\0")
        return json.loads(m)

    def call(self, method, params=None):
        self.send(method, params or {})
        while b"\0" not in self.buf:
            self.buf += self.s.recv(1 << 16)
        return self._one()


def login(path):
    c = Conn(path)
    r = authenticate(c, "tool", k)
    assert "error" not in r, r
    return c


def subscribe(c, session):
    """Subscribe and wait for the reply that says the stream is open."""
    c.send("io.kvmid.Introspector.Subscribe", {"session": session}, more=True)
    while b"\0" not in c.buf:
        c.buf += c.s.recv(1 << 16)
    c._one()
    return c


d = Daemon(conf)
sim = Sim(["--socket", kvmi_socket(d), "--vcpus", "2"] + sum([["--vm", "%s,%s" % (n, UUID[n])] for n in TARGETS], []),
          work)
try:
    path = d.socket("introspector")
    owner = login(path)
    sessions = {n: owner.call("io.kvmid.Introspector.OpenSession", {"target": n})["parameters"]["session"]
                for n in TARGETS}
    subs = []
    for n in TARGETS:
        for _ in range(8):
            subs.append((n, subscribe(login(path), sessions[n])))
    t.eq(len(subs), 64, "64 subscribers across 8 targets")
    stalled = login(path)
    stalled.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # Its subscription must be live before the first event, or its counts
    # would be short by whatever was fanned out before it arrived.
    subscribe(stalled, sessions["t0"])
    rss0 = rss_kib(d.proc.pid)

    # Each target's two vCPUs send N events; all targets at once.
    N = 200     # per vCPU, at a rate the test's one reading thread keeps up with
    got = {id(c): [] for _, c in subs}
    for n in TARGETS:
        sim.f.write(json.dumps({"cmd": "send", "vm": n, "count": N, "rate": 100, "regs": {"rdx": TARGETS.index(n)}})
                    + "\n")
    sim.f.flush()
    want = 2 * N
    deadline = time.time() + 60
    socks = {c.s: c for _, c in subs}
    while time.time() < deadline and any(len(got[id(c)]) < want for _, c in subs):
        ready, _, _ = select.select(list(socks), [], [], 1.0)
        for s in ready:
            c = socks[s]
            data = s.recv(1 << 20)
            if not data:
                del socks[s]
                continue
            c.buf += data
            for m in c.messages():
                ev = m.get("parameters", {}).get("event")
                if ev:
                    got[id(c)].append(ev)
    replies = [json.loads(sim.f.readline()) for _ in TARGETS]
    t.ok(all(r.get("acked") == want for r in replies), "every vCPU event acked (%d per target)" % want,
         json.dumps(replies)[:500])
    counts = [len(got[id(c)]) for _, c in subs]
    t.ok(all(x == want for x in counts), "exact counts: every subscriber got all %d events of its target" % want,
         counts)
    ordered = all([e["seq"] for e in got[id(c)]] == list(range(1, want + 1)) for _, c in subs)
    t.ok(ordered, "per-target order: seq 1..%d for every subscriber" % want)
    right = all(all(e["target"] == n and e["regs"]["rdx"] == TARGETS.index(n) and e["missed"] == 0
                    for e in got[id(c)]) for n, c in subs)
    t.ok(right, "each subscriber only its target's events, none missed")
    growth = rss_kib(d.proc.pid) - rss0
    st = json.loads(d.kvmictl("--json=short", "call", "io.kvmid.Admin.ListSessions")[1])["sessions"]
    t0 = [x for x in st if x["target"] == "t0"][0]
    st_sub = max(t0["subscriptions"], key=lambda x: x["missed"])
    t.ok(st_sub["missed"] > 0 and st_sub["delivered"] + st_sub["missed"] == want and st_sub["queued"] <= 64,
         "the stalled subscriber misses events (queue bounded at 64)", json.dumps(st_sub))
    t.ok(growth < 32 * 1024, "daemon RSS bounded while a subscriber is stalled (grew %d KiB)" % growth)

    # The stalled one reads again: it gets what was queued, and the next
    # delivery says how many it missed.
    stalled.s.settimeout(1)
    evs = []

    def drain(until_seq=None):
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                data = stalled.s.recv(1 << 20)
            except socket.timeout:
                return
            if not data:
                return
            stalled.buf += data
            for m in stalled.messages():
                ev = m.get("parameters", {}).get("event")
                if ev:
                    evs.append(ev)
            if until_seq and evs and evs[-1]["seq"] == until_seq:
                return

    drain()
    st = json.loads(d.kvmictl("--json=short", "call", "io.kvmid.Admin.ListSessions")[1])["sessions"]
    missed_now = max(x["missed"] for x in [y for y in st if y["target"] == "t0"][0]["subscriptions"])
    sim.cmd(cmd="send", vm="t0", vcpu=0, count=1)
    drain(want + 1)
    last = evs[-1] if evs else {}
    t.ok(last.get("seq") == want + 1 and last.get("missed") == missed_now and missed_now > 0,
         "its next delivery carries missed: N", json.dumps([(e["seq"], e["missed"]) for e in evs[-3:]]))
    t.ok(all(evs[i]["seq"] < evs[i + 1]["seq"] for i in range(len(evs) - 1)), "and what it got is in order")
finally:
    sim.close()
    d.stop()
    d.cleanup()

# subscriber-flush-delay: events closer together than the delay share one
# write, at most the delay late; the first after a quiet spell, and every
# event with the delay at 0, goes out at once.
DELAY = 0.1
conf2 = conf.replace("[session]\n", "[session]\nsubscriber-flush-delay = %d\n" % int(DELAY * 1e6))
d = Daemon(conf2)
sim = Sim(["--socket", kvmi_socket(d), "--vcpus", "1", "--vm", "t0," + UUID["t0"]], work)
try:
    path = d.socket("introspector")
    owner = login(path)
    session = owner.call("io.kvmid.Introspector.OpenSession", {"target": "t0"})["parameters"]["session"]
    c = subscribe(login(path), session)
    c.s.settimeout(2)

    def burst(count):
        """Send count events; (arrival time after the send, events) of each recv."""
        t_send = time.monotonic()
        sim.cmd(cmd="send", vm="t0", count=count)
        seen, reads = 0, []
        while seen < count:
            try:
                data = c.s.recv(1 << 20)
            except socket.timeout:
                break
            c.buf += data
            n = sum(1 for m in c.messages() if m.get("parameters", {}).get("event"))
            if n:
                reads.append((time.monotonic() - t_send, n))
                seen += n
        return reads

    time.sleep(2 * DELAY)
    first = burst(1)
    t.ok(len(first) == 1 and first[0][0] < DELAY / 2,
         "flush delay %gs: the first event after a quiet spell is written at once" % DELAY, first)
    rest = burst(3)
    t.ok(sum(n for _, n in rest) == 3 and len(rest) == 1 and DELAY * 0.5 <= rest[0][0] <= DELAY * 4,
         "events right after it wait for the flush tick and share one write", rest)
    with open(d.config_path) as f:
        text = f.read()
    d.write_config(text.replace("subscriber-flush-delay = %d" % int(DELAY * 1e6), "subscriber-flush-delay = 0"))
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: "configuration reloaded" in d.logtext(), 5), "SIGHUP: configuration reloaded", d.logtext()[-500:])
    time.sleep(0.3)
    burst(1)
    quick = burst(3)
    t.ok(sum(n for _, n in quick) == 3 and max(x for x, _ in quick) < DELAY / 2,
         "subscriber-flush-delay = 0 (after SIGHUP): every event written at once", quick)
finally:
    sim.close()
    d.stop()
    d.cleanup()
t.done()
