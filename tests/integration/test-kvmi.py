#!/usr/bin/env python3
"""The KVMI channel end to end: the real kvmid, kvmi-sim playing QEMU and
the KVMI kernel side of several targets. Handshakes (any struct_size from
32 to 64 KiB) and refusals, the cookie hash against Python's SHA-1, the
capability probe and the max message size the kernel reports, guest
requests counted and every event acked (other hypercalls, other and
unknown event ids too), UNHOOK, the listeners, kvmictl's views, kvmi-sim's
own pacing, report and token semantics, and every misbehaving peer
(including one that never answers a command) handled without harm to the
daemon or to other targets."""

import hashlib
import json
import os
import re
import signal
import stat
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
VSOCK_PORT = 17793
conf = ("[kvmi]\nhandshake-timeout = 1\ncommand-timeout = 2\nrecent-events = 8\nvsock-port = %d\nnumbering = v7\n"
        % VSOCK_PORT + conf)
d = Daemon(conf)
sock = kvmi_socket(d)


def cookie(name):
    return os.path.join(work, "cookie-" + name)


def log_line(text, pattern):
    """The first line of text matching the regex pattern, or None."""
    return next((line for line in text.splitlines() if re.search(pattern, line)), None)


def line_of(out, label):
    """kvmictl domain's 'Label: value' line, value only (None if absent)."""
    m = re.search(r"^ *%s: (.*)$" % re.escape(label), out, re.M)
    return m.group(1) if m else None


