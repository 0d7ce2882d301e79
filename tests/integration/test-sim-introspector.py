#!/usr/bin/env python3
"""kvmi-sim's introspector-VM role (--introspector), the whole loop: one
kvmi-sim process plays two targets (QEMU + kernel) and an introspector VM
(its agent on io.kvmid.Introspector with two subscribers, its VMM on
io.kvmid.Hypervisor).  Events flow to both subscribers in order, a token is
minted by the target's simulated kernel, mapped (allowed) and redeemed
there, a consumed token's MemMap is denied, and kvmictl sessions / tokens /
mappings / audit tail show it.  Then the same in one-shot mode, checked
from the report."""

import json
import os
import tempfile
import time
from kvmidtest import Daemon, Tap, Sim, kvmi_socket, run_sim, skip_all, KVMI_SIM, wait_for

if not os.access(KVMI_SIM, os.X_OK):
    skip_all("kvmi-sim is not built (make check builds it)")

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-isim-")
UID = os.getuid()
U = {"web1": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e11", "web2": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e12",
     "vm-a": "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5ea1"}
KEY = os.path.join(work, "forensics.key")
fd = os.open(KEY, os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, os.urandom(32))
os.close(fd)
POL = os.path.join(work, "policy")
with open(POL, "w") as f:
    f.write("allow introspector=forensics target=web* perm=all gpa=0x0-0xfffff\ndefault deny\n")
conf = "[policy]\nfile = %s\n[introspector forensics]\nkey-file = %s\ndomain = vm-a\nuid = %d\n" % (POL, KEY, UID)
for n in ("web1", "web2"):
    conf += "[domain %s]\nuuid = %s\ncookie = none\n" % (n, U[n])
conf += "[domain vm-a]\nuuid = %s\nrole = introspector\ncookie = none\n" % U["vm-a"]

d = Daemon(conf)
AUDIT = os.path.join(d.runtime, "audit.log")
TARGETS = sum([["--vm", "%s,%s" % (n, U[n])] for n in ("web1", "web2")], [])
INTRO = ["--introspector", "forensics,%s,vm-a" % KEY, "--introspector-socket", d.socket("introspector"),
         "--hypervisor-socket", d.socket("hypervisor"), "--attach", "web1", "--attach", "web2",
         "--subscribers", "2"]


def jctl(*args):
    rc, out, err = d.kvmictl("--json=short", *args)
    return json.loads(out) if rc == 0 else {"rc": rc, "err": err}


def audit_tail(*kinds, n=200):
    args = ["--json=short", "audit", "tail", "-n", str(n)]
    for k in kinds:
        args += ["--kind", k]
    rc, out, err = d.kvmictl(*args)
    return rc, [json.loads(x) for x in out.splitlines() if x.startswith("{")], out




def ready_targets():
    return [x["name"] for x in jctl("domains").get("domains", []) if x["role"] == "target" and x["kvmi"] == "ready"]


