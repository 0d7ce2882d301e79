#!/usr/bin/env python3
"""The KVMI channel end to end: the real kvmid, kvmi-sim playing QEMU and
the KVMI kernel side of several targets. Handshakes and refusals, the
capability probe, guest requests counted and every event acked, UNHOOK,
and every misbehaving peer handled without harm to the daemon or to other
targets."""

import json
import os
import signal
import time
from kvmidtest import Daemon, Tap, Sim, run_sim, domains_config, kvmi_socket, skip_all, KVMI_SIM, wait_for

if not os.access(KVMI_SIM, os.X_OK):
    skip_all("kvmi-sim is not built (make check builds it)")

t = Tap()

U = ["6f1d4a4e-8c55-4b4e-9d1e-2a7b3c4d5e6%d" % i for i in range(10)]
SECRETS = {"web1": b"web1 secret\n", "web2": b"\x00\x01binary\xff"}


def domain(d, name):
    rc, out, err = d.kvmictl("--json=short", "domain", name)
    return json.loads(out) if rc == 0 else None




def vm_arg(d, name, uuid, cookie=True):
    path = os.path.join(d.dir, "cookie-" + name)
    return "%s,%s%s" % (name, uuid, ("," + path) if cookie and os.path.exists(path) else "")


import tempfile
work = tempfile.mkdtemp(prefix="kvmid-kvmi-")
conf = domains_config(work, [("web1", U[1], SECRETS["web1"]), ("web2", U[2], SECRETS["web2"]),
                             ("scratch", U[3], None)])
conf += "[domain nocookie]\nuuid = %s\n" % U[4]
conf += "[domain intro1]\nuuid = %s\nrole = introspector\ncookie = none\n" % U[5]
conf = "[kvmi]\nhandshake-timeout = 1\ncommand-timeout = 2\nrecent-events = 8\n" + conf
d = Daemon(conf)
sock = kvmi_socket(d)


def cookie(name):
    return os.path.join(work, "cookie-" + name)


