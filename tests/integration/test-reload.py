#!/usr/bin/env python3
"""SIGHUP takes away what the new kvmid.conf no longer grants.

A [domain] removed from the file goes down as a stopped VM does: operators
watching it (even with no KVMI channel, under valgrind where available:
the watch used to outlive the freed domain) are told why, its channel
closes, its sessions end, tokens and mappings are revoked, all audited.
An [introspector] removed, or whose key or uids changed, loses its
sessions (audited with the reason) and its connections, and must
authenticate again; an unchanged one keeps everything."""

import json
import os
import re
import signal
import tempfile
import time
from kvmidtest import (Daemon, Tap, Varlink, Sim, finish, SANITIZERS, auth_proof, authenticate, kvmi_socket, skip_all,
                       wait_for, KVMI_SIM)

if not os.access(KVMI_SIM, os.X_OK):
    skip_all("kvmi-sim is not built (make check builds it)")

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-reload-")
UID = os.getuid()
U = {"t1": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e81", "t2": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e82",
     "ghost": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e83", "vm-a": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e84"}
KEYS = {}


def write_key(name, k):
    KEYS[name] = k
    path = os.path.join(work, name + ".key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, k)
    os.close(fd)
    return path


def target(name):
    return "[domain %s]\nuuid = %s\ncookie = none\n" % (name, U[name])


def records(d):
    path = os.path.join(d.runtime, "audit.log")
    for _ in range(100):    # let the writer settle
        size = os.path.getsize(path)
        time.sleep(0.03)
        if os.path.getsize(path) == size:
            break
    with open(path) as f:
        return [json.loads(x) for x in f if x.endswith("\n")]


def audit(d, kind, since=0):
    return [r for r in records(d) if r["kind"] == kind and r["seq"] > since]


def last_seq(d):
    return max([r["seq"] for r in records(d)] + [0])


def recv(v):
    """The next message, or None if none comes in time."""
    try:
        return v.recv()
    except OSError:
        return None


def err(r):
    return (r or {}).get("error")


def reason(r):
    return ((r or {}).get("parameters") or {}).get("reason") or ""


def reload(d, text, timeout=10):
    n = d.logtext().count("configuration reloaded")
    d.write_config(text)
    d.signal(signal.SIGHUP)
    return wait_for(lambda: d.logtext().count("configuration reloaded") > n, timeout)



# ---- a watched domain without a channel, removed (valgrind) ------------------
vg = os.environ.get("VALGRIND", "no")
use_vg = vg not in ("", "no") and not SANITIZERS
d = Daemon(target("t1") + target("ghost"), valgrind=use_vg)
slow = 6 if use_vg else 1
try:
    w = d.connect("admin", 10 * slow)
    w.send("io.kvmid.Admin.WatchEvents", {"domain": "ghost"}, more=True)
    first = w.recv()
    t.ok(first and first.get("continues") and first["parameters"] == {"event": None},
         "WatchEvents on a configured domain with no KVMI channel: live", first)
    ctl = d.kvmictl_stream("events", "ghost", timeout=10 * slow)
    t.ok(ctl is not None, "kvmictl events ghost is watching too")
    t.ok(reload(d, target("t1"), 10 * slow), "SIGHUP without [domain ghost]")
    end = recv(w)
    t.ok(err(end) == "io.kvmid.Admin.WatchEnded" and end["parameters"] ==
         {"domain": "ghost", "reason": "removed from the configuration"},
         "the watcher's stream ends with WatchEnded and the reason", end)
    if ctl:
        rc, stderr = finish(ctl, 10 * slow)
        t.ok(rc == 0 and "WatchEnded" in stderr and "removed from the configuration" in stderr,
             "kvmictl events ghost exits 0, saying why", (rc, stderr))
    down = audit(d, "domain-down")
    t.ok(len(down) == 1 and down[0]["object"]["target"] == "ghost" and
         down[0]["reason"] == "removed from the configuration", "domain-down audited with the reason", down)
    rc, out, _ = d.kvmictl("--json=short", "domains", timeout=30 * slow)
    t.ok(rc == 0 and [x["name"] for x in json.loads(out)["domains"]] == ["t1"], "ghost is gone from the registry", out)
    w.close()       # the disconnect that used to touch the freed domain
    time.sleep(0.5 * slow)
    rc = d.stop(timeout=120)
    t.eq(rc, 0, "kvmid exits 0")
    if use_vg:
        log = open(d.valgrind_log).read()
        m = re.search(r"ERROR SUMMARY: (\d+) errors", log)
        t.ok(m is not None and m.group(1) == "0", "valgrind: 0 errors (no use of the removed domain)", log[-3000:])
    else:
        t.skip("valgrind: 0 errors", "valgrind not found or a sanitizer build")
finally:
    d.cleanup()

# ---- a connected target removed; identities removed or changed ----------------
pol = os.path.join(work, "policy")
with open(pol, "w") as f:
    f.write("allow introspector=any target=t* perm=all gpa=0x0-0xfffff\ndefault deny\n")
for n in ("tool", "gone", "rekeyed", "rebound"):
    write_key(n, os.urandom(32))


def ident(name, extra=""):
    return "[introspector %s]\nkey-file = %s\nuid = %d\n%s" % (name, os.path.join(work, name + ".key"), UID, extra)


BASE = ("[policy]\nfile = %s\n[session]\ntoken-lifetime = 60000\n" % pol + target("t1") + target("t2") +
        "[domain vm-a]\nuuid = %s\nrole = introspector\ncookie = none\n" % U["vm-a"] +
        ident("tool", "domain = vm-a\n"))
IDS = ident("gone") + ident("rekeyed") + ident("rebound")
d = Daemon(BASE + IDS)
sim = None
try:
    sim = Sim(["--socket", kvmi_socket(d), "--vm", "t1,%s" % U["t1"], "--vm", "t2,%s" % U["t2"]], work)

    def domains():
        rc, out, _ = d.kvmictl("--json=short", "domains")
        return {x["name"]: x for x in json.loads(out)["domains"]} if rc == 0 else {}

    def sessions():
        rc, out, _ = d.kvmictl("--json=short", "sessions")
        return json.loads(out)["sessions"] if rc == 0 else []

    def login(name, key=None):
        v = Varlink(d.socket("introspector"))
        r = authenticate(v, name, key or KEYS[name])
        return v, r

    def session(name, tgt, subscribe=True):
        """An authenticated connection with a session on tgt, and a
        subscriber to it on a second connection."""
        owner, r = login(name)
        sid = owner.call("io.kvmid.Introspector.OpenSession", {"target": tgt})["parameters"]["session"]
        sub = None
        if subscribe:
            sub, _ = login(name)
            sub.send("io.kvmid.Introspector.Subscribe", {"session": sid}, more=True)
            sub.recv()
        return owner, sub, sid

    t.ok(wait_for(lambda: all(domains().get(x, {}).get("kvmi") == "ready" for x in ("t1", "t2"))),
         "two simulated targets ready")

    # t2 watched, with a session, a subscriber, a live token and a mapping
    owner, sub, sid = session("tool", "t2")
    tok = [owner.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x1000, "size": 0x1000})
           for _ in range(2)]
    t.ok(all("error" not in x for x in tok), "two map tokens on t2", tok)
    h = Varlink(d.socket("hypervisor"))
    revs = Varlink(d.socket("hypervisor"))
    revs.send("io.kvmid.Hypervisor.WatchRevocations", {}, more=True)
    revs.recv()
    r = h.call("io.kvmid.Hypervisor.MemMap", {"introspector": "vm-a", "token": tok[0]["parameters"]["token"],
                                               "target_gpa": 0x1000, "local_gpa": 0x10000})
    t.ok("error" not in r, "one of them mapped", r)
    w = Varlink(d.socket("admin"))
    w.send("io.kvmid.Admin.WatchEvents", {"domain": "t2"}, more=True)
    w.recv()
    keep_owner, keep_sub, keep_sid = session("tool", "t1")
    s0 = last_seq(d)
    WHY = "removed from the configuration"
    t.ok(reload(d, BASE.replace(target("t2"), "") + IDS), "SIGHUP without [domain t2]")
    end = recv(sub)
    t.ok(err(end) == "io.kvmid.Introspector.SessionEnded" and reason(end) == WHY,
         "t2's subscriber: SessionEnded, removed from the configuration", end)
    end = recv(w)
    t.ok(err(end) == "io.kvmid.Admin.WatchEnded" and reason(end) == WHY, "t2's watcher: WatchEnded, with why", end)
    rv = recv(revs)
    t.ok((rv or {}).get("parameters", {}).get("local_gpa") == 0x10000 and reason(rv) == WHY,
         "WatchRevocations: the mapping is revoked", rv)
    t.ok(wait_for(lambda: "t2" not in domains()), "t2 is gone from the registry", sorted(domains()))
    t.ok('domain "t2": KVMI channel closed: %s' % WHY in d.logtext(), "kvmid closed t2's KVMI channel",
         d.logtext()[-2000:])
    down = audit(d, "domain-down", s0)
    t.ok(len(down) == 1 and down[0]["object"]["target"] == "t2" and down[0]["reason"] == WHY,
         "domain-down audited", down)
    sc = audit(d, "session-close", s0)
    t.ok(len(sc) == 1 and sc[0]["data"]["session"] == sid and sc[0]["reason"] == WHY,
         "session-close audited with the reason", sc)
    rk = audit(d, "token-revoke", s0)
    t.ok(len(rk) == 2 and {x["data"]["token_id"] for x in rk} == {x["parameters"]["token_id"] for x in tok} and
         [x["reason"] for x in rk if "local_gpa" in x["data"]] == [WHY],
         "token-revoke audited: the live token, and the mapping with the reason", rk)
    t.ok([x["session"] for x in sessions()] == [keep_sid], "the session on t1 is untouched")
    for v in (owner, sub, w, h, revs):
        v.close()

    # identities: gone, rekeyed, rebound lose everything; tool keeps its own
    held = {n: session(n, "t1") for n in ("gone", "rekeyed", "rebound")}
    idle = {n: login(n)[0] for n in ("gone", "rekeyed", "rebound")}
    s0 = last_seq(d)
    old_keys = dict(KEYS)
    write_key("rekeyed", os.urandom(32))
    ids2 = ident("rekeyed") + ident("rebound").replace("uid = %d\n" % UID, "uid = %d 4242\n" % UID)
    t.ok(reload(d, BASE.replace(target("t2"), "") + ids2), "SIGHUP: gone removed, rekeyed's key and rebound's uids "
         "changed")
    for n, why in (("gone", "introspector removed from configuration"),
                   ("rekeyed", "introspector key or binding changed"),
                   ("rebound", "introspector key or binding changed")):
        owner, sub, sid = held[n]
        end = recv(sub)
        t.ok(err(end) == "io.kvmid.Introspector.SessionEnded" and reason(end) == why,
             "%s's subscriber: SessionEnded, %s" % (n, why), end)
        t.ok(owner.at_eof() and sub.at_eof() and idle[n].at_eof(), "%s's connections are closed" % n)
        sc = [x for x in audit(d, "session-close", s0) if x["data"]["session"] == sid]
        t.ok(len(sc) == 1 and sc[0]["reason"] == why and sc[0]["subject"]["introspector"] == n,
             "%s: session-close audited with the reason" % n, sc)
    t.ok([x["session"] for x in sessions()] == [keep_sid], "only tool's session is left")
    r = keep_owner.call("io.kvmid.Introspector.GetMapToken", {"session": keep_sid, "gpa": 0x1000, "size": 0x1000})
    sim.cmd(cmd="send", vm="t1", count=1)
    ev = recv(keep_sub)
    t.ok("error" not in r and ((ev or {}).get("parameters") or {}).get("event", {}).get("target") == "t1",
         "tool, unchanged, keeps its session, its connection and its subscriber", (r, ev))
    v, r = login("gone", old_keys["gone"])
    t.eq(err(r), "io.kvmid.Introspector.AuthenticationFailed", "gone cannot authenticate again")
    v.close()
    v, r = login("rekeyed", old_keys["rekeyed"])
    t.eq(err(r), "io.kvmid.Introspector.AuthenticationFailed", "rekeyed: the old key no longer works")
    v.close()
    v, r = login("rekeyed")
    t.ok("error" not in r and "error" not in v.call("io.kvmid.Introspector.OpenSession", {"target": "t1"}),
         "rekeyed: the new key does", r)
    v.close()
    rc, out, e = d.kvmictl("revoke", "introspector", "gone")
    t.eq(rc, 4, "revoke introspector gone: nothing left of it, exit 4")
    rc, out, e = d.kvmictl("revoke", "introspector", "tool")
    t.ok(rc == 0 and keep_owner.at_eof(), "revoke introspector tool still works", (rc, out, e))
    for v in [keep_owner, keep_sub] + list(idle.values()) + [x for h3 in held.values() for x in h3[:2]]:
        v.close()
    t.eq(d.stop(), 0, "kvmid exits 0")
finally:
    if sim:
        sim.close()
    d.cleanup()
t.done()
