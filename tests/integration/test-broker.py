#!/usr/bin/env python3
"""The broker end to end: kvmid, kvmi-sim playing the targets (and their
kernels' map tokens), introspector tools over the Introspector socket and
the VMM over the Hypervisor socket. Every deny path and every allow path,
each checked in the reply and in the audit record."""

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from kvmidtest import Daemon, Tap, Varlink, Sim, auth_proof, kvmi_socket, skip_all, KVMI_SIM, wait_for
from kvmidtest import KVMICTL

if not os.access(KVMI_SIM, os.X_OK):
    skip_all("kvmi-sim is not built (make check builds it)")

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-broker-")
UID = os.getuid()
U = {"web1": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e01", "web2": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02",
     "db1": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e03", "vm-a": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5ea1",
     "vm-b": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5ea2"}
KEYS = {}


def key(name):
    k = os.urandom(32)
    KEYS[name] = k
    path = os.path.join(work, name + ".key")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, k)
    os.close(fd)
    return path


POLICY = """deny  introspector=any target=db1 perm=all
allow introspector=forensics target=web1 perm=all max-mappings=2 gpa=0x0-0xfffff rate=20/s
allow introspector=forensics target=web2 perm=attach,events
allow introspector=other target=web1 perm=attach,map gpa=0x0-0xfffff rate=2/s
allow introspector=slow target=web* perm=attach,events
default deny
allow introspector=piper target=web2 perm=attach,map
"""
pol = os.path.join(work, "policy")
with open(pol, "w") as f:
    f.write(POLICY)
conf = """[policy]
file = %s
[introspector]
vsock-port = 17771
[session]
token-lifetime = 800
token-timeout = 700
subscriber-queue-events = 16
max-tokens = 10
[introspector forensics]
key-file = %s
domain = vm-a
uid = %d
[introspector other]
key-file = %s
domain = vm-b
uid = %d
[introspector slow]
key-file = %s
uid = %d
[introspector elsewhere]
key-file = %s
uid = 4242
[introspector vmonly]
key-file = %s
domain = vm-a
[introspector piper]
key-file = %s
uid = %d
""" % (pol, key("forensics"), UID, key("other"), UID, key("slow"), UID, key("elsewhere"), key("vmonly"), key("piper"),
       UID)
for n in ("web1", "web2", "db1"):
    conf += "[domain %s]\nuuid = %s\ncookie = none\n" % (n, U[n])
for n in ("vm-a", "vm-b"):
    conf += "[domain %s]\nuuid = %s\nrole = introspector\ncookie = none\n" % (n, U[n])

d = Daemon(conf)
sim = Sim(["--socket", kvmi_socket(d), "--vcpus", "2"] + sum([["--vm", "%s,%s" % (n, U[n])] for n in ("web1", "web2", "db1")], []),
          work)
AUDIT = os.path.join(d.runtime, "audit.log")


def records():
    # Denials are recorded without waiting for the disk: let the writer
    # catch up (the file stops growing) before reading.
    size = -1
    for _ in range(100):
        now = os.path.getsize(AUDIT)
        if now == size:
            break
        size = now
        time.sleep(0.03)
    with open(AUDIT) as f:
        return [json.loads(x) for x in f if x.endswith("\n")]


def audit(kind, since=0):
    return [r for r in records() if r["kind"] == kind and r["seq"] > since]


def last_seq():
    """The last seq once the writer has caught up."""
    recs = records()
    return recs[-1]["seq"] if recs else 0


def intro():
    return Varlink(d.socket("introspector"))


def hello(v):
    return bytes.fromhex(v.call("io.kvmid.Introspector.Hello")["parameters"]["nonce"])


def auth(v, name, k=None):
    n = hello(v)
    return v.call("io.kvmid.Introspector.Authenticate", {"name": name, "proof": auth_proof(k or KEYS[name], n, name)})


def login(name):
    v = intro()
    r = auth(v, name)
    assert "error" not in r, r
    return v


def err(r):
    return r.get("error")


def explained(introspector, target, perm):
    """kvmictl policy explain: (decision, "file:line" of the deciding rule)."""
    ex = json.loads(d.kvmictl("--json=short", "policy", "explain", "--introspector", introspector, "--target", target,
                              "--perm", perm)[1])
    return ex["decision"], "%s:%d" % (ex["file"], ex["line"])


def read_pretty(proc, until, timeout=10):
    """The JSON values a pretty-printing kvmictl writes, up to the first
    for which until() is true: (values, text)."""
    buf, values, dec = "", [], json.JSONDecoder()
    deadline = time.time() + timeout
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if not ready:
            continue
        chunk = os.read(proc.stdout.fileno(), 65536).decode()
        if not chunk:
            break
        buf += chunk
        while True:
            text = buf.lstrip()
            try:
                v, end = dec.raw_decode(text)
            except ValueError:
                break
            values.append(v)
            buf = text[end:]
            if until(v):
                return values, text[:end]
    return values, buf


