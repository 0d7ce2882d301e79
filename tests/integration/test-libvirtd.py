#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""kvmid against a real libvirtd: a private one in a temp dir (no driver
modules, so only libvirt's built-in test driver), whose test:///default
state is shared by all its clients while one stays connected.  kvmid
watches it read-only; virsh, on the read-write socket, plays the operator:
define, start, destroy, undefine and define again, each checked in kvmid's
registry, sessions and audit log; the hook's DomainStopped followed by
libvirt's stop event makes one domain-down record; and libvirtd restarting
(its state starts afresh) is noticed, reconnected with back-off and
resynced, and the sessions on the domains that vanished end."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvmidtest import (Tap, Daemon, Varlink, Sim, KVMICTL, KVMI_SIM, authenticate, kvmi_socket, skip_all,  # noqa: E402
                       wait_for)

LIBVIRTD = shutil.which("libvirtd") or ("/usr/sbin/libvirtd" if os.access("/usr/sbin/libvirtd", os.X_OK) else None)
VIRSH = shutil.which("virsh")
if not LIBVIRTD or not VIRSH:
    skip_all("libvirtd or virsh not found (apt-get install -y libvirt-daemon libvirt-clients)")
if not os.access(KVMI_SIM, os.X_OK):
    skip_all("kvmi-sim is not built (make check builds it)")

t = Tap()
work = tempfile.mkdtemp(prefix="kvmid-libvirtd-")
SOCKS = os.path.join(work, "sock")
os.makedirs(os.path.join(work, "no-drivers"))
os.makedirs(SOCKS)
with open(os.path.join(work, "libvirtd.conf"), "w") as f:
    f.write('unix_sock_dir = "%s"\nunix_sock_ro_perms = "0777"\nunix_sock_rw_perms = "0700"\n'
            'auth_unix_ro = "none"\nauth_unix_rw = "none"\nlisten_tls = 0\nlisten_tcp = 0\n'
            'log_outputs = "3:stderr"\n' % SOCKS)
RO = "test+unix:///default?socket=%s/libvirt-sock-ro" % SOCKS
RW = "test+unix:///default?socket=%s/libvirt-sock" % SOCKS
NS = "http://kvmid.io/xmlns/introspection/1"