sim = None
try:
    # ---- control mode: one process, two targets and an introspector VM ----
    sim = Sim(["--socket", kvmi_socket(d), "--vcpus", "2", "--watch-revocations"] + TARGETS + INTRO, work)
    st = sim.cmd(cmd="intro-status")
    t.ok(st.get("state") == "ready" and st["authenticated"] and
         [(x["target"], x["state"]) for x in st["sessions"]] == [("web1", "open"), ("web2", "open")] and
         all(len(x["session"]) == 32 for x in st["sessions"]),
         "\"ready\" once authenticated, a session open on each target", json.dumps(st))
    t.ok(len(st["subscribers"]) == 2 and all(tg["state"] == "live" for s in st["subscribers"] for tg in s["targets"])
         and st["watch"] == "live", "two subscribers live on both sessions, revocation watch live", json.dumps(st))
    sess = {x["target"]: x["session"] for x in st["sessions"]}

    r1 = sim.cmd(cmd="send", vm="web1", count=5, regs={"rdx": 0x77})
    r2 = sim.cmd(cmd="send", vm="web2", count=3)
    t.ok(r1.get("acked") == 10 and r2.get("acked") == 6, "targets' guest requests acked (2 vCPUs each)",
         json.dumps([r1, r2]))
    w = sim.cmd(cmd="intro-wait", timeout_ms=10000)
    t.ok(w.get("ok") and w["seen"] == [16, 16], "both subscribers got every acked event", json.dumps(w))
    st = sim.cmd(cmd="intro-status")
    per = [{tg["target"]: (tg["delivered"], tg["missed"], tg["last_seq"], tg["order_errors"], tg["gaps"])
            for tg in s["targets"]} for s in st["subscribers"]]
    t.ok(all(s["ordered"] and s["delivered"] == 16 and s["missed"] == 0 for s in st["subscribers"]),
         "per subscriber: 16 delivered, none missed, per-target order kept", json.dumps(st["subscribers"]))
    t.ok(per[0] == per[1] and per[0]["web1"][:2] == (10, 0) and per[0]["web2"][:2] == (6, 0)
         and per[0]["web1"][3:] == (0, 0), "per target: web1 10, web2 6, consecutive seq, identical for both",
         json.dumps(per))

    rc, out, _ = d.kvmictl("sessions")
    t.ok(rc == 0 and sess["web1"] in out and sess["web2"] in out and "forensics" in out, "kvmictl sessions", out)
    ls = {x["session"]: x for x in jctl("call", "io.kvmid.Admin.ListSessions").get("sessions", [])}
    t.ok(sess["web1"] in ls and [x["delivered"] for x in ls[sess["web1"]]["subscriptions"]] == [10, 10]
         and [x["delivered"] for x in ls[sess["web2"]]["subscriptions"]] == [6, 6],
         "ListSessions: each session has the two subscribers with the delivered counts the sim saw",
         json.dumps(list(ls.values())))

    # ---- a token minted, mapped (allowed), redeemed in the target's kernel ----
    m = sim.cmd(cmd="intro-map", target="web1", count=1)
    ok = m.get("ok") and m["minted"] == 1 and m["allowed"] == 1 and len(m["maps"]) == 1
    mp = m["maps"][0] if ok else {}
    t.ok(ok and mp["decision"] == "allow" and mp["kernel"] == "ok" and mp["token_id"].startswith("t-"),
         "intro-map: GetMapToken, MemMap allowed, token redeemed in web1's kernel", json.dumps(m))
    tid = mp.get("token_id")
    t.eq(sim.cmd(cmd="tokens", vm="web1").get("live"), 0, "the kernel's token slot is free again (redeemed)")
    rc, out, _ = d.kvmictl("tokens")
    toks = {x["token_id"]: x for x in jctl("tokens").get("tokens", [])}
    t.ok(rc == 0 and tid in out and toks.get(tid, {}).get("state") == "consumed"
         and toks[tid]["session"] == sess["web1"], "kvmictl tokens: the token, consumed, of the web1 session",
         out)
    rc, out, _ = d.kvmictl("mappings")
    t.ok(rc == 0 and "0x%x" % mp.get("local_gpa", 0) in out and "vm-a" in out, "kvmictl mappings", out)

    # ---- the deny path: the consumed token again ----
    dn = sim.cmd(cmd="intro-deny", target="web1")
    dm = dn["maps"][0] if dn.get("maps") else {}
    t.ok(dn.get("ok") and dm.get("decision") == "deny" and dm.get("token_id") == tid and "consumed" in dm["reason"],
         "intro-deny: MemMap of the consumed token is denied", json.dumps(dn))

    rc, recs, out = audit_tail("map-allow", "map-deny")
    allow = [x for x in recs if x["kind"] == "map-allow"]
    deny = [x for x in recs if x["kind"] == "map-deny"]
    t.ok(rc == 0 and len(allow) == 1 and allow[0]["data"]["token_id"] == tid
         and allow[0]["data"]["introspector_vm"] == "vm-a" and allow[0]["data"]["local_gpa"] == mp["local_gpa"]
         and allow[0]["subject"]["introspector"] == "forensics" and allow[0]["object"]["target"] == "web1",
         "kvmictl audit tail: the map-allow record", out)
    t.ok(len(deny) == 1 and deny[0]["decision"] == "deny" and "consumed" in deny[0]["reason"]
         and deny[0]["data"]["token_id"] == tid, "kvmictl audit tail: the map-deny record with its reason", out)
    rc, recs, out = audit_tail("token-mint")
    t.ok(rc == 0 and any(x["data"]["token_id"] == tid and x["decision"] == "allow" for x in recs),
         "kvmictl audit tail: the token-mint record", out)

    um = sim.cmd(cmd="intro-unmap", target="web1")
    t.ok(um.get("ok") and um["unmapped"] == 1 and um["unmaps"][0]["local_gpa"] == mp["local_gpa"],
         "intro-unmap: MemUnmap of the recorded mapping", json.dumps(um))
    rc, recs, out = audit_tail("unmap-allow")
    t.ok(rc == 0 and recs and recs[-1]["data"]["local_gpa"] == mp["local_gpa"], "unmap-allow audited", out)

    # ---- revocation: a mapping still held when its session closes ----
    m2 = sim.cmd(cmd="intro-map", target="web2")
    cl = sim.cmd(cmd="intro-close", target="web2")
    rv = sim.cmd(cmd="intro-wait", revocations=1, timeout_ms=10000)
    t.ok(m2.get("ok") and cl.get("ok") and rv.get("ok") and rv["revocations"] == 1,
         "CloseSession with a mapping held: WatchRevocations reports it", json.dumps([m2, cl, rv]))
    st = sim.cmd(cmd="intro-status")
    web2 = [tg for s in st["subscribers"] for tg in s["targets"] if tg["target"] == "web2"]
    t.ok(all(tg["state"] == "ended" and "SessionEnded" in tg["reason"] for tg in web2) and st["mappings"] == []
         and "web2" in st.get("last_revocation", ""), "the web2 subscribers were told their session ended",
         json.dumps(st))
    t.ok(wait_for(lambda: sess["web2"] not in d.kvmictl("sessions")[1]) and sess["web1"] in d.kvmictl("sessions")[1],
         "kvmictl sessions: web2's session gone, web1's still there")

    sim.cmd(cmd="quit")
    sim.proc.wait(20)
    rep = json.loads(sim.proc.stdout.read())
    i = rep.get("introspector", {})
    t.ok(sim.proc.returncode == 0 and i.get("errors") == 0 and i["maps_allowed"] == 2 and i["maps_denied"] == 1
         and i["maps_denied_expected"] == 1 and i["unmaps"] == 1 and i["tokens_minted"] == 2
         and i["kernel_redeemed"] == 2 and i["revocations"] == 1,
         "control-mode report: the \"introspector\" object", json.dumps(i))
    sim.close()
    sim = None

    # ---- one-shot: the whole loop from the command line ----
    t.ok(wait_for(lambda: ready_targets() == []), "the targets' channels are gone")
    n_allow = len(audit_tail("map-allow", n=1000)[1])
    rc, rep, err = run_sim(["--socket", kvmi_socket(d), "--vcpus", "2", "--events", "10", "--map", "2",
                            "--watch-revocations", "--unhook-at-exit"] + TARGETS + INTRO, timeout=120)
    i = (rep or {}).get("introspector", {})
    t.ok(rc == 0 and i.get("state") == "ready" and i.get("errors") == 0, "one-shot run: exit 0",
         err + json.dumps(i))
    subs = i.get("subscribers", [])
    t.ok(len(subs) == 2 and all(s["delivered"] == 40 and s["missed"] == 0 and s["ordered"] for s in subs),
         "one-shot: both subscribers got the 40 events in order", json.dumps(subs))
    t.ok(i.get("maps_allowed") == 6 and i.get("maps_denied") == 2 and i.get("maps_denied_expected") == 2
         and i.get("unmaps") == 4 and i.get("kernel_redeemed") == 6 and i.get("revocations") == 2
         and [x["state"] for x in i.get("sessions", [])] == ["closed", "closed"],
         "one-shot: 2 maps + 1 denied replay + 2 unmaps per session, then a held mapping revoked on close",
         json.dumps(i))
    t.eq(len(audit_tail("map-allow", n=1000)[1]) - n_allow, 6, "one-shot: six map-allow records")
finally:
    if sim:
        sim.close()
    t.eq(d.stop(), 0, "kvmid exits 0")
    d.cleanup()
t.done()