try:
    # --- the listeners: Unix socket mode, vsock-port ---
    st = os.stat(sock)
    t.ok(stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660, "KVMI Unix socket: a socket, mode 0660",
         oct(st.st_mode))
    vs_on = "KVMI listener on vsock port %d" % VSOCK_PORT
    vs_off = "KVMI vsock listener on port %d is off" % VSOCK_PORT
    t.ok(wait_for(lambda: vs_on in d.logtext() or vs_off in d.logtext(), 5),
         "[kvmi] vsock-port: the KVMI vsock listener is up (or says why not)", d.logtext())

    # --- three targets at once, two vCPUs each, as fast as acks allow ---
    rc, rep, err = run_sim(["--socket", sock, "--vcpus", "2", "--events", "300", "--rate", "0",
                            "--vm", "web1,%s,%s" % (U[1], cookie("web1")),
                            "--vm", "web2,%s,%s" % (U[2], cookie("web2")),
                            "--vm", "scratch,%s" % U[3], "--reg", "rdx=0x1234", "--reg", "rbx=0xfeed"])
    t.eq(rc, 0, "3 targets x 2 vCPUs x 300 guest requests: kvmi-sim satisfied")
    tot = (rep or {}).get("total", {})
    t.ok(tot.get("events_sent") == 1800 and tot.get("acked") == 1800 and tot.get("errors") == 0,
         "every event acked with a well-formed CONTINUE", json.dumps(tot) + err)
    reps = (rep or {}).get("vms", [])
    t.ok(len(reps) == 3 and all(v.get("handshake") == "ok" for v in reps),
         "every handshake ok, all 3 (cookie hashes matched)", json.dumps(rep))
    vms = {v.get("name"): v for v in (rep or {}).get("vms", [])}
    for name in ("web1", "web2"):
        with open(cookie(name), "rb") as f:
            want = hashlib.sha1(f.read()).hexdigest()
        t.eq(vms.get(name, {}).get("cookie_hash"), want,
             "%s: the cookie_hash kvmid sent is hashlib.sha1 of the cookie file's bytes" % name)
    t.ok(re.fullmatch("[0-9a-f]{40}", vms.get("scratch", {}).get("cookie_hash") or "") is not None,
         "cookie = none: a 20-byte cookie_hash is still sent", json.dumps(vms.get("scratch")))
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
    t.ok(len(rec) == 8 and all(r["regs"]["rax"] == 34 and r["regs"]["rdi"] == 24 and r["regs"]["rsi"] == 0
                               and r["regs"]["rdx"] == 0x1234 and r["regs"]["rbx"] == 0xfeed and r["mode"] == 8
                               for r in rec),
         "registers passed through as the vCPU had them, all 8", json.dumps(rec))
    t.eq(dom["qemu_cpu_type"], 0, "an older QEMU's handshake (zero at byte 20): cpu_type 0")
    t.eq(dom["kvmi"], "disconnected", "channel gone when kvmi-sim exits")
    t.eq(domain(d, "scratch")["domain"]["guest_requests"], 600, "cookie = none target served too")

    # --- kvmictl domain (human) and kvmictl --json domains (pretty) ---
    rc, out, err = d.kvmictl("domain", "web1")
    t.ok(rc == 0 and line_of(out, "Name") == "web1" and line_of(out, "UUID") == U[1]
         and line_of(out, "Cookie") == cookie("web1") and line_of(out, "QEMU name") == "web1",
         "kvmictl domain: name, uuid, cookie file, QEMU name", out + err)
    t.eq(line_of(out, "KVMI"), "disconnected, version 7, 2 vCPUs, max message 8184 bytes",
         "kvmictl domain: KVMI state, version, vCPUs, max message size")
    t.ok({"GET_MAP_TOKEN", "CONTROL_EVENTS", "GET_GUEST_INFO"} <= set((line_of(out, "Commands") or "").split())
         and set((line_of(out, "Events") or "").split()) >= {"HYPERCALL", "UNHOOK"}
         and sorted((line_of(out, "Enabled") or "").split()) == ["HYPERCALL", "UNHOOK"],
         "kvmictl domain: commands, events, enabled", out)
    t.eq(line_of(out, "Events in"), "600 (acked 600; guest requests 600, other hypercalls 0, other events 0)",
         "kvmictl domain: events in, acked, guest requests, other hypercalls/events")
    t.eq(line_of(out, "Connects"), "1 (0 refused)", "kvmictl domain: connects and refusals")
    lat = r"\d+(\.\d)?(ns|us|ms)"
    t.ok(re.fullmatch(r"p50 %s, p99 %s, max %s \(inside kvmid\)" % (lat, lat, lat), line_of(out, "Ack latency") or "")
         is not None, "kvmictl domain: ack latency p50/p99/max", out)
    rows = [l.split() for l in out.split("Recent guest requests:")[-1].splitlines() if "0x1234" in l]
    t.ok("Recent guest requests:" in out and len(rows) == 8 and
         all("64-bit" in r and "0x1234" in r and "0xfeed" in r for r in rows) and
         [int(r[0]) for r in rows] == list(range(593, 601)),
         "kvmictl domain: the last 8 guest requests as a table (seq, mode, rdx, rbx)", out)
    rc, out, err = d.kvmictl("--json", "domains")
    try:
        doms = json.loads(out)
    except ValueError:
        doms = None
    t.ok(rc == 0 and len(out.strip().splitlines()) > 1 and isinstance(doms, dict) and
         {x["name"] for x in doms["domains"]} == {"web1", "web2", "scratch", "nocookie", "intro1"},
         "kvmictl --json domains: pretty JSON, every domain", out + err)

    # --- 32-bit guest, 8-byte GET_VERSION layout, UNHOOK at exit ---
    before = len(d.logtext())
    rc, rep, err = run_sim(["--socket", sock, "--vcpus", "1", "--events", "5", "--mode", "32",
                            "--version-layout", "8", "--unhook-at-exit", "--vm", "scratch,%s" % U[3]])
    t.ok(rc == 0, "32-bit guest with the 8-byte GET_VERSION reply", err)
    vm = (rep or {}).get("vms", [{}])[0]
    t.eq(vm.get("unhook_closed"), True, "UNHOOK: kvmid closes the channel")
    sc = domain(d, "scratch")
    t.ok(sc["domain"]["guest_requests"] == 605 and sc["recent"][-1]["mode"] == 4,
         "32-bit guest requests recognised by ebx/ecx", json.dumps(sc["recent"][-1]))
    t.ok(log_line(d.logtext()[before:], r'domain "scratch": KVMI channel closed: UNHOOK') is not None,
         "UNHOOK logged as the reason the channel closed", d.logtext()[before:])

    # --- a peer without map tokens or hypercall events is still served ---
    rc, rep, err = run_sim(["--socket", sock, "--events", "0", "--no-map-token", "--no-hypercall",
                            "--timeout", "2", "--vm", "scratch,%s" % U[3]])
    sc = domain(d, "scratch")["domain"]
    t.ok("GET_MAP_TOKEN" not in sc["commands"] and "HYPERCALL" not in sc["events"] and
         "HYPERCALL" not in sc["enabled"], "missing capabilities shown as missing", json.dumps(sc))

    # --- handshake struct_size: newer (longer) and older (shorter) QEMUs ---
    for size, qname in [(104, "scratch"), (65536, "scratch"), (40, "scratch"), (36, "scra"), (32, "")]:
        rc, rep, err = run_sim(["--socket", sock, "--events", "2", "--handshake-size", str(size), "--timeout", "5",
                                "--vm", "scratch,%s" % U[3]])
        vm = ((rep or {}).get("vms") or [{}])[0]
        sc = domain(d, "scratch")["domain"]
        t.ok(rc == 0 and vm.get("handshake") == "ok" and vm.get("acked") == 2 and sc["kvmi_version"] == 7
             and sc["qemu_name"] == qname and sorted(sc["enabled"]) == ["HYPERCALL", "UNHOOK"],
             "handshake struct_size %d: accepted, probed, events acked, QEMU name %r" % (size, qname),
             err + json.dumps(vm) + json.dumps(sc))
    # a newer KVM-VMI QEMU: cpu_type 1 (x86_64) at byte 20, an arch block after name
    rc, rep, err = run_sim(["--socket", sock, "--events", "2", "--handshake-size", "100", "--cpu-type", "1",
                            "--timeout", "5", "--vm", "scratch,%s" % U[3]])
    vm = ((rep or {}).get("vms") or [{}])[0]
    sc = domain(d, "scratch")["domain"]
    t.ok(rc == 0 and vm.get("handshake") == "ok" and vm.get("acked") == 2 and sc["kvmi_version"] == 7
         and sc["qemu_cpu_type"] == 1, "handshake of 100 bytes with cpu_type 1 (x86_64): accepted, probed, acked",
         err + json.dumps(vm) + json.dumps(sc))
    rc, out, err = d.kvmictl("domain", "scratch")
    t.eq(line_of(out, "QEMU CPU type"), "1 (x86_64)", "kvmictl domain: the QEMU CPU type")
    rc, rep, err = run_sim(["--socket", sock, "--handshake-size", "31", "--vm", "scratch,%s" % U[3]])
    t.ok(rc == 2 and "handshake-size" in err, "kvmi-sim --handshake-size below 32 refused", err)

    # --- other hypercalls: acked, counted apart from guest requests ---
    before = domain(d, "scratch")
    rc, rep, err = run_sim(["--socket", sock, "--vcpus", "2", "--events", "5", "--reg", "rax=35",
                            "--vm", "scratch,%s" % U[3]])
    after = domain(d, "scratch")
    tot = (rep or {}).get("total", {})
    t.ok(rc == 0 and (tot.get("events_sent"), tot.get("acked"), tot.get("errors")) == (10, 10, 0),
         "hypercall rax=35 (not a guest request): all 10 acked with a well-formed CONTINUE", err + json.dumps(tot))
    delta = {k: after["domain"][k] - before["domain"][k]
             for k in ("other_hypercalls", "guest_requests", "acks", "events_received", "other_events")}
    t.eq(delta, {"other_hypercalls": 10, "guest_requests": 0, "acks": 10, "events_received": 10, "other_events": 0},
         "other_hypercalls counts them; not guest requests")
    t.eq([r["seq"] for r in after["recent"]], [r["seq"] for r in before["recent"]],
         "other hypercalls are not kept as recent guest requests")

    # --- kvmi-sim pacing and report: 10 events at 20 Hz take ~0.45 s ---
    rc, rep, err = run_sim(["--socket", sock, "--events", "10", "--rate", "20", "--vm", "scratch,%s" % U[3]])
    tot = (rep or {}).get("total", {})
    lat = tot.get("latency_ns") or {}
    t.ok(rc == 0 and tot.get("acked") == 10 and 0.44 <= tot.get("elapsed_sec", 0) < 2.0
         and tot.get("run_sec", 0) >= tot.get("elapsed_sec", 0),
         "--rate 20: 10 events paced over >= 0.45 s", json.dumps(tot) + err)
    t.ok(all(isinstance(lat.get(k), int) for k in ("p50", "p99", "max"))
         and 0 < lat["p50"] <= lat["p99"] <= lat["max"] < 1e9 and 0 < tot.get("events_per_sec", 0) <= 10 / 0.44
         and abs(tot["events_per_sec"] * tot.get("elapsed_sec", 0) - 10) < 1e-3,
         "report: latency p50 <= p99 <= max (ns), events_per_sec = 10 / elapsed_sec", json.dumps(tot))
    vm = ((rep or {}).get("vms") or [{}])[0]
    t.ok(vm.get("latency_ns") == lat and abs(vm.get("events_per_sec", 0) - tot.get("events_per_sec", 0)) < 1e-6,
         "report: one VM's latency and rate are the total's", json.dumps(vm))

    # --- the max message size GET_VERSION reports is the limit kvmid uses ---
    rc, rep, err = run_sim(["--socket", sock, "--max-msg", "16000", "--event-size", "16000", "--events", "3",
                            "--vm", "scratch,%s" % U[3]])
    tot = (rep or {}).get("total", {})
    t.ok(rc == 0 and (tot.get("acked"), tot.get("errors")) == (3, 0),
         "--max-msg 16000: 16000-byte events (over v7's 8184) accepted and acked", err + json.dumps(tot))
    t.eq(domain(d, "scratch")["domain"]["max_message_size"], 16000,
         "kvmictl domain: max message size as GET_VERSION reported it")

    # --- refusals: unknown UUID, no cookie configured, an introspector VM ---
    for name, uuid, why, desc in [("ghost", U[9], "unknown domain", "unknown UUID"),
                                  ("nocookie", U[4], "no cookie configured", "domain without a cookie"),
                                  ("intro1", U[5], "introspector, not a target", "introspector domain")]:
        before = len(d.logtext())
        rc, rep, err = run_sim(["--socket", sock, "--events", "1", "--timeout", "2", "--vm", "%s,%s" % (name, uuid)])
        vm = ((rep or {}).get("vms") or [{}])[0]
        line = log_line(d.logtext()[before:], re.escape(why))
        t.ok(rc != 0 and vm.get("closed_by_kvmid") is True and vm.get("cookie_hash") is None and line is not None
             and '"%s"' % name in line and "refused" in line,
             "%s: handshake refused (no reply), logged naming it" % desc, err + json.dumps(vm) + str(line))
    t.ok(domain(d, "nocookie")["domain"]["refused"] == 1 and
         "no cookie" in (domain(d, "nocookie")["domain"]["last_error"] or ""), "refusal counted with its reason")
    i1 = domain(d, "intro1")["domain"]
    t.ok(i1["refused"] == 1 and "introspector, not a target" in (i1["last_error"] or ""),
         "introspector domain: refusal counted, last_error says why", json.dumps(i1))
    # the unknown one is not a domain, but ListDomains remembers it
    run_sim(["--socket", sock, "--events", "1", "--timeout", "2", "--vm", "ghost,%s" % U[9]])
    ld = json.loads(d.kvmictl("--json=short", "domains")[1])
    ghosts = [x for x in ld["unknown"] if x["uuid"] == U[9]]
    t.ok(len(ghosts) == 1 and ghosts[0]["qemu_name"] == "ghost" and ghosts[0]["attempts"] == 2
         and ghosts[0]["peer"].startswith("unix:") and all(x["name"] != "ghost" for x in ld["domains"]),
         "ListDomains: an unknown UUID's refused handshakes, counted, not a domain", json.dumps(ld["unknown"]))
    out = d.kvmictl("domains")[1]
    t.ok("Refused, unknown UUID" in out and U[9] in out and 'QEMU name "ghost"' in out and "2 attempts" in out,
         "kvmictl domains: shows them below the table", out)
    t0 = time.time()
    for i in range(16):
        run_sim(["--socket", sock, "--events", "1", "--timeout", "2",
                 "--vm", "stranger%d,00000000-0000-4000-9000-%012d" % (i, i)])
    unknown = json.loads(d.kvmictl("--json=short", "domains")[1])["unknown"]
    t.ok(len(unknown) == 16 and all(x["uuid"] != U[9] for x in unknown),
         "the unknown ones kept are bounded (16): the one seen longest ago goes (%.1fs)" % (time.time() - t0),
         json.dumps([x["qemu_name"] for x in unknown]))

    # --- a long-lived target (control mode) watches the misbehaving ones ---
    keeper = Sim(["--socket", sock, "--vcpus", "2", "--vm", "web2,%s,%s" % (U[2], cookie("web2"))], work)
    try:
        t.ok(wait_for(lambda: domain(d, "web2")["domain"]["kvmi"] == "ready"), "control-mode target ready")
        w2a = domain(d, "web2")
        r = keeper.cmd(cmd="send", vm="web2", count=10, regs={"rdx": 7})
        t.ok(r.get("ok") is True and (r.get("sent"), r.get("acked"), r.get("errors")) == (20, 20, 0),
             "control mode: 10 events on each of 2 vCPUs, all 20 acked", json.dumps(r))
        w2b = domain(d, "web2")
        t.ok(w2b["domain"]["guest_requests"] - w2a["domain"]["guest_requests"] == 20 and
             all(g["regs"]["rdx"] == 7 for g in w2b["recent"]),
             "kvmid counted the 20 guest requests, rdx as sent", json.dumps(w2b["recent"][-1]))

        # other vCPU events: a BREAKPOINT (v7 id 4, with its kvmi_event_breakpoint) and an id no
        # numbering knows; kvmi-sim checks each reply (seq, vCPU, the very event id, zero padding)
        for ev, what in [(4, "BREAKPOINT event (id 4)"), (200, "event with an unknown id (200)")]:
            r = keeper.cmd(cmd="send", vm="web2", count=3, event=ev)
            t.ok(r.get("ok") is True and (r.get("sent"), r.get("acked"), r.get("errors")) == (6, 6, 0),
                 "%s: all 6 acked with a well-formed CONTINUE naming it" % what, json.dumps(r))
        w2c = domain(d, "web2")["domain"]
        delta = {k: w2c[k] - w2b["domain"][k] for k in ("other_events", "guest_requests", "acks", "events_received")}
        t.eq(delta, {"other_events": 12, "guest_requests": 0, "acks": 12, "events_received": 12},
             "other events counted as such, not as guest requests")
        r = keeper.cmd(cmd="send", vm="web2", count=2)
        w2d = domain(d, "web2")["domain"]
        t.ok(r.get("ok") is True and r.get("acked") == 4 and w2d["kvmi"] == "ready" and w2d["connects"] == 2 and
             w2d["guest_requests"] == w2c["guest_requests"] + 4, "the channel stays up after other and unknown events",
             json.dumps(r) + json.dumps(w2d))

        # kvmi-sim's map tokens (KVM_HC_MEM_MAP semantics): single use, 3 s life
        tok = keeper.cmd(cmd="mint", vm="web2")
        r1 = keeper.cmd(cmd="redeem", vm="web2", token=tok.get("token"))
        r2 = keeper.cmd(cmd="redeem", vm="web2", token=tok.get("token"))
        t.ok(tok.get("ok") is True and r1 == {"ok": True} and r2 == {"ok": False, "error": "consumed"},
             "sim token: redeemed once, then \"consumed\"", json.dumps([tok, r1, r2]))
        t.eq(keeper.cmd(cmd="redeem", vm="web2", token="00" * 32), {"ok": False, "error": "unknown"},
             "sim token: one never minted is \"unknown\"")
        old = keeper.cmd(cmd="mint", vm="web2")
        old_t = time.time()
        tl = keeper.cmd(cmd="tokens", vm="web2")
        t.ok(tl.get("live") == 1 and tl["tokens"][0]["token"] == old.get("token") and tl["tokens"][0]["age_ms"] < 1000,
             "sim token: a fresh one is live", json.dumps(tl))

        # Log lines: post-handshake failures name the domain ("web1") on the very line.
        modes = [("wrong-cookie", [], r"closed by the peer before GET_VERSION was answered", True),
                 ("truncated-handshake", [], r"closed by the peer in the middle of a message \(40 bytes pending\)",
                  False),
                 ("slow-handshake", [], r"no complete handshake within 1s", False),
                 ("bad-header-size", [],
                  r"malformed event \(seq \d+\): KVMI message has trailing bytes after its structure", True),
                 ("nonzero-padding", [], r"malformed event \(seq \d+\): KVMI message has nonzero padding", True),
                 ("unexpected-seq", [], r"reply with unexpected seq 4294967280 \(message id 2\)", True),
                 ("oversize", [], r"message of 8185 bytes \(id 1\) over the 8184 byte limit", True),
                 ("oversize", ["--max-msg", "16000", "--version-layout", "8"],
                  r"message of 16001 bytes \(id 1\) over the 16000 byte limit", True),
                 ("disconnect-mid-message", [], r"closed by the peer in the middle of a message \(276 bytes pending\)",
                  True),
                 ("duplicate-uuid", [], r"already has a KVMI channel", True),
                 ("silent-command", [], r"no reply to GET_GUEST_INFO \(seq \d+\) within 2s", True)]
        for mode, extra, pattern, named in modes:
            desc = " ".join([mode] + extra)
            before = len(d.logtext())
            secret = cookie("web1")
            rc, rep, err = run_sim(["--socket", sock, "--misbehave", mode, "--timeout", "5"] + extra +
                                   ["--vm", "web1,%s,%s" % (U[1], secret)])
            mis = ((rep or {}).get("vms") or [{}])[0].get("misbehave") or {}
            new_log = d.logtext()[before:]
            line = log_line(new_log, pattern)
            t.ok(rc == 0 and mis.get("carried_out") is True and line is not None and
                 (not named or '"web1"' in line),
                 "%s: kvmid closes the channel with a clear log line%s" % (desc, " naming the domain" if named else ""),
                 "rc=%d %s\n%s\n%s" % (rc, json.dumps(mis), err, new_log[-800:]))
            if mode == "unexpected-seq":
                # acks go out before any reply in the same read is looked at
                t.eq(((rep or {}).get("vms") or [{}])[0].get("acked"), 1,
                     "unexpected-seq: the event read with the bad reply is acked before the channel closes")
            if mode == "duplicate-uuid":
                w1 = domain(d, "web1")["domain"]
                t.ok(w1["refused"] >= 1 and "already has a KVMI channel" in (w1["last_error"] or ""),
                     "duplicate-uuid: refusal counted, last_error says why", json.dumps(w1))
            if mode == "silent-command":
                w1 = domain(d, "web1")["domain"]
                lasterr = re.search(r"no reply to GET_GUEST_INFO \(seq \d+\) within 2s", w1["last_error"] or "")
                t.ok(lasterr is not None and w1["kvmi"] == "disconnected" and mis.get("closed_by_kvmid") is True and
                     1900 <= (mis.get("after_ms") or 0) < 3000,
                     "silent-command: closed 2 s (command-timeout) after the unanswered command; last_error says why",
                     "%s %s" % (json.dumps(mis), json.dumps(w1)))
            if extra:
                t.eq(domain(d, "web1")["domain"]["max_message_size"], 16000,
                     "8-byte GET_VERSION with max_msg_size 16000: the limit kvmid enforces and shows")
            t.ok(d.kvmictl("status")[0] == 0 and domain(d, "web2")["domain"]["kvmi"] == "ready",
                 "%s: daemon and the other target unaffected" % desc)
        before = domain(d, "web2")["domain"]["guest_requests"]
        r = keeper.cmd(cmd="send", vm="web2", count=5)
        t.ok(r.get("ok") is True and (r.get("sent"), r.get("acked"), r.get("errors")) == (10, 10, 0) and
             domain(d, "web2")["domain"]["guest_requests"] == before + 10,
             "the other target still gets its events acked (5 on each of 2 vCPUs)", json.dumps(r))
        w2 = domain(d, "web2")["domain"]
        t.ok(w2["connects"] == 2 and w2["kvmi"] == "ready", "one channel per target throughout", json.dumps(w2))

        young = keeper.cmd(cmd="mint", vm="web2")
        time.sleep(max(0.0, old_t + 3.2 - time.time()))
        r3 = keeper.cmd(cmd="redeem", vm="web2", token=old.get("token"))
        r4 = keeper.cmd(cmd="redeem", vm="web2", token=young.get("token"))
        t.ok(r3 == {"ok": False, "error": "expired"} and r4 == {"ok": True},
             "sim token: \"expired\" 3 s after minting; a younger one still redeems", json.dumps([r3, r4]))
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
