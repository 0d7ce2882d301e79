#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""libvirt's qemu hook: kvmictl hook qemu NAME OP SUBOP (domain XML on
stdin) and io.kvmid.Hypervisor.DomainStarted/DomainStopped.  With kvmid
down the hook never fails a domain, unless its metadata says
required="yes" at prepare/start; with kvmid up, started/stopped change
the registry and a stopped target's sessions end."""

import json
import os
import subprocess
import tempfile
from kvmidtest import Daemon, Tap, Varlink, Sim, authenticate, kvmi_socket, KVMI_SIM, KVMICTL, wait_for

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-hook-")
NS = "http://kvmid.io/xmlns/introspection/1"


def xml(name, uuid, required=None, role="target"):
    req = " required='%s'" % required if required else ""
    return ("<domain type='kvm'><name>%s</name><uuid>%s</uuid><metadata>"
            "<kvmid:introspection xmlns:kvmid='%s' role='%s' cookie='none'%s/></metadata>"
            "<devices><vsock model='virtio'><cid auto='no' address='41'/></vsock></devices></domain>"
            % (name, uuid, NS, role, req))


def hook(socket, name, op, subop, stdin="", *extra):
    p = subprocess.run([KVMICTL, "--socket", socket, "--timeout", "5"] + list(extra) + ["hook", "qemu", name, op, subop],
                       input=stdin, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout, p.stderr


# ---- kvmid down ----
DOWN = os.path.join(work, "no-such-socket")
X_REQ = xml("hk-req", "11111111-2222-3333-4444-0000000000a1", "yes")
X_OPT = xml("hk-opt", "11111111-2222-3333-4444-0000000000a2", "no")
for op, sub in (("prepare", "begin"), ("start", "begin"), ("started", "begin"), ("stopped", "end"),
                ("release", "end"), ("migrate", "begin")):
    rc, out, err = hook(DOWN, "hk-opt", op, sub, X_OPT)
    t.eq(rc, 0, "kvmid down, not required: %s exits 0" % op)
for op, sub in (("started", "begin"), ("stopped", "end"), ("release", "end")):
    rc, out, err = hook(DOWN, "hk-req", op, sub, X_REQ)
    t.eq(rc, 0, "kvmid down, required: %s still exits 0" % op)
for op in ("prepare", "start"):
    rc, out, err = hook(DOWN, "hk-req", op, "begin", X_REQ)
    lines = err.strip().splitlines()
    t.ok(rc == 1 and len(lines) == 1 and "requires introspection" in lines[0] and "hk-req" in lines[0],
         "kvmid down, required=\"yes\": %s exits 1 with one clear line" % op, (rc, err))
rc, out, err = hook(DOWN, "hk-x", "prepare", "begin", "")
t.eq(rc, 0, "kvmid down, no XML at all: prepare exits 0")
rc, out, err = hook(DOWN, "hk-x", "prepare", "begin", "<domain", )
t.eq(rc, 0, "kvmid down, broken XML: prepare exits 0")
p = subprocess.run([KVMICTL, "hook", "xen", "a", "b", "c"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
t.eq(p.returncode, 2, "hook: only qemu")

# the installed script (built next to kvmictl)
script = os.path.join(os.environ.get("top_builddir", "."), "client", "50-kvmid")
if os.path.exists(script):
    with open(script) as f:
        body = f.read()
    t.ok(os.access(script, os.X_OK) and body.startswith("#!/bin/sh") and "exec timeout 10 " in body and
         "/kvmid/io.kvmid.Hypervisor hook qemu \"$1\" \"$2\" \"$3\"" in body and "@" not in body,
         "client/50-kvmid: substituted, bounded, executable", body)
    t.eq(subprocess.run(["sh", "-n", script]).returncode, 0, "client/50-kvmid: sh -n")
else:
    t.skip("client/50-kvmid", "not built")

# ---- kvmid up ----
UID = os.getuid()
k = os.urandom(32)
kpath = os.path.join(work, "forensics.key")
fd = os.open(kpath, os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, k)
os.close(fd)
pol = os.path.join(work, "policy")
with open(pol, "w") as f:
    f.write("allow introspector=forensics target=web1 perm=attach,events\ndefault deny\n")
U1, U2 = "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e01", "6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e02"
AUDIT = os.path.join(work, "audit.log")
conf = ("[audit]\nfile = %s\nsync = always\n" % AUDIT) + ("[policy]\nfile = %s\n[introspector forensics]\nkey-file = %s\nuid = %d\n"
        "[domain web1]\nuuid = %s\ncookie = none\n[domain web2]\nuuid = %s\ncookie = none\n") % (pol, kpath, UID, U1, U2)
d = Daemon(conf)
HV = d.socket("hypervisor")


def domains():
    rc, out, err = d.kvmictl("--json=short", "domains")
    return {x["name"]: x for x in json.loads(out or "{}").get("domains", [])}


def audit(kind):
    try:
        with open(AUDIT) as f:
            return [json.loads(x) for x in f if x.endswith("\n") and json.loads(x)["kind"] == kind]
    except OSError:
        return []


sim = None
try:
    # DomainStarted of an unknown domain, with its XML: added, running, required reported
    rc, out, err = hook(HV, "hk-req", "started", "begin", X_REQ, "--json=short")
    rep = json.loads(out or "{}")
    t.ok(rc == 0 and rep.get("known") is True and rep.get("required") is True,
         "DomainStarted (unknown, XML): known, required", (rc, out, err))
    h = domains().get("hk-req", {})
    t.ok(h.get("state") == "running" and h.get("source") == "libvirt" and h.get("vsock_cid") == 41 and
         h.get("uuid") == "11111111-2222-3333-4444-0000000000a1", "kvmictl domains: hook-added domain running", h)
    t.ok(wait_for(lambda: any((r.get("object") or {}).get("target") == "hk-req" for r in audit("domain-up"))), "domain-up audited")
    rc, out, err = hook(HV, "hk-req", "prepare", "begin", X_REQ)
    t.eq(rc, 0, "kvmid up, required=\"yes\": prepare exits 0")
    rc, out, err = hook(HV, "hk-req", "stopped", "end", X_REQ)
    t.eq(rc, 0, "stopped exits 0")
    t.eq(domains().get("hk-req", {}).get("state"), "shutoff", "DomainStopped: state shutoff")
    rc, out, err = hook(HV, "hk-req", "release", "end", X_REQ)
    wait_for(lambda: [r for r in audit("domain-down") if (r.get("object") or {}).get("target") == "hk-req"])
    downs = [r for r in audit("domain-down") if (r.get("object") or {}).get("target") == "hk-req"]
    t.ok(rc == 0 and len(downs) == 1 and "libvirt hook: stopped" in (downs[0].get("reason") or ""),
         "stopped then release: one domain-down, reason from the hook", downs)

    # unknown domain without XML: known false, nothing added
    v = Varlink(HV)
    r = v.call("io.kvmid.Hypervisor.DomainStarted", {"name": "ghost"})
    t.ok(r.get("parameters", {}).get("known") is False and "ghost" not in domains(), "DomainStarted (unknown, no XML)", r)
    r = v.call("io.kvmid.Hypervisor.DomainStopped", {"name": "ghost", "reason": "x"})
    t.ok(r.get("parameters", {}).get("known") is False, "DomainStopped (unknown)", r)
    # a configured domain: state updated
    r = v.call("io.kvmid.Hypervisor.DomainStarted", {"name": "web2"})
    t.ok(r.get("parameters", {}).get("known") is True and r["parameters"].get("required") is False and
         domains().get("web2", {}).get("state") == "running", "DomainStarted (configured): running", r)
    v.close()

    # a stopped target's sessions end
    if os.access(KVMI_SIM, os.X_OK):
        sim = Sim(["--socket", kvmi_socket(d), "--vm", "web1,%s" % U1], work)
        t.ok(wait_for(lambda: domains().get("web1", {}).get("kvmi") == "ready"), "web1's KVMI channel ready")
        iv = Varlink(d.socket("introspector"))
        r = authenticate(iv, "forensics", k)
        t.ok("error" not in r, "introspector authenticated", r)
        r = iv.call("io.kvmid.Introspector.OpenSession", {"target": "web1"})
        t.ok("error" not in r, "session on web1 opened", r)
        rc, out, err = d.kvmictl("--json=short", "sessions")
        t.eq(len(json.loads(out or "{}").get("sessions", [])), 1, "one session")
        rc, out, err = hook(HV, "web1", "stopped", "end", "")
        t.eq(rc, 0, "hook stopped web1")
        ok = wait_for(lambda: len(json.loads(d.kvmictl("--json=short", "sessions")[1] or "{}").get("sessions", [1])) == 0)
        t.ok(ok, "web1's session ended", d.kvmictl("sessions")[1])
        wait_for(lambda: [r for r in audit("session-close") if (r.get("object") or {}).get("target") == "web1"])
        closes = [r for r in audit("session-close") if (r.get("object") or {}).get("target") == "web1"]
        t.ok(closes and "libvirt hook: stopped" in (closes[-1].get("reason") or ""), "session-close audited with the hook's reason",
             closes)
        t.ok("web1" in domains(), "configured web1 stays in the registry")
        iv.close()
    else:
        t.skip("stopped target's sessions end", "kvmi-sim is not built")
    t.eq(d.stop(), 0, "clean exit")
finally:
    if sim:
        sim.close()
    d.cleanup()
t.done()