class Libvirtd:
    def __init__(self):
        env = dict(os.environ, LIBVIRT_DRIVER_DIR=os.path.join(work, "no-drivers"))
        self.log = open(os.path.join(work, "libvirtd.log"), "a")
        self.proc = subprocess.Popen([LIBVIRTD, "--config", os.path.join(work, "libvirtd.conf"),
                                      "--pid-file", os.path.join(work, "libvirtd.pid")],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        if not wait_for(lambda: os.path.exists(os.path.join(SOCKS, "libvirt-sock")) and virsh("list")[0] == 0, 20):
            raise RuntimeError("libvirtd did not start; see %s" % self.log.name)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # a stale socket would look like a live libvirtd to the next wait
        for n in os.listdir(SOCKS):
            os.unlink(os.path.join(SOCKS, n))


def virsh(*args, stdin=None):
    p = subprocess.run([VIRSH, "-q", "-c", RW] + list(args), input=stdin, capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


def domain_xml(name, uuid, role, cid):
    return ("<domain type='test'><name>%s</name><uuid>%s</uuid><memory>65536</memory><vcpu>1</vcpu>"
            "<os><type>hvm</type></os><metadata><kvmid:introspection xmlns:kvmid='%s' role='%s' cookie='none'/>"
            "</metadata><devices><vsock model='virtio'><cid auto='no' address='%d'/></vsock></devices></domain>"
            % (name, uuid, NS, role, cid))


def define(name, uuid, role, cid):
    path = os.path.join(work, name + ".xml")
    with open(path, "w") as f:
        f.write(domain_xml(name, uuid, role, cid))
    return virsh("define", path)


T1, T2, VM = "lvd-target1", "lvd-target2", "lvd-intro"
U = {T1: "22222222-3333-4444-5555-000000000001", T2: "22222222-3333-4444-5555-000000000002",
     VM: "22222222-3333-4444-5555-000000000003"}
UID = os.getuid()
key = os.urandom(32)
kpath = os.path.join(work, "tool.key")
fd = os.open(kpath, os.O_WRONLY | os.O_CREAT, 0o600)
os.write(fd, key)
os.close(fd)
pol = os.path.join(work, "policy")
with open(pol, "w") as f:
    f.write("allow introspector=tool target=lvd-* perm=attach,events\ndefault deny\n")
AUDIT = os.path.join(work, "audit.log")
# vmtool names a domain only libvirt knows: accepted because kvmid has a libvirt connection.
conf = ("[audit]\nfile = %s\n[policy]\nfile = %s\n[libvirt]\nuri = %s\n"
        "[introspector tool]\nkey-file = %s\nuid = %d\n[introspector vmtool]\nkey-file = %s\ndomain = %s\n"
        % (AUDIT, pol, RO, kpath, UID, kpath, VM))


def audit(kind, target=None):
    try:
        with open(AUDIT) as f:
            recs = [json.loads(x) for x in f if x.endswith("\n")]
    except OSError:
        return []
    return [r for r in recs if r["kind"] == kind and (target is None or (r.get("object") or {}).get("target") == target)]


lvd = Libvirtd()
d = None
sims = []
try:
    d = Daemon(conf)

    def domains():
        rc, out, err = d.kvmictl("--json=short", "domains")
        return {x["name"]: x for x in json.loads(out or "{}").get("domains", [])}

    def libvirt_status():
        rc, out, err = d.kvmictl("--json=short", "status")
        return json.loads(out or "{}").get("libvirt") or {}

    def login():
        v = Varlink(d.socket("introspector"))
        r = authenticate(v, "tool", key)
        assert "error" not in r, r
        return v

    def subscribed_session(target):
        """target's QEMU (kvmi-sim) and a session on it with a subscriber."""
        sims.append(Sim(["--socket", kvmi_socket(d), "--vm", "%s,%s" % (target, U[target])], work))
        wait_for(lambda: domains().get(target, {}).get("kvmi") == "ready")
        owner = login()
        r = owner.call("io.kvmid.Introspector.OpenSession", {"target": target})
        sid = (r.get("parameters") or {}).get("session")
        sub = login()
        sub.send("io.kvmid.Introspector.Subscribe", {"session": sid}, more=True)
        first = sub.recv()
        return owner, sub, sid, r, first

    def stream_end(sub):
        """The subscriber's last reply (skipping events), or None."""
        while True:
            m = sub.recv()
            if m is None or not m.get("continues"):
                return m

    t.ok(wait_for(lambda: libvirt_status().get("connected") is True), "kvmid connected to libvirtd read-only",
         libvirt_status())
    t.ok("test" in domains(), "the test driver's own domain is in the registry", sorted(domains()))

    # define, then start: seen through libvirt's events
    rc, out, err = define(T1, U[T1], "target", 41)
    t.ok(rc == 0, "virsh define %s" % T1, err)
    t.ok(wait_for(lambda: domains().get(T1, {}).get("state") == "shutoff"), "defined: in the registry, shut off",
         domains().get(T1))
    rc, out, err = virsh("start", T1)
    t.ok(rc == 0, "virsh start %s" % T1, err)
    t.ok(wait_for(lambda: domains().get(T1, {}).get("state") == "running"), "started: running", domains().get(T1))
    x = domains().get(T1, {})
    t.ok(x.get("vsock_cid") == 41 and x.get("role") == "target" and x.get("cookie") == "none" and
         x.get("source") == "libvirt" and x.get("uuid") == U[T1] and isinstance(x.get("libvirt_id"), int),
         "its CID, role, cookie and id from the domain XML", x)
    t.ok(wait_for(lambda: audit("domain-up", T1)), "domain-up audited")
    define(VM, U[VM], "introspector", 42)
    virsh("start", VM)
    t.ok(wait_for(lambda: domains().get(VM, {}).get("state") == "running" and
                  domains()[VM].get("role") == "introspector"), "an introspector VM from its metadata", domains().get(VM))
    rc, out, err = d.kvmictl("--json=short", "introspectors")
    ids = {x["name"]: x for x in json.loads(out or "{}").get("introspectors", [])}
    t.ok("vmtool" in ids, "an identity bound to a libvirt-only VM is accepted", out)

    # destroy: the session and its subscriber end, audited with libvirt's reason
    owner, sub, sid, r, first = subscribed_session(T1)
    t.ok(sid and first and first.get("continues"), "session on %s with a subscriber" % T1, (r, first))
    rc, out, err = virsh("destroy", T1)
    t.ok(rc == 0, "virsh destroy %s" % T1, err)
    end = stream_end(sub)
    t.ok(end and end.get("error") == "io.kvmid.Introspector.SessionEnded" and
         "destroyed" in ((end.get("parameters") or {}).get("reason") or ""),
         "the subscriber is told its session ended: destroyed", end)
    t.ok(wait_for(lambda: domains().get(T1, {}).get("state") == "shutoff"), "destroyed: shut off")
    downs = audit("domain-down", T1)
    t.ok(len(downs) == 1 and downs[0].get("reason") == "stopped: destroyed", "one domain-down: stopped: destroyed",
         downs)
    closes = audit("session-close", T1)
    t.ok(closes and "destroyed" in (closes[-1].get("reason") or ""), "session-close audited with the reason", closes)
    owner.close()
    sub.close()

    # the hook's stopped, then libvirt's stop event: one record
    virsh("start", T1)
    t.ok(wait_for(lambda: domains().get(T1, {}).get("state") == "running" and len(audit("domain-up", T1)) == 2),
         "started again: a second domain-up")
    p = subprocess.run([KVMICTL, "--socket", d.socket("hypervisor"), "hook", "qemu", T1, "stopped", "end"],
                       input=domain_xml(T1, U[T1], "target", 41), capture_output=True, text=True, timeout=30)
    t.ok(p.returncode == 0, "hook: stopped", p.stderr)
    virsh("destroy", T1)
    t.ok(wait_for(lambda: libvirt_status().get("connected") and domains().get(T1, {}).get("libvirt_id") is None),
         "libvirt's stop event arrived")
    time.sleep(0.3)
    downs = audit("domain-down", T1)
    t.ok(len(downs) == 2 and "hook" in (downs[1].get("reason") or ""),
         "hook stopped + libvirt stopped: one domain-down for the second run, the hook's", downs)

    # undefine: gone from the registry (it was only libvirt's), and an
    # operator watching it is told; define again: back
    w = Varlink(d.socket("admin"))
    w.send("io.kvmid.Admin.WatchEvents", {"domain": T1}, more=True)
    first = w.recv()
    rc, out, err = virsh("undefine", T1)
    t.ok(rc == 0, "virsh undefine %s" % T1, err)
    t.ok(wait_for(lambda: T1 not in domains()), "undefined: removed from the registry", sorted(domains()))
    try:
        end = w.recv()
    except OSError as e:
        end = e
    t.ok(first and first.get("continues") and isinstance(end, dict) and
         end.get("error") == "io.kvmid.Admin.WatchEnded" and end["parameters"] == {"domain": T1,
                                                                                  "reason": "undefined in libvirt"},
         "a WatchEvents on the shut-off domain ends: WatchEnded, undefined in libvirt", (first, end))
    w.close()
    define(T1, U[T1], "target", 41)
    t.ok(wait_for(lambda: domains().get(T1, {}).get("state") == "shutoff"), "defined again: back, shut off")

    # libvirtd restarts with a fresh test:///default: lvd-target2 vanished meanwhile
    define(T2, U[T2], "target", 43)
    virsh("start", T2)
    t.ok(wait_for(lambda: domains().get(T2, {}).get("state") == "running"), "%s running" % T2)
    owner, sub, sid, r, first = subscribed_session(T2)
    t.ok(sid and first and first.get("continues"), "session on %s with a subscriber" % T2, (r, first))
    lvd.stop()
    t.ok(wait_for(lambda: libvirt_status().get("connected") is False), "libvirtd gone: status says disconnected",
         libvirt_status())
    t.ok(T2 in domains(), "while disconnected, the registry keeps what it knew")
    lvd = Libvirtd()
    t.ok(wait_for(lambda: libvirt_status().get("connected") is True, 20), "reconnected with back-off",
         libvirt_status())
    end = stream_end(sub)
    t.ok(end and end.get("error") == "io.kvmid.Introspector.SessionEnded" and
         "undefined while libvirt was disconnected" in ((end.get("parameters") or {}).get("reason") or ""),
         "resync: the session on the vanished domain ends, with why", end)
    t.ok(wait_for(lambda: T2 not in domains() and T1 not in domains() and "test" in domains()),
         "resync: the registry is libvirt's new state", sorted(domains()))
    rc, out, err = d.kvmictl("--json=short", "sessions")
    t.eq(json.loads(out or "{}").get("sessions"), [], "no sessions left")
    logs = d.logtext()
    t.ok(re.search(r"libvirt connection to %s lost \([a-z ]+\); reconnecting" % re.escape(RO), logs) and
         logs.count("libvirt: connected to %s" % RO) == 2, "the loss and the reconnection are logged", logs[-2000:])
    owner.close()
    sub.close()
    t.eq(d.stop(), 0, "clean exit")
finally:
    for sim in sims:
        sim.close()
    if d:
        d.cleanup()
    lvd.stop()
    shutil.rmtree(work, ignore_errors=True)
t.done()