def tokens():
    return json.loads(d.kvmictl("--json=short", "tokens")[1])["tokens"]


def token_state(token_id):
    return [x["state"] for x in tokens() if x["token_id"] == token_id]


def slow_sync(pid, usec):
    """strace attached to every thread of pid, each fdatasync delayed by
    usec, so an allow's record stays on its way that long; None if strace
    cannot attach."""
    p = subprocess.Popen(["strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=fdatasync",
                          "-e", "inject=fdatasync:delay_enter=%d" % usec, "-p", str(pid)], stderr=subprocess.DEVNULL)

    def attached():
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                if "TracerPid:\t%d\n" % p.pid not in f.read():
                    return False
        return True
    if p.poll() is None and wait_for(attached, 5):
        return p
    p.terminate()
    p.wait()
    return None


try:
    t.ok(wait_for(lambda: all(x["kvmi"] == "ready" for x in json.loads(d.kvmictl("--json=short", "domains")[1])["domains"]
                              if x["role"] == "target")), "three simulated targets ready")

    # ---- authentication denies ----
    v = intro()
    s0 = last_seq()
    t.eq(err(v.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})), "org.varlink.service.PermissionDenied",
         "unauthenticated: nothing but Hello/Authenticate")
    t.eq(last_seq(), s0, "refused before Authenticate: no audit record (kvmid-audit(5): refused before a decision)")
    t.eq(err(auth(v, "forensics", b"\0" * 32)), "io.kvmid.Introspector.AuthenticationFailed", "wrong key")
    n = hello(v)
    p = auth_proof(KEYS["forensics"], n, "forensics")
    t.ok("error" not in v.call("io.kvmid.Introspector.Authenticate", {"name": "forensics", "proof": p}), "right key")
    v2 = intro()
    hello(v2)
    t.eq(err(v2.call("io.kvmid.Introspector.Authenticate", {"name": "forensics", "proof": p})),
         "io.kvmid.Introspector.AuthenticationFailed", "replayed proof (other connection, other nonce)")
    t.eq(err(auth(v2, "elsewhere")), "io.kvmid.Introspector.AuthenticationFailed", "uid binding: wrong uid")
    t.eq(err(auth(v2, "vmonly")), "io.kvmid.Introspector.AuthenticationFailed",
         "VM-bound identity without uid= on the Unix socket")
    n = hello(v2)
    t.eq(err(v2.call("io.kvmid.Introspector.Authenticate",
                     {"name": "slow", "proof": auth_proof(KEYS["slow"], n, "slow", "vsock:5")})),
         "io.kvmid.Introspector.AuthenticationFailed", "proof bound to another peer (vsock CID) refused on unix")
    fails = audit("auth-fail", s0)
    t.ok(len(fails) == 5 and all(r["decision"] == "deny" and r["subject"]["uid"] == UID for r in fails),
         "every failure audited as a deny with the peer", json.dumps([r["subject"] for r in fails]))
    t.ok("introspector listener on vsock port 17771" in d.logtext() or "vsock listener on port 17771 is off" in d.logtext(),
         "the introspector vsock listener is up (or says why not)")
    t.skip("vsock CID binding end to end", "this kernel has no vsock loopback transport; the CID rules are "
           "unit-tested in check-introspector, and a vsock-bound proof is refused on the Unix socket above")
    v2.close()
    a = v

    # ---- sessions ----
    s0 = last_seq()
    r = a.call("io.kvmid.Introspector.OpenSession", {"target": "db1"})
    t.ok(err(r) == "io.kvmid.Introspector.PolicyDenied" and r["parameters"]["rule"] == pol + ":1",
         "policy says no: PolicyDenied with the deciding rule", json.dumps(r))
    rec = audit("session-open", s0)
    t.ok(len(rec) == 1 and rec[0]["decision"] == "deny" and rec[0]["rule"] == pol + ":1" and
         rec[0]["object"]["target"] == "db1", "session-open deny audited with rule and target", json.dumps(rec))
    ex = json.loads(d.kvmictl("--json=short", "policy", "explain", "--introspector", "forensics", "--target", "db1",
                              "--perm", "attach")[1])
    t.ok(ex["decision"] == "deny" and "%s:%d" % (ex["file"], ex["line"]) == rec[0]["rule"],
         "policy explain names the rule that actually decided", json.dumps(ex))
    t.eq(err(a.call("io.kvmid.Introspector.OpenSession", {"target": "nope"})),
         "io.kvmid.Introspector.TargetUnavailable", "unknown target")
    t.eq(err(a.call("io.kvmid.Introspector.OpenSession", {"target": "vm-a"})),
         "io.kvmid.Introspector.TargetUnavailable", "an introspector VM is no target")
    r = a.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})
    sid = r["parameters"]["session"]
    t.ok(len(sid) == 32 and r["parameters"]["uuid"] == U["web1"], "session opened on web1")
    rec = audit("session-open", s0)
    t.ok(rec[-1]["decision"] == "allow" and rec[-1]["data"]["session"] == sid and rec[-1]["rule"] == pol + ":2",
         "session-open allow audited (durable before the reply)")
    ex = json.loads(d.kvmictl("--json=short", "policy", "explain", "--introspector", "forensics", "--target", "web1",
                              "--perm", "attach")[1])
    t.ok(ex["decision"] == "allow" and "%s:%d" % (ex["file"], ex["line"]) == rec[-1]["rule"],
         "and explain agrees with the allow")
    o = login("other")
    t.eq(err(o.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0, "size": 4096})),
         "io.kvmid.Introspector.NoSuchSession", "another introspector cannot use the session")

    # A failed Authenticate uses its nonce up: the right proof for it is refused after.
    nv = intro()
    n = hello(nv)
    s0 = last_seq()
    t.eq(err(nv.call("io.kvmid.Introspector.Authenticate", {"name": "other", "proof": auth_proof(b"\1" * 32, n, "other")})),
         "io.kvmid.Introspector.AuthenticationFailed", "nonce reuse: a wrong proof first")
    t.eq(err(nv.call("io.kvmid.Introspector.Authenticate", {"name": "other", "proof": auth_proof(KEYS["other"], n, "other")})),
         "io.kvmid.Introspector.AuthenticationFailed", "nonce reuse: then the right proof with the same nonce: refused")
    t.eq(err(nv.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})), "org.varlink.service.PermissionDenied",
         "nonce reuse: the connection stays unauthenticated")
    fails = audit("auth-fail", s0)
    t.ok(len(fails) == 2 and not audit("auth-ok", s0) and all(r["subject"]["introspector"] == "other" for r in fails),
         "nonce reuse: both attempts audited as auth-fail", json.dumps(fails))
    nv.close()

    # ---- subscribe and fan-out to two subscribers ----
    subs = []
    for _ in range(2):
        x = login("forensics")
        x.send("io.kvmid.Introspector.Subscribe", {"session": sid}, more=True)
        subs.append(x)
    t.ok(all(x.recv()["parameters"] == {"event": None} for x in subs), "Subscribe: first reply says live")
    f1 = login("forensics")
    f1.send("io.kvmid.Introspector.Subscribe", {"session": sid, "vcpus": [1]}, more=True)
    f1.recv()
    rec = audit("subscribe")
    t.ok(len(rec) == 3 and all(r["decision"] == "allow" for r in rec), "subscribe audited")
    r = sim.cmd(cmd="send", vm="web1", count=5, regs={"rdx": 0x77, "r8": 0xdead})
    t.eq(r.get("acked"), 10, "the vCPUs' events acked")
    evs = [[x.recv()["parameters"]["event"] for _ in range(10)] for x in subs]
    t.ok(evs[0] == evs[1], "both subscribers get the same events")
    t.ok([e["seq"] for e in evs[0]] == list(range(1, 11)), "per-target order, consecutive seq",
         [e["seq"] for e in evs[0]])
    e = evs[0][0]
    t.ok(e["regs"]["rdx"] == 0x77 and e["regs"]["rax"] == 34 and e["unreliable"] == ["r8", "r9"] and e["missed"] == 0
         and e["target"] == "web1" and e["uuid"] == U["web1"], "event: registers, r8/r9 marked unreliable",
         json.dumps(e))
    ev1 = [f1.recv()["parameters"]["event"] for _ in range(5)]
    t.ok(all(x["vcpu"] == 1 for x in ev1), "vcpu filter: only vCPU 1")

    # forensics may not listen to web2's events? it may; slow may attach but not map
    so = login("slow")
    r = so.call("io.kvmid.Introspector.OpenSession", {"target": "web2"})
    ssid = r["parameters"]["session"]
    r = so.call("io.kvmid.Introspector.GetMapToken", {"session": ssid, "gpa": 0, "size": 4096})
    t.ok(err(r) == "io.kvmid.Introspector.PolicyDenied" and r["parameters"]["permission"] == "map",
         "policy says no to map: PolicyDenied(map)", json.dumps(r))
    td = audit("token-deny")
    t.ok(td and td[-1]["reason"] == "policy" and td[-1]["rule"] == pol + ":6", "token-deny audited", json.dumps(td))
    ot = o.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})["parameters"]["session"]
    r = o.call("io.kvmid.Introspector.Subscribe", {"session": ot}, more=True)
    t.ok(err(r) == "io.kvmid.Introspector.PolicyDenied" and r["parameters"]["permission"] == "events",
         "policy says no to events")
    t.ok(audit("subscribe")[-1]["decision"] == "deny", "subscribe deny audited")
    sd = audit("subscribe")
    t.eq(explained("other", "web1", "events"), ("deny", sd[-1]["rule"]),
         "policy explain --perm events names the rule of the real subscribe deny")
    t.eq(explained("forensics", "web1", "events"), ("allow", sd[0]["rule"]),
         "policy explain --perm events names the rule of the real subscribe allow")
    t.eq(explained("slow", "web2", "map"), ("deny", td[-1]["rule"]),
         "policy explain --perm map names the rule of the real token deny")

    # ---- tokens ----
    r = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x200000, "size": 4096})
    t.eq(err(r), "io.kvmid.Introspector.GpaOutsideRange", "token for a gpa outside the rule's ranges")
    t.ok("gpa" in audit("token-deny")[-1]["reason"], "audited with the reason")
    r = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x1000, "size": 0x2000})
    tok = r["parameters"]
    t.ok(len(tok["token"]) == 64 and tok["token_id"].startswith("t-"), "token minted", json.dumps(r))
    mint = audit("token-mint")
    t.ok(mint[-1]["data"]["token_id"] == tok["token_id"] and mint[-1]["decision"] == "allow"
         and tok["token"] not in json.dumps(mint), "token-mint audited, never the secret")
    lt = json.loads(d.kvmictl("--json=short", "tokens")[1])["tokens"]
    t.ok(any(x["token_id"] == tok["token_id"] and x["state"] == "live" for x in lt) and tok["token"] not in json.dumps(lt),
         "ListTokens: public id and state, no secret")
    live = sim.cmd(cmd="tokens", vm="web1")
    t.ok(tok["token"] in json.dumps(live), "the token is the kernel's (minted with KVMI_GET_MAP_TOKEN)")

    h = Varlink(d.socket("hypervisor"))
    watch = Varlink(d.socket("hypervisor"))
    watch.send("io.kvmid.Hypervisor.WatchRevocations", {}, more=True)
    watch.recv()

    def mem_map(vm, token, tgpa, lgpa):
        return h.call("io.kvmid.Hypervisor.MemMap", {"introspector": vm, "token": token, "target_gpa": tgpa,
                                                     "local_gpa": lgpa})

    def revocation(local_gpa):
        """The next WatchRevocations notice for local_gpa (others skipped), or None."""
        watch.sock.settimeout(5)
        try:
            while True:
                rv = watch.recv()
                if rv is None or rv["parameters"]["local_gpa"] == local_gpa:
                    return rv
        except (socket.timeout, TimeoutError):
            return None
        finally:
            watch.sock.settimeout(10)

    def denied(args, word, desc, token_id):
        """MemMap(*args) is denied for word, and its map-deny record says so."""
        s = last_seq()
        r = mem_map(*args)
        t.ok(err(r) == "io.kvmid.Hypervisor.MapDenied" and word in r["parameters"]["reason"], desc, json.dumps(r))
        md = audit("map-deny", s)
        t.ok(len(md) == 1 and word in md[0]["reason"] and md[0]["data"].get("token_id") == token_id
             and md[0]["data"]["introspector_vm"] == args[0], desc + ": map-deny audited with the reason and token",
             json.dumps(md))
        return md[0] if md else {}

    denied(("vm-b", tok["token"], 0x1000, 0x10000), "not bound to VM", "token of another introspector: denied",
           tok["token_id"])
    md = audit("map-deny")[-1]
    t.ok(md["subject"]["introspector"] == "forensics" and md["data"]["introspector_vm"] == "vm-b"
         and md["data"]["token_id"] == tok["token_id"], "map-deny audited with who and which token")
    denied(("vm-a", tok["token"], 0x5000, 0x10000), "outside token", "target gpa outside the token's range: denied",
           tok["token_id"])
    denied(("vm-a", "00" * 32, 0x1000, 0x10000), "unknown token", "unknown token: denied", None)
    denied(("nosuch", tok["token"], 0x1000, 0x10000), "no such introspector VM", "unknown introspector VM: denied",
           tok["token_id"])
    r = mem_map("vm-a", tok["token"], 0x2000, 0x10000)
    t.ok("error" not in r and r["parameters"] == {"target": "web1", "uuid": U["web1"], "token_id": tok["token_id"]},
         "MemMap allowed", json.dumps(r))
    ma = audit("map-allow")
    t.ok(len(ma) == 1 and ma[0]["rule"] == pol + ":2" and ma[0]["data"]["local_gpa"] == 0x10000
         and ma[0]["data"]["target_gpa"] == 0x2000, "map-allow audited (durable before the reply)")
    t.eq(explained("forensics", "web1", "map"), ("allow", ma[0]["rule"]),
         "policy explain --perm map names the rule of the real map allow")
    t.eq(explained("forensics", "web1", "map"), ("allow", mint[-1]["rule"]), "and of the token mint")
    denied(("vm-a", tok["token"], 0x2000, 0x11000), "consumed", "the same token again: consumed", tok["token_id"])
    t.eq(token_state(tok["token_id"]), ["consumed"], "token listed as consumed")
    # expired
    tok2 = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x1000, "size": 0x1000})["parameters"]
    time.sleep(1.5)
    denied(("vm-a", tok2["token"], 0x1000, 0x12000), "expired", "an expired token: denied", tok2["token_id"])
    t.ok(any(x["data"]["token_id"] == tok2["token_id"] for x in audit("token-expire")), "token-expire audited")
    # revoked
    tok3 = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x1000, "size": 0x1000})["parameters"]
    t.ok("error" not in a.call("io.kvmid.Introspector.RevokeToken", {"session": sid, "token_id": tok3["token_id"]}),
         "RevokeToken")
    denied(("vm-a", tok3["token"], 0x1000, 0x12000), "revoked", "a revoked token: denied", tok3["token_id"])
    t.ok(audit("token-revoke")[-1]["data"]["token_id"] == tok3["token_id"], "token-revoke audited")
    # a reload narrows the rule's gpa=: a live token may not map what it no longer allows
    tok6 = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x1000, "size": 0x1000})["parameters"]
    with open(pol, "w") as f:
        f.write(POLICY.replace("gpa=0x0-0xfffff rate=20/s", "gpa=0x0-0xfff rate=20/s"))
    t.eq(d.kvmictl("policy", "reload")[0], 0, "policy reloaded: forensics' gpa= on web1 narrowed to the first page")
    md = denied(("vm-a", tok6["token"], 0x1000, 0x12000), "gpa=",
                "a token minted before the reload, for a page gpa= no longer allows: denied", tok6["token_id"])
    t.eq(md.get("rule"), pol + ":2", "the map-deny names the rule whose gpa= decided")
    if not md:          # allowed after all: undo it, so the quota checks below still hold
        h.call("io.kvmid.Hypervisor.MemUnmap", {"introspector": "vm-a", "local_gpa": 0x12000})
    with open(pol, "w") as f:
        f.write(POLICY)
    t.eq(d.kvmictl("policy", "reload")[0], 0, "policy restored")
    # quota: max-mappings=2
    tok4 = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x1000, "size": 0x1000})["parameters"]
    t.ok("error" not in mem_map("vm-a", tok4["token"], 0x1000, 0x13000), "second mapping allowed")
    tok5 = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0x1000, "size": 0x1000})["parameters"]
    denied(("vm-a", tok5["token"], 0x1000, 0x14000), "max-mappings", "third mapping: quota exceeded", tok5["token_id"])
    # unmap
    r = h.call("io.kvmid.Hypervisor.MemUnmap", {"introspector": "vm-a", "local_gpa": 0x99000})
    t.ok(err(r) == "io.kvmid.Hypervisor.UnmapDenied" and audit("unmap-deny"), "unknown unmap: denied and audited")
    r = h.call("io.kvmid.Hypervisor.MemUnmap", {"introspector": "vm-a", "local_gpa": 0x13000})
    t.ok("error" not in r and r["parameters"]["target_gpa"] == 0x1000, "MemUnmap of a recorded mapping")
    t.ok(audit("unmap-allow")[-1]["data"]["local_gpa"] == 0x13000, "unmap-allow audited")
    rc, out, _ = d.kvmictl("mappings")
    t.ok(rc == 0 and "0x10000" in out and "0x13000" not in out, "kvmictl mappings", out)

    # ---- kernel tokens run out (8 live): requests wait, then time out ----
    time.sleep(3.2)     # every token the kernel minted so far has expired there
    got = [a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0, "size": 4096}) for _ in range(8)]
    t.ok(all("error" not in x for x in got), "8 tokens: the kernel's live maximum", json.dumps([err(x) for x in got]))
    a.send("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0, "size": 4096})
    time.sleep(0.3)
    r = sim.cmd(cmd="redeem", vm="web1", token=got[0]["parameters"]["token"])
    waited = a.recv()
    t.ok(r.get("ok") and "error" not in waited, "a request that hit EAGAIN waits and is served once a token is used",
         json.dumps(waited))
    r = a.call("io.kvmid.Introspector.GetMapToken", {"session": sid, "gpa": 0, "size": 4096})
    t.ok(err(r) == "io.kvmid.Introspector.TokenTimeout" and r["parameters"]["timeout_ms"] == 700,
         "no token frees up within token-timeout: TokenTimeout", json.dumps(r))
    t.ok("timeout" in audit("token-deny")[-1]["reason"], "the timeout is audited")
    # ---- rate limit (other's rule: rate=2/s), per introspector and target ----
    time.sleep(3.2)
    o2 = login("other")
    ot2 = o2.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})["parameters"]["session"]
    rs = [x.call("io.kvmid.Introspector.GetMapToken", {"session": y, "gpa": 0, "size": 4096})
          for x, y in ((o, ot), (o2, ot2), (o2, ot2), (o, ot))]
    t.ok([err(x) for x in rs] == [None, None, "io.kvmid.Introspector.LimitExceeded", "io.kvmid.Introspector.LimitExceeded"]
         and rs[2]["parameters"] == {"limit": "rate", "max": 2},
         "token rate limit of the rule (rate=2/s): two sessions of one introspector on one target share it",
         json.dumps(rs))
    t.ok("rate" in audit("token-deny")[-1]["reason"], "rate denial audited")
    o2.call("io.kvmid.Introspector.CloseSession", {"session": ot2})
    o2.close()

    # ---- max-tokens = 10 counts requests still waiting for the kernel ----
    pc = [login("piper") for _ in range(12)]
    ps = pc[0].call("io.kvmid.Introspector.OpenSession", {"target": "web2"})["parameters"]["session"]
    s0 = last_seq()
    for x in pc:        # one call in flight per connection: twelve at once
        x.send("io.kvmid.Introspector.GetMapToken", {"session": ps, "gpa": 0, "size": 4096})
    rs = [x.recv() for x in pc]
    over = [x for x in rs if err(x) == "io.kvmid.Introspector.LimitExceeded"]
    t.ok(len(over) == 2 and all(x["parameters"] == {"limit": "max-tokens", "max": 10} for x in over)
         and sum("error" not in x for x in rs) == 8,
         "12 GetMapToken at once under max-tokens=10: 8 minted (the kernel's maximum), 2 wait, 2 over the limit",
         json.dumps([err(x) for x in rs]))
    td = [x for x in audit("token-deny", s0) if "too many" in x["reason"]]
    t.eq(len(td), 2, "the 2 max-tokens denials audited")
    pc[0].call("io.kvmid.Introspector.CloseSession", {"session": ps})
    for x in pc:
        x.close()

    # ---- max-mappings=2 under concurrency: 4 MemMaps in flight at once ----
    q = login("forensics")
    qs = q.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})["parameters"]["session"]
    qt = [q.call("io.kvmid.Introspector.GetMapToken", {"session": qs, "gpa": 0x1000, "size": 0x1000}) for _ in range(4)]
    t.ok(all("error" not in x for x in qt), "4 tokens for a fresh session (max-mappings=2)", json.dumps(qt))
    s0 = last_seq()
    hs = [Varlink(d.socket("hypervisor")) for _ in range(4)]
    for i, (hv, x) in enumerate(zip(hs, qt)):
        hv.send("io.kvmid.Hypervisor.MemMap", {"introspector": "vm-a", "token": x["parameters"]["token"],
                                               "target_gpa": 0x1000, "local_gpa": 0x40000 + i * 0x1000})
    rs = [hv.recv() for hv in hs]          # every call is sent before any reply is read
    allowed = [i for i, x in enumerate(rs) if "error" not in x]
    quota = [i for i, x in enumerate(rs) if err(x) == "io.kvmid.Hypervisor.MapDenied"
             and "max-mappings" in x["parameters"]["reason"]]
    t.ok(len(allowed) == 2 and len(quota) == 2, "4 concurrent MemMaps under max-mappings=2: 2 allowed, 2 denied (quota)",
         json.dumps(rs))
    qa, qd = audit("map-allow", s0), audit("map-deny", s0)
    t.ok(len(qa) == len(allowed) and len(qd) == len(quota) == 2
         and all("max-mappings" in x["reason"] and x["rule"] == pol + ":2" for x in qd),
         "audited: a map-allow each, a map-deny with the quota reason each", json.dumps(qa + qd))
    mine = [x for x in json.loads(d.kvmictl("--json=short", "call", "io.kvmid.Admin.ListSessions")[1])["sessions"]
            if x["session"] == qs]
    t.ok(mine and mine[0]["mappings"] == 2, "ListSessions: the session holds its 2 mappings", json.dumps(mine))
    for i in allowed:
        h.call("io.kvmid.Hypervisor.MemUnmap", {"introspector": "vm-a", "local_gpa": 0x40000 + i * 0x1000})
    for hv in hs:
        hv.close()

    # ---- an operator revokes a used token: its mapping goes, the VMM is told ----
    time.sleep(3.2)     # the kernel's token slots of web1 are free again
    s0 = last_seq()
    r = q.call("io.kvmid.Introspector.GetMapToken", {"session": qs, "gpa": 0x1000, "size": 0x1000})
    ut = r["parameters"]
    t.ok("error" not in r and "error" not in mem_map("vm-a", ut["token"], 0x1000, 0x48000), "a mapping made with a token",
         json.dumps(r))
    rc, out, e2 = d.kvmictl("revoke", "token", ut["token_id"])
    t.eq((rc, token_state(ut["token_id"])), (0, ["revoked"]), "kvmictl revoke token: a consumed token is revoked")
    rv = revocation(0x48000)
    t.ok(rv and rv["parameters"]["introspector"] == "vm-a" and rv["parameters"]["reason"] == "revoked by an operator",
         "WatchRevocations: the VMM learns the mapping of the revoked token", json.dumps(rv))
    tr = [x for x in audit("token-revoke", s0) if x["data"]["token_id"] == ut["token_id"]]
    t.ok(len(tr) == 2 and tr[0]["data"].get("size") == 0x1000 and tr[1]["data"].get("local_gpa") == 0x48000
         and all(x["reason"] == "revoked by an operator" for x in tr),
         "token-revoke audited for the token and for its mapping", json.dumps(tr))
    mine = [x for x in json.loads(d.kvmictl("--json=short", "call", "io.kvmid.Admin.ListSessions")[1])["sessions"]
            if x["session"] == qs]
    t.ok(not any(x["token_id"] == ut["token_id"] for x in json.loads(d.kvmictl("--json=short", "mappings")[1])["mappings"])
         and mine and mine[0]["mappings"] == 0, "the mapping is forgotten and off the session's quota", json.dumps(mine))
    t.eq(d.kvmictl("revoke", "token", ut["token_id"])[0], 4, "revoking it again: not found, exit 4")

    # ---- a session revoked while a MemMap waits for its record ----
    if not shutil.which("strace"):
        t.skip("revoked while mapping", "strace not found (apt-get install -y strace)")
    else:
        mt = q.call("io.kvmid.Introspector.GetMapToken", {"session": qs, "gpa": 0x1000, "size": 0x1000})["parameters"]
        tracer = slow_sync(d.proc.pid, 1500000)
        if not tracer:
            t.skip("revoked while mapping", "strace cannot attach to kvmid (ptrace not permitted)")
        else:
            s0 = last_seq()
            hm = Varlink(d.socket("hypervisor"))
            hm.send("io.kvmid.Hypervisor.MemMap", {"introspector": "vm-a", "token": mt["token"], "target_gpa": 0x1000,
                                                   "local_gpa": 0x49000})
            waiting = wait_for(lambda: token_state(mt["token_id"]) == ["mapping"], 5)
            rc = d.kvmictl("revoke", "session", qs)[0]
            r = hm.recv()
            tracer.terminate()
            tracer.wait()
            hm.close()
            t.ok(waiting and rc == 0 and err(r) == "io.kvmid.Hypervisor.MapDenied"
                 and r["parameters"]["reason"] == "revoked meanwhile",
                 "the MemMap waiting for its record is denied once the session is revoked", json.dumps(r))
            t.eq(token_state(mt["token_id"]), ["revoked"], "its token ends revoked, not live again")
            time.sleep(1.2)     # past token-lifetime: a token made live again would expire now
            t.eq(token_state(mt["token_id"]), ["revoked"], "and stays revoked")
            tr = [x for x in audit("token-revoke", s0) if x["data"]["token_id"] == mt["token_id"]]
            t.ok(any(x["data"].get("size") == 0x1000 and x["reason"] == "revoked by an operator" for x in tr)
                 and not [x for x in audit("token-expire", s0) if x["data"]["token_id"] == mt["token_id"]],
                 "token-revoke audited for it, no token-expire", json.dumps(tr))
            t.ok(revocation(0x49000), "WatchRevocations: told of the pending mapping")
        q = login("forensics")
        qs = q.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})["parameters"]["session"]

    # ---- unsubscribe: the subscriber goes away; its session is closed ----
    s0 = last_seq()
    x = login("forensics")
    x.send("io.kvmid.Introspector.Subscribe", {"session": qs}, more=True)
    x.recv()
    x.close()
    t.ok(wait_for(lambda: audit("unsubscribe", s0)), "a subscriber disconnects: unsubscribe audited")
    u = audit("unsubscribe", s0)
    t.ok(len(u) == 1 and u[0]["reason"] == "subscriber disconnected" and u[0]["data"]["session"] == qs
         and u[0]["object"]["target"] == "web1" and u[0]["subject"]["introspector"] == "forensics",
         "unsubscribe: the session and the reason", json.dumps(u))
    y = login("forensics")
    y.send("io.kvmid.Introspector.Subscribe", {"session": qs}, more=True)
    y.recv()
    s0 = last_seq()
    t.ok("error" not in q.call("io.kvmid.Introspector.CloseSession", {"session": qs}), "CloseSession with a subscriber")
    r = y.recv()
    t.ok(err(r) == "io.kvmid.Introspector.SessionEnded" and r["parameters"]["reason"] == "closed by the introspector",
         "the subscriber is told why", json.dumps(r))
    u = audit("unsubscribe", s0)
    t.ok(len(u) == 1 and u[0]["reason"] == "closed by the introspector" and u[0]["data"]["session"] == qs,
         "CloseSession: unsubscribe audited with the reason", json.dumps(u))
    sc = audit("session-close", s0)
    t.ok(len(sc) == 1 and sc[0]["reason"] == "closed by the introspector" and sc[0]["seq"] > u[0]["seq"],
         "then session-close", json.dumps(sc))
    y.close()
    q.close()

    # ---- kvmictl audit tail --target ----
    audit("none")
    with open(AUDIT) as f:
        every = [json.loads(x) for x in f if x.endswith("\n")]
    want = [r["seq"] for r in every if (r.get("object") or {}).get("target") == "web2"]
    rc, out, e2 = d.kvmictl("--json=short", "audit", "tail", "-n", "10000", "--target", "web2")
    got = [json.loads(x) for x in out.splitlines()]
    t.ok(rc == 0 and got and all(r["object"]["target"] == "web2" for r in got) and [r["seq"] for r in got] == want
         and len(want) < len(every) and any((r.get("object") or {}).get("target") == "web1" for r in every),
         "audit tail --target: every record of that target, and only those", out + e2)
    fol = subprocess.Popen([KVMICTL, "--socket", d.socket("admin"), "--json", "audit", "tail", "-f", "-n", "0",
                            "--target", "web1"], stdout=subprocess.PIPE)
    time.sleep(0.5)
    s2 = so.call("io.kvmid.Introspector.OpenSession", {"target": "web2"})["parameters"]["session"]
    s1 = o.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})["parameters"]["session"]
    recs, text = read_pretty(fol, lambda r: r.get("kind") == "session-open")
    fol.terminate()
    fol.wait()
    rec = recs[-1] if recs else {}
    t.ok(rec.get("kind") == "session-open" and rec["data"]["session"] == s1 and text.count("\n") > 5
         and all(r["object"]["target"] == "web1" for r in recs),
         "audit tail -f --json --target: pretty records of that target only, as they are written", json.dumps(recs))
    so.call("io.kvmid.Introspector.CloseSession", {"session": s2})
    o.call("io.kvmid.Introspector.CloseSession", {"session": s1})

    # ---- sessions end: admin revoke, policy reload, target UNHOOK ----
    rc, out, _ = d.kvmictl("sessions")
    t.ok(rc == 0 and sid in out and "forensics" in out, "kvmictl sessions", out)
    st = json.loads(d.kvmictl("--json=short", "call", "io.kvmid.Admin.ListSessions")[1])["sessions"]
    mine = [x for x in st if x["session"] == sid][0]
    t.ok(len(mine["subscriptions"]) == 3 and mine["subscriptions"][0]["delivered"] >= 5 and mine["mappings"] == 1,
         "ListSessions: subscribers with delivered counts, mappings", json.dumps(mine))
    rc, out, _ = d.kvmictl("revoke", "session", sid)
    t.eq(rc, 0, "kvmictl revoke session")
    ends = [x.recv() for x in subs]
    t.ok(all(err(x) == "io.kvmid.Introspector.SessionEnded" and "operator" in x["parameters"]["reason"] for x in ends),
         "subscribers told why their stream ended", json.dumps(ends))
    rv = watch.recv()
    t.ok(rv["parameters"]["local_gpa"] == 0x10000 and rv["parameters"]["introspector"] == "vm-a"
         and "operator" in rv["parameters"]["reason"], "WatchRevocations: the VMM learns which mapping to tear down",
         json.dumps(rv))
    t.ok(audit("session-close")[-1]["reason"] == "revoked by an operator", "session-close audited with the reason")
    t.eq(d.kvmictl("revoke", "session", sid)[0], 4, "revoking it again: not found, exit 4")

    # policy reload that no longer allows slow's session on web2
    xs = login("slow")
    xs.send("io.kvmid.Introspector.Subscribe", {"session": ssid}, more=True)
    xs.recv()
    with open(pol, "w") as f:
        f.write(POLICY.replace("allow introspector=slow target=web* perm=attach,events\n", ""))
    rc, out, e2 = d.kvmictl("policy", "reload")
    r = xs.recv()
    t.ok(rc == 0 and err(r) == "io.kvmid.Introspector.SessionEnded" and "policy" in r["parameters"]["reason"],
         "a policy reload ends sessions it no longer allows", json.dumps(r))

    # UNHOOK of web1: other's session on web1 ends
    r = sim.cmd(cmd="unhook", vm="web1")
    t.ok(wait_for(lambda: not any(x["target"] == "web1" for x in json.loads(
        d.kvmictl("--json=short", "call", "io.kvmid.Admin.ListSessions")[1])["sessions"])),
        "the target going away ends its sessions")
    t.ok("KVMI channel closed" in audit("session-close")[-1]["reason"], "with the reason audited")
    # revoke introspector
    fz = login("forensics")
    r = fz.call("io.kvmid.Introspector.OpenSession", {"target": "web2"})
    rc, out, _ = d.kvmictl("revoke", "introspector", "forensics")
    t.ok(rc == 0 and fz.at_eof(), "revoke introspector: its sessions end and its connections close")
    rc, out, _ = d.kvmictl("introspectors")
    t.ok(rc == 0 and "forensics" in out and "vm-a" in out, "kvmictl introspectors", out)
finally:
    sim.close()
    t.eq(d.stop(), 0, "kvmid exits 0")
    d.cleanup()
t.done()