try:
    # --- three targets at once, two vCPUs each, as fast as acks allow ---
    rc, rep, err = run_sim(["--socket", sock, "--vcpus", "2", "--events", "300", "--rate", "0",
                            "--vm", "web1,%s,%s" % (U[1], cookie("web1")),
                            "--vm", "web2,%s,%s" % (U[2], cookie("web2")),
                            "--vm", "scratch,%s" % U[3], "--reg", "rdx=0x1234", "--reg", "rbx=0xfeed"])
    t.eq(rc, 0, "3 targets x 2 vCPUs x 300 guest requests: kvmi-sim satisfied")
    tot = (rep or {}).get("total", {})
    t.ok(tot.get("events_sent") == 1800 and tot.get("acked") == 1800 and tot.get("errors") == 0,
         "every event acked with a well-formed CONTINUE", json.dumps(tot) + err)
    t.ok(all(v.get("handshake") == "ok" for v in (rep or {}).get("vms", [])), "every handshake ok (cookie hashes matched)",
         json.dumps(rep))
    w1 = domain(d, "web1")
    dom = w1["domain"]
    t.eq((dom["guest_requests"], dom["acks"], dom["other_hypercalls"]), (600, 600, 0),
         "kvmid counted 600 guest requests and 600 acks for web1")
    t.eq((dom["kvmi_version"], dom["vcpus"], dom["connects"]), (7, 2, 1), "probe: KVMI v7, 2 vCPUs, one connect")
    t.ok({"GET_MAP_TOKEN", "CONTROL_EVENTS", "GET_GUEST_INFO"} <= set(dom["commands"])
         and {"HYPERCALL", "UNHOOK"} <= set(dom["events"]), "capabilities recorded from CHECK_COMMAND/CHECK_EVENT",
         json.dumps(dom))
    t.eq(sorted(dom["enabled"]), ["HYPERCALL", "UNHOOK"], "HYPERCALL enabled on every vCPU, UNHOOK VM-wide")
    t.ok(dom["ack_latency"]["count"] == 600 and 0 < dom["ack_latency"]["p50_ns"] <= dom["ack_latency"]["p99_ns"],
         "ack latency recorded per event", json.dumps(dom["ack_latency"]))
    rec = w1["recent"]
    t.ok(len(rec) == 8 and [r["seq"] for r in rec] == list(range(593, 601)),
         "the last 8 guest requests kept, oldest first, numbered per target", json.dumps([r["seq"] for r in rec]))
    t.ok(all(r["regs"]["rax"] == 34 and r["regs"]["rdi"] == 24 and r["regs"]["rsi"] == 0
             and r["regs"]["rdx"] == 0x1234 and r["regs"]["rbx"] == 0xfeed and r["mode"] == 8 for r in rec),
         "registers passed through as the vCPU had them", json.dumps(rec[-1]))
    t.eq(dom["kvmi"], "disconnected", "channel gone when kvmi-sim exits")
    t.eq(domain(d, "scratch")["domain"]["guest_requests"], 600, "cookie = none target served too")

    # --- 32-bit guest, 8-byte GET_VERSION layout, UNHOOK at exit ---
    rc, rep, err = run_sim(["--socket", sock, "--vcpus", "1", "--events", "5", "--mode", "32",
                            "--version-layout", "8", "--unhook-at-exit", "--vm", "scratch,%s" % U[3]])
    t.ok(rc == 0, "32-bit guest with the 8-byte GET_VERSION reply", err)
    vm = (rep or {}).get("vms", [{}])[0]
    t.eq(vm.get("unhook_closed"), True, "UNHOOK: kvmid closes the channel")
    sc = domain(d, "scratch")
    t.ok(sc["domain"]["guest_requests"] == 605 and sc["recent"][-1]["mode"] == 4,
         "32-bit guest requests recognised by ebx/ecx", json.dumps(sc["recent"][-1]))
    t.ok("UNHOOK" in d.logtext(), "UNHOOK logged as the reason the channel closed")

    # --- a peer without map tokens or hypercall events is still served ---
    rc, rep, err = run_sim(["--socket", sock, "--events", "0", "--no-map-token", "--no-hypercall",
                            "--timeout", "2", "--vm", "scratch,%s" % U[3]])
    sc = domain(d, "scratch")["domain"]
    t.ok("GET_MAP_TOKEN" not in sc["commands"] and "HYPERCALL" not in sc["events"] and
         "HYPERCALL" not in sc["enabled"], "missing capabilities shown as missing", json.dumps(sc))

    # --- refusals: unknown UUID, no cookie configured, an introspector VM ---
    for name, uuid, why, desc in [("ghost", U[9], "unknown domain", "unknown UUID"),
                                  ("nocookie", U[4], "no cookie configured", "domain without a cookie"),
                                  ("intro1", U[5], "introspector, not a target", "introspector domain")]:
        rc, rep, err = run_sim(["--socket", sock, "--events", "1", "--timeout", "2", "--vm", "%s,%s" % (name, uuid)])
        t.ok(rc != 0 and why in d.logtext(), "%s: handshake refused, logged" % desc, err)
    t.ok(domain(d, "nocookie")["domain"]["refused"] >= 1 and
         "no cookie" in (domain(d, "nocookie")["domain"]["last_error"] or ""), "refusal counted with its reason")

    # --- a long-lived target (control mode) watches the misbehaving ones ---
    keeper = Sim(["--socket", sock, "--vcpus", "2", "--vm", "web2,%s,%s" % (U[2], cookie("web2"))], work)
    try:
        t.ok(wait_for(lambda: domain(d, "web2")["domain"]["kvmi"] == "ready"), "control-mode target ready")
        r = keeper.cmd(cmd="send", vm="web2", count=10, regs={"rdx": 7})
        t.ok(r.get("acked") == 20 or r.get("acked") == 10 or r.get("ok"), "control mode: events sent and acked",
             json.dumps(r))

        modes = [("wrong-cookie", "web1", "before GET_VERSION"),
                 ("truncated-handshake", "web1", "closed by the peer in the middle"),
                 ("slow-handshake", "web1", "no complete handshake within 1s"),
                 ("bad-header-size", "web1", "malformed"),
                 ("nonzero-padding", "web1", "malformed event"),
                 ("unexpected-seq", "web1", "unexpected seq"),
                 ("oversize", "web1", "over the 8184 byte limit"),
                 ("disconnect-mid-message", "web1", "in the middle of a message"),
                 ("duplicate-uuid", "web1", "already has a KVMI channel")]
        for mode, name, logline in modes:
            before = len(d.logtext())
            secret = cookie(name)
            rc, rep, err = run_sim(["--socket", sock, "--misbehave", mode, "--timeout", "5",
                                    "--vm", "%s,%s,%s" % (name, U[1], secret)])
            mis = (rep or {}).get("misbehave") or ((rep or {}).get("vms") or [{}])[0].get("misbehave") or {}
            new_log = d.logtext()[before:]
            t.ok(rc == 0 and logline in new_log,
                 "%s: kvmid closes the channel with a clear log line" % mode,
                 "rc=%d %s\n%s\n%s" % (rc, json.dumps(mis), err, new_log[-800:]))
            t.ok(d.kvmictl("status")[0] == 0 and domain(d, "web2")["domain"]["kvmi"] == "ready",
                 "%s: daemon and the other target unaffected" % mode)
        r = keeper.cmd(cmd="send", vm="web2", count=5)
        t.ok("error" not in r, "the other target still gets its events acked", json.dumps(r))
        w2 = domain(d, "web2")["domain"]
        t.ok(w2["connects"] == 2 and w2["kvmi"] == "ready", "one channel per target throughout", json.dumps(w2))
    finally:
        keeper.close()

    # --- reload: a domain added by SIGHUP can connect; removed ones cannot ---
    conf2 = conf + "[domain late]\nuuid = %s\ncookie = none\n" % U[6]
    d.write_config(conf2)
    d.signal(signal.SIGHUP)
    t.ok(wait_for(lambda: domain(d, "late") is not None), "SIGHUP adds a [domain]")
    rc, rep, err = run_sim(["--socket", sock, "--events", "3", "--vm", "late,%s" % U[6]])
    t.eq(rc, 0, "the new domain's QEMU is accepted")
    rc, out, err = d.kvmictl("domain", "nosuch")
    t.eq(rc, 4, "kvmictl domain of an unknown domain: exit 4")
    rc, out, err = d.kvmictl("domains")
    t.ok(rc == 0 and "web1" in out and "late" in out and "KVMI" in out, "kvmictl domains: a table", out)
    st = json.loads(d.kvmictl("--json=short", "status")[1])
    t.ok(st["domains"] == 6 and st["kvmi_socket"] == sock, "GetStatus counts domains and names the KVMI socket")
    t.eq(d.stop(), 0, "kvmid exits 0")
    t.ok(not os.path.exists(sock), "KVMI socket unlinked at exit")
finally:
    d.cleanup()
t.done()
