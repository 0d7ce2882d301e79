#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""kvmid's own libvirt connection, against libvirt's test driver
(tests/libvirt/node.xml): the registry shows libvirt's domains with their
states, vsock CIDs and roles from kvmid's metadata; a libvirt-only domain
completes a KVMI handshake (cookie none from its metadata); a config entry
for the same domain wins for the cookie; status shows the connection; an
unreachable URI degrades (one log line, back-off) instead of failing;
with no uri= the default is qemu:///system.

A test:///PATH driver's state is kvmid's connection's alone, so lifecycle
transitions are driven in test-libvirtd.py, through a private libvirtd."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kvmidtest import Tap, Daemon, run_sim, kvmi_socket  # noqa: E402

SRCDIR = os.environ.get("srcdir", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NODE = os.path.abspath(os.path.join(SRCDIR, "tests", "libvirt", "node.xml"))
URI = "test://" + NODE

t = Tap()
d = Daemon("[libvirt]\nuri = %s\n[domain lv-plain]\nuuid = 11111111-2222-3333-4444-000000000004\ncookie = none\nlabel = fromconf\n" % URI)
try:
    rc, out, err = d.kvmictl("--json=short", "domains")
    t.ok(rc == 0, "kvmictl domains", err)
    doms = {x["name"]: x for x in json.loads(out or "{}").get("domains", [])}
    t.ok(set(doms) >= {"lv-target1", "lv-target2", "lv-introspector", "lv-plain"}, "libvirt domains listed",
         sorted(doms))
    t1, t2 = doms.get("lv-target1", {}), doms.get("lv-target2", {})
    vi, vp = doms.get("lv-introspector", {}), doms.get("lv-plain", {})
    t.ok(t1.get("state") == "running" and t1.get("vsock_cid") == 21 and t1.get("role") == "target" and
         t1.get("cookie") == "none" and t1.get("source") == "libvirt" and
         t1.get("uuid") == "11111111-2222-3333-4444-000000000001", "running target: state, CID, role, cookie", t1)
    t.ok(t2.get("state") == "shutoff" and t2.get("vsock_cid") == 22 and t2.get("cookie") == "/nonexistent/cookie"
         and t2.get("libvirt_id") is None, "shut-off target: state, CID, cookie file", t2)
    t.ok(vi.get("role") == "introspector" and vi.get("vsock_cid") == 30, "introspector VM from metadata", vi)
    t.ok(vp.get("source") == "both" and vp.get("cookie") == "none" and vp.get("vsock_cid") is None,
         "config entry for a libvirt domain: source both, config's cookie", vp)

    rc, out, err = d.kvmictl("--json=short", "status")
    st = json.loads(out or "{}")
    lv = st.get("libvirt") or {}
    t.ok(rc == 0 and lv.get("uri") == URI and lv.get("connected") is True and lv.get("domains") == 4,
         "status: libvirt connected with 4 domains", st.get("libvirt"))
    rc, out, err = d.kvmictl("status")
    t.ok("Libvirt: %s, connected, 4 domains" % URI in out, "kvmictl status prints libvirt", out)
    rc, out, err = d.kvmictl("domains")
    t.ok("STATE" in out and "CID" in out and "shutoff" in out, "kvmictl domains table: STATE, CID", out)

    rc, rep, err = run_sim(["--socket", kvmi_socket(d), "--events", "3", "--rate", "0",
                            "--vm", "lv-target1,11111111-2222-3333-4444-000000000001"])
    t.ok(rc == 0, "libvirt-only domain completes the KVMI handshake (cookie none from metadata)", err)
    rc, out, err = d.kvmictl("--json=short", "domains")
    doms = {x["name"]: x for x in json.loads(out or "{}").get("domains", [])}
    t.ok(doms.get("lv-target1", {}).get("guest_requests", 0) >= 3 and
         doms.get("lv-target1", {}).get("source") == "libvirt", "its guest requests counted",
         doms.get("lv-target1"))
    t.eq(d.stop(), 0, "clean exit")
finally:
    d.cleanup()

# An unreachable libvirt: kvmid starts, says so once, and keeps retrying.
d = Daemon("[libvirt]\nuri = test:///nonexistent/node.xml\n")
try:
    import time
    time.sleep(3.5)
    rc, out, err = d.kvmictl("--json=short", "status")
    lv = json.loads(out or "{}").get("libvirt") or {}
    t.ok(rc == 0 and lv.get("connected") is False, "unreachable libvirt: running, disconnected", lv)
    t.eq(d.logtext().count("libvirt: cannot connect"), 1, "one warning line for the outage (debug aside)")
    t.eq(d.stop(), 0, "clean exit")
finally:
    d.cleanup()

# No uri= at all: the host's system libvirt, read-only.
d = Daemon("[libvirt]\n")
try:
    rc, out, err = d.kvmictl("--json=short", "status")
    lv = json.loads(out or "{}").get("libvirt") or {}
    t.ok(rc == 0 and lv.get("uri") == "qemu:///system", "the default libvirt URI is qemu:///system", lv)
    t.eq(d.stop(), 0, "clean exit")
finally:
    d.cleanup()
t.done()
